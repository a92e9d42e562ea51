"""The benchmark's own infrastructure: a private redis-server, Celery worker processes, Redis stats.

Nothing here touches the shared Redis on 6379: :func:`private_redis` starts ``redis-server`` on a
free port and :func:`export_env` points every resoto-tasks setting of this process (and of the
workers it starts, which inherit the environment) at it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from tests.support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
KEY_PREFIX = "bench"
ALL_QUEUES = "bench_collect,bench_cleanup,bench_metrics,workflow"
"""The bench worker's queues: the action queues renamed (see ``orchestration.bench_queue``)."""


def private_redis() -> RedisServer:
    """A redis-server on a free port, no persistence (the floor, not durability, is measured)."""
    return RedisServer(appendonly=False).start()


def export_env(url: str) -> dict[str, str]:
    """Point resoto-tasks at ``url``; must run before anything imports ``resoto_tasks``."""
    env = {
        "RESOTO_REDIS_URL": url,
        "RESOTO_KEY_PREFIX": KEY_PREFIX,
        "RESOTO_HOOK_MODULES": "bench.tasks",
        "RESOTO_COLLECT_PROVIDERS": "",
        "RESOTO_METRICS_PORT": "0",
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
    }
    os.environ.update(env)
    for name in ("RESOTO_WORKFLOWS_DIR", "RESOTO_BROKER_URL", "RESOTO_RESULT_BACKEND_URL", "RESOTO_STORE_URL"):
        os.environ.pop(name, None)
    return env


@dataclass
class Worker:
    """``celery -A resoto_tasks worker`` as a subprocess in its own process group."""

    queues: str = ALL_QUEUES
    pool: str = "prefork"
    concurrency: int = 2
    loglevel: str = "info"
    env: dict[str, str] = field(default_factory=dict)
    name: str = field(default_factory=lambda: f"bench{uuid.uuid4().hex[:6]}@bench")
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return RESULTS / "logs" / f"{self.name.split('@')[0]}.log"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "resoto_tasks",
            "worker",
            "-Q",
            self.queues,
            "-n",
            self.name,
            "-P",
            self.pool,
            "-c",
            str(self.concurrency),
            "-l",
            self.loglevel,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]

    def start(self, timeout_s: float = 30) -> Worker:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                cwd=ROOT,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._wait_ready(timeout_s)
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        """Ready once its resoto heartbeat key exists and Celery logged ``ready``."""
        r = redis.Redis.from_url(os.environ["RESOTO_REDIS_URL"], decode_responses=True)
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(f"worker exited with {self.proc.returncode}: {self.tail()}")
                if r.exists(f"{KEY_PREFIX}:worker:{self.name}") and "ready" in self.tail(4000):
                    return
                time.sleep(0.05)
        finally:
            r.close()
        raise TimeoutError(f"worker {self.name} not ready in {timeout_s}s: {self.tail()}")

    def tail(self, size: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except FileNotFoundError:
            return ""

    def stop(self, timeout_s: float = 20) -> None:
        """Warm shutdown (SIGTERM to the group); SIGKILL if it does not end in time."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


# ---------------------------------------------------------------------------------------------
# Redis server statistics
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerStats:
    """A snapshot of the counters that say what clients made Redis do."""

    at: float
    calls: dict[str, int]
    net_input_bytes: int

    def minus(self, earlier: ServerStats) -> ServerStats:
        calls = {k: v - earlier.calls.get(k, 0) for k, v in self.calls.items()}
        return ServerStats(
            at=self.at - earlier.at,
            calls={k: v for k, v in calls.items() if v},
            net_input_bytes=self.net_input_bytes - earlier.net_input_bytes,
        )

    def scaled(self, factor: float) -> ServerStats:
        return ServerStats(
            at=self.at * factor,
            calls={k: round(v * factor) for k, v in self.calls.items()},
            net_input_bytes=round(self.net_input_bytes * factor),
        )

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


def server_stats(r: redis.Redis) -> ServerStats:
    """INFO commandstats and stats, without the INFO calls themselves."""
    raw: dict[str, Any] = r.info("commandstats")
    calls = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in raw.items() if k != "cmdstat_info"}
    stats: dict[str, Any] = r.info("stats")
    return ServerStats(at=time.monotonic(), calls=calls, net_input_bytes=int(stats["total_net_input_bytes"]))


def idle_rate(r: redis.Redis, seconds: float = 2.0) -> ServerStats:
    """What the workers do to Redis per second while idle (polling, heartbeats)."""
    before = server_stats(r)
    time.sleep(seconds)
    delta = server_stats(r).minus(before)
    return delta.scaled(1.0 / delta.at)


def work_stats(before: ServerStats, after: ServerStats, idle: ServerStats) -> ServerStats:
    """``after - before`` minus the idle traffic of the same span (never below zero)."""
    delta = after.minus(before)
    noise = idle.scaled(delta.at)
    calls = {k: max(0, v - noise.calls.get(k, 0)) for k, v in delta.calls.items()}
    return ServerStats(
        at=delta.at,
        calls={k: v for k, v in calls.items() if v},
        net_input_bytes=max(0, delta.net_input_bytes - noise.net_input_bytes),
    )
