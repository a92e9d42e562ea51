"""The options a resoto-tasks worker was started with (Resoto's worker flags).

They are Celery worker options (``celery -A resoto_tasks worker -Q cleanup --cleanup``), parsed
by Celery and handed to :class:`resoto_tasks.worker_boot.ResotoWorkerStep`, which stores them
here so that subscription sources and actions can read them.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field


class WorkerOptions(BaseModel):
    model_config = ConfigDict(frozen=True)

    hostname: str = "local"
    queues: list[str] = Field(default_factory=list)
    cleanup_expired: bool = False
    cleanup: bool = False
    cleanup_dry_run: bool = False
    cleanup_max: int | None = None
    cleanup_max_percent: float | None = None
    cleanup_pool_size: int = 8
    metrics_port: int | None = None


_current = WorkerOptions()


def current() -> WorkerOptions:
    """The options of the worker this process belongs to (defaults outside a worker)."""
    return _current


def set_current(options: WorkerOptions) -> None:
    global _current
    _current = options


StartHook = Callable[[WorkerOptions], None]
_start_hooks: list[StartHook] = []


def on_worker_start(fn: StartHook) -> StartHook:
    """Register ``fn(options)``, called once in the worker's main process when it starts.

    Worker modules use it for what lives beside the pool (the metrics worker's HTTP server);
    the core calls the hooks without knowing the modules that registered them.
    """
    _start_hooks.append(fn)
    return fn


def start_hooks() -> list[StartHook]:
    return list(_start_hooks)
