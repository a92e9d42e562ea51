"""What the local stack consists of: one worker per queue, beat, Flower, the web console, each as an argv list.

Pure: it decides commands, it starts nothing, so tests and ``--json`` can show the plan. The
workers are exactly what production runs (``celery -A resoto_tasks worker -Q <queue> ...``), one
per queue of :data:`resoto_tasks.routing.QUEUES`, so a queue added there gets a worker here
without anyone remembering to add it. Commands run as ``python -m celery`` with this
interpreter, so the stack uses the project's own environment whatever ``PATH`` says.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from resoto_tasks.routing import CLEANUP, METRICS, QUEUES

DEFAULT_METRICS_PORT = 9955
DEFAULT_FLOWER_PORT = 5555
DEFAULT_WEB_PORT = 8900
DEFAULT_CONCURRENCY = 2
"""Pool processes per worker: four workers on a laptop should not start one child per CPU each."""


class Role(StrEnum):
    worker = "worker"
    beat = "beat"
    flower = "flower"
    web = "web"


@dataclass(frozen=True)
class StackOptions:
    """What ``resoto-tasks up`` was asked for."""

    concurrency: int = DEFAULT_CONCURRENCY
    metrics_port: int = DEFAULT_METRICS_PORT
    flower_port: int = DEFAULT_FLOWER_PORT
    beat: bool = True
    flower: bool = True
    web: bool = True
    web_port: int = DEFAULT_WEB_PORT
    cleanup_dry_run: bool = False
    loglevel: str = "INFO"


@dataclass(frozen=True)
class ProcessSpec:
    """One process of the stack, before it runs."""

    name: str
    role: Role
    argv: tuple[str, ...]
    queue: str | None = None
    hostname: str | None = None
    """Workers only: the ``-n`` node name; its bootstep writes ``keys.worker_alive(hostname)``."""
    url: str | None = None
    """Flower and the web console: where it serves."""


def flower_installed() -> bool:
    return importlib.util.find_spec("flower") is not None


def web_installed() -> bool:
    """The ``web`` extra (FastAPI, uvicorn) is installed."""
    return importlib.util.find_spec("fastapi") is not None and importlib.util.find_spec("uvicorn") is not None


def celery(*args: str) -> tuple[str, ...]:
    return (sys.executable, "-m", "celery", "-A", "resoto_tasks", *args)


def worker_flags(queue: str, options: StackOptions) -> tuple[str, ...]:
    """The resoto worker options each queue's worker needs (see ``worker_boot.WORKER_CLI_OPTIONS``)."""
    if queue == CLEANUP:
        flags = ("--cleanup-expired", "--cleanup")
        return (*flags, "--cleanup-dry-run") if options.cleanup_dry_run else flags
    if queue == METRICS:
        return ("--metrics-port", str(options.metrics_port))
    return ()


def worker_spec(queue: str, options: StackOptions, token: str, host: str) -> ProcessSpec:
    hostname = f"resoto-{queue}-{token}@{host}"
    argv = celery(
        "worker",
        "-Q",
        queue,
        "-n",
        hostname,
        "-c",
        str(options.concurrency),
        "-l",
        options.loglevel,
        "--without-gossip",
        "--without-mingle",
        *worker_flags(queue, options),
    )
    return ProcessSpec(name=f"worker-{queue}", role=Role.worker, argv=argv, queue=queue, hostname=hostname)


def plan(options: StackOptions, token: str, host: str, run_dir: Path) -> list[ProcessSpec]:
    """Every process of the stack except Redis, in start order."""
    specs = [worker_spec(q, options, token, host) for q in QUEUES]
    if options.beat:
        specs.append(
            ProcessSpec(
                name="beat",
                role=Role.beat,
                argv=celery("beat", "-l", options.loglevel, "-s", str(run_dir / "celerybeat-schedule")),
            )
        )
    if options.flower and flower_installed():
        specs.append(
            ProcessSpec(
                name="flower",
                role=Role.flower,
                argv=celery("flower", "--address=127.0.0.1", f"--port={options.flower_port}"),
                url=f"http://127.0.0.1:{options.flower_port}",
            )
        )
    if options.web and web_installed():
        specs.append(
            ProcessSpec(
                name="web",
                role=Role.web,
                argv=(
                    sys.executable,
                    "-m",
                    "resoto_tasks.cli.main",
                    "web",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(options.web_port),
                ),
                url=f"http://127.0.0.1:{options.web_port}",
            )
        )
    return specs
