"""The benchmark's own infrastructure: a private redis-server, Celery worker processes, Redis stats.

Nothing here touches the shared Redis on 6379: :func:`private_redis` starts ``redis-server`` on a
free port and :func:`export_env` points every resoto-tasks setting of this process (and of the
workers it starts, which inherit the environment) at it.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from resoto_tasks import runs, runtime
from resoto_tasks.result_backend import STEP_JOIN_LUA, STEP_JOIN_SHA
from tests.support.redis_server import RedisServer
from tests.support.workers import BeatProcess, WorkerProcess

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
KEY_PREFIX = "bench"
ALL_QUEUES = "bench_collect,bench_cleanup,bench_metrics,workflow"
"""The bench worker's queues: the action queues renamed (see ``orchestration.bench_queue``)."""


def private_redis() -> RedisServer:
    """A redis-server on a free port, no persistence (the floor, not durability, is measured)."""
    return RedisServer(appendonly=False).start()


def export_env(url: str) -> dict[str, str]:
    """Point resoto-tasks at ``url`` (this process and the workers it starts, which inherit the
    environment), then reset the runtime: the next ``runtime.app()``/``engine()`` composes anew."""
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
    runtime.reset()
    return env


class Worker(WorkerProcess):
    """A benchmark's ``celery -A resoto_tasks worker`` (the tests' worker process): every queue
    by default, logs in ``bench/results/logs/``, without Celery's worker heartbeat events."""

    def __init__(
        self, queues: str = ALL_QUEUES, pool: str = "prefork", concurrency: int = 2, env: dict[str, str] | None = None
    ) -> None:
        short = f"bench{uuid.uuid4().hex[:6]}"
        super().__init__(
            queues,
            "--without-heartbeat",
            pool=pool,
            concurrency=concurrency,
            env=env,
            name=f"{short}@bench",
            log_path=RESULTS / "logs" / f"{short}.log",
        )


class Beat(BeatProcess):
    """A benchmark's ``celery -A resoto_tasks beat`` (the tests' beat process), logs in ``bench/results/logs/``."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        super().__init__(env, log_dir=RESULTS / "logs")


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


# ---------------------------------------------------------------------------------------------
# Who sent the commands: MONITOR, classified by key prefix
# ---------------------------------------------------------------------------------------------

HARNESS_CLIENT = "bench-harness"
"""The client name of the bench process's own waiting and checking connection."""

ENGINE = "resoto"
SCRIPT = "resoto, inside its script"
CELERY = "celery"
CELERY_SCRIPT = "celery, inside its scripts"
SUBSCRIBER = "resoto, in subscriber tasks"
JOIN = "resoto's step join"
JOIN_SCRIPT = "resoto's step join, inside its script"
HARNESS = "bench harness"
SIDES = (ENGINE, SCRIPT, SUBSCRIBER, JOIN, JOIN_SCRIPT, CELERY, CELERY_SCRIPT)
"""The sides of :class:`CommandSplit`'s counts that belong to a workflow (the harness does not)."""
INSIDE = {ENGINE: SCRIPT, JOIN: JOIN_SCRIPT, CELERY: CELERY_SCRIPT, HARNESS: HARNESS}


def classify(client: str, command: str, prefix: str, harness: set[str], local: set[str]) -> str:
    """Which side sent a command, from its MONITOR line (a script's commands: see :class:`CommandSplit`).

    * ``resoto``: ``EVALSHA``/``EVAL`` of the run store's guarded apply
      (:data:`resoto_tasks.runs.APPLY_SCRIPT_SHA`) or a command whose first key has the resoto
      prefix (the engine's reads, the start's admission, the catalogue's version);
    * ``resoto, in subscriber tasks``: what the action task around a subscriber asks (its abort
      check, progress), not the engine;
    * ``resoto's step join``: the result backend's join of a step's chord
      (:data:`resoto_tasks.result_backend.STEP_JOIN_LUA`), which takes the place of Celery's
      chord join for a step of two or more subscribers: counted apart from the engine, since the
      plain side's chord join is Celery's;
    * ``bench harness``: the bench process waiting for and checking runs (its named connection
      in ``harness``, and the SUBSCRIBE/UNSUBSCRIBE of ``AsyncResult.get`` waiting for a canvas: from
      a connection of this process, in ``local``; a worker's SUBSCRIBE when it sends a chord's
      header is Celery's);
    * ``celery``: everything else (kombu's queues, acks and events, the result backend and its
      chord scripts).
    """
    name, _, rest = command.partition(" ")
    name = name.upper()
    if client in harness or (client in local and name in ("SUBSCRIBE", "UNSUBSCRIBE")):
        return HARNESS
    if name == "EVALSHA":
        if rest.startswith(STEP_JOIN_SHA):
            return JOIN
        return ENGINE if rest.startswith(runs.APPLY_SCRIPT_SHA) else CELERY
    if name == "EVAL":
        if rest.startswith(STEP_JOIN_LUA[:200]):
            return JOIN
        return ENGINE if rest.startswith(runs.APPLY_SCRIPT[:200]) else CELERY
    if rest.startswith(f"{prefix}:"):
        key = rest.partition(" ")[0]
        return SUBSCRIBER if key.endswith((":abort", ":progress")) and name in ("EXISTS", "HSET") else ENGINE
    return CELERY


