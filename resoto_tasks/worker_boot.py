"""The worker bootstep: register this worker's subscriptions, renew them, run the supervisor.

Runs in the worker's main process. Subscriptions are renewed every quarter of the TTL by a
daemon thread, so a worker that dies (SIGKILL, OOM, lost machine) stops renewing and its
subscriptions expire within one TTL; a clean shutdown drops them at once. A worker consuming
the ``workflow`` queue also ticks the run supervisor (one tick per period across all such
workers, through a Redis lock), so runs time out and resume even where no beat runs.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from typing import Any

import click
from celery import bootsteps

from resoto_tasks import keys, orphans, subscribers, supervisor
from resoto_tasks.errors import ResotoError
from resoto_tasks.redis_conn import client
from resoto_tasks.routing import WORKFLOW
from resoto_tasks.settings import get_settings
from resoto_tasks.wiring import engine_for
from resoto_tasks.worker_options import WorkerOptions, set_current, start_hooks

log = logging.getLogger(__name__)

EXIT_BAD_CONFIGURATION = 2
"""The worker's exit code when its configuration cannot be used (the CLI's usage/validation code)."""

WORKER_CLI_OPTIONS = [
    click.Option(
        ["--cleanup-expired"],
        is_flag=True,
        default=False,
        help="Subscribe the expiry planner to cleanup_plan: mark expired, unprotected resources.",
    ),
    click.Option(
        ["--cleanup"],
        is_flag=True,
        default=False,
        help="Subscribe the cleaner to cleanup: delete marked, unprotected resources.",
    ),
    click.Option(
        ["--cleanup-dry-run"],
        is_flag=True,
        default=False,
        help="The cleaner decides and records everything but deletes nothing.",
    ),
    click.Option(
        ["--cleanup-max"],
        type=int,
        default=None,
        help="Delete nothing (and fail the step) if a run would delete more than N resources.",
    ),
    click.Option(
        ["--cleanup-max-percent"],
        type=float,
        default=None,
        help="Delete nothing if a run would delete more than P percent of an account's resources.",
    ),
    click.Option(["--cleanup-pool-size"], type=int, default=8, help="Parallel deletions within one wave."),
    click.Option(
        ["--metrics-port"],
        type=int,
        default=None,
        help="Serve /metrics and /health on this port (metrics workers; default 9955).",
    ),
]


class ResotoWorkerStep(bootsteps.StartStopStep):  # type: ignore[misc]  # celery is untyped
    """Holds the worker's options and keeps its subscriptions alive."""

    requires = {"celery.worker.components:Pool"}

    def __init__(self, parent: Any, **options: Any) -> None:
        super().__init__(parent, **options)
        queues = sorted(getattr(parent, "_resoto_queues", None) or _consumed_queues(parent))
        self.options = WorkerOptions(
            hostname=str(getattr(parent, "hostname", "") or "local"),
            queues=queues,
            cleanup_expired=bool(options.get("cleanup_expired")),
            cleanup=bool(options.get("cleanup")),
            cleanup_dry_run=bool(options.get("cleanup_dry_run")),
            cleanup_max=options.get("cleanup_max"),
            cleanup_max_percent=options.get("cleanup_max_percent"),
            cleanup_pool_size=int(options.get("cleanup_pool_size") or 8),
            metrics_port=options.get("metrics_port"),
        )
        set_current(self.options)
        self.app = parent.app
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, parent: Any) -> None:
        for hook in start_hooks():
            hook(self.options)
        try:
            self._beat_once()
        except ResotoError as exc:  # a bad RESOTO_* value, a provider that cannot load: one line, no traceback
            log.error("worker cannot start: %s", exc)
            raise SystemExit(EXIT_BAD_CONFIGURATION) from None
        self._thread = threading.Thread(target=self._loop, name="resoto-heartbeat", daemon=True)
        self._thread.start()

    def stop(self, parent: Any) -> None:
        self._stop.set()
        try:
            subscribers.unregister(self.options.hostname)
            client().delete(keys.worker_alive(self.options.hostname))
            client().srem(keys.workers(), self.options.hostname)
        except Exception as exc:  # shutting down: Redis may be gone; the TTL cleans up
            log.warning("could not unregister subscriptions on shutdown: %s", exc)

    def _loop(self) -> None:
        settings = get_settings()
        period = max(0.2, min(settings.subscriber_ttl_s / 4, settings.supervisor_interval_s))
        while not self._stop.wait(period):
            try:
                self._beat_once()
            except Exception as exc:  # Redis down: keep trying, the worker reconnects by itself
                log.warning("heartbeat failed (retrying in %.1fs): %s", period, exc)

    def _beat_once(self) -> None:
        settings = get_settings()
        subs = subscribers.subscriptions_for(self.options)
        subscribers.register(subs, self.options.hostname)
        document = {"queues": self.options.queues, "pid": os.getpid(), "tasks": orphans.held_task_ids()}
        pipe = client().pipeline(transaction=False)
        pipe.set(
            keys.worker_alive(self.options.hostname), json.dumps(document), px=int(settings.subscriber_ttl_s * 1000)
        )
        pipe.sadd(keys.workers(), self.options.hostname)
        pipe.execute()
        if WORKFLOW in self.options.queues:
            restorer = orphans.OrphanRestorer(self.app, grace_s=settings.subscriber_ttl_s)
            supervisor.tick_if_due(engine_for(self.app), restorer=restorer)


def _consumed_queues(parent: Any) -> list[str]:
    app = parent.app
    try:
        return [q.name for q in app.amqp.queues.consume_from.values()]
    except Exception:
        return []