class CommandSplit:
    """Counts every command Redis runs by side and name (``side|NAME``), from ``MONITOR``.

    MONITOR shows a script's commands (client ``lua``) right after its ``EVALSHA``, so they count
    as inside the script of whoever sent it (Redis counts them in commandstats too, but they are
    no round trips).
    MONITOR slows Redis down, so it runs only around the footprint runs, never while timing.
    :meth:`snapshot` returns the counts as :class:`ServerStats`, so :func:`work_stats` subtracts
    the idle traffic the same way as for INFO commandstats.
    """

    def __init__(self, url: str, prefix: str = KEY_PREFIX) -> None:
        self.url = url
        self.prefix = prefix
        self.counts: dict[str, int] = {}
        self.harness: set[str] = set()
        self.local: set[str] = set()
        self.ignored: set[str] = set()
        self._known: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._side = redis.Redis.from_url(url, decode_responses=True, client_name="bench-monitor-side")

    def _refresh_clients(self) -> None:
        """Learn the addresses of the harness connection, of this process's connections and of our own
        side connection."""
        self.local |= _local_addresses()
        for c in self._side.client_list():
            if c.get("name") == HARNESS_CLIENT:
                self.harness.add(c["addr"])
            elif c.get("name", "").startswith("bench-monitor"):
                self.ignored.add(c["addr"])
            self._known.add(c["addr"])

    def _listen(self, ready: threading.Event) -> None:
        r = redis.Redis.from_url(self.url, decode_responses=True, client_name="bench-monitor")
        script_side = CELERY
        with r.monitor() as m:
            ready.set()
            for line in m.listen():
                if self._stop.is_set():
                    break
                client = str(line.get("client_type")) if line.get("client_type") == "lua" else ""
                if not client:
                    client = f"{line.get('client_address')}:{line.get('client_port')}"
                    if client not in self._known:
                        self._refresh_clients()
                        self._known.add(client)
                    if client in self.ignored:
                        continue
                command = str(line.get("command", ""))
                if client == "lua":
                    side = INSIDE[script_side]
                else:
                    side = classify(client, command, self.prefix, self.harness, self.local)
                    if command[:4].upper() == "EVAL":
                        script_side = side
                key = f"{side}|{command.partition(' ')[0].upper()}"
                with self._lock:
                    self.counts[key] = self.counts.get(key, 0) + 1
        r.close()

    def start(self) -> CommandSplit:
        self._refresh_clients()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._listen, args=(ready,), daemon=True, name="bench-monitor")
        self._thread.start()
        ready.wait(5)
        return self

    def snapshot(self) -> ServerStats:
        with self._lock:
            return ServerStats(at=time.monotonic(), calls=dict(self.counts), net_input_bytes=0)

    def idle_rate(self, seconds: float = 2.0) -> ServerStats:
        """Each side's commands per second while the workers idle (heartbeats, polling)."""
        before = self.snapshot()
        time.sleep(seconds)
        delta = self.snapshot().minus(before)
        return delta.scaled(1.0 / delta.at)

    def stop(self) -> None:
        self._stop.set()
        self._side.ping()  # one more MONITOR line wakes the listener
        if self._thread is not None:
            self._thread.join(5)
        self._side.close()


def _local_addresses() -> set[str]:
    """``ip:port`` of this process's TCP connections (as Redis names its clients)."""
    try:
        import psutil
    except ImportError:  # then the canvas's waiting counts as Celery's
        return set()
    return {f"{c.laddr.ip}:{c.laddr.port}" for c in psutil.Process().net_connections(kind="tcp") if c.raddr}


def by_side(stats: ServerStats) -> dict[str, dict[str, int]]:
    """``side -> {command: count}`` from a :class:`CommandSplit` delta."""
    found: dict[str, dict[str, int]] = {}
    for key, n in stats.calls.items():
        side, _, command = key.partition("|")
        found.setdefault(side, {})[command] = n
    return found
