"""A resoto-tasks deployment a fault test owns and may break: its own redis-server, real processes.

Every fault test gets a :class:`FaultStack`: a private ``redis-server`` with append-only persistence
(so it can be restarted or SIGKILLed without losing what was written), ``celery worker`` and
``celery beat`` processes started as users start them, and the real ``resoto-tasks`` command, all
pointed at that server through the environment. The test reads the truth with plain redis clients
on the same server (run records, the resource store), never through the processes under test.

Short periods make faults show quickly: a supervisor tick every second, subscriptions that expire
6 s after their worker's last heartbeat, and a broker visibility timeout of a few seconds so that
a message whose worker died is redelivered within the test.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import redis
import yaml

from resoto_tasks import keys, subscribers
from resoto_tasks.models import Run, Subscription
from resoto_tasks.settings import get_settings
from resoto_tasks.store import ResourceStore
from resoto_tasks.timeutil import parse_time
from tests.beat.helpers import BEAT_ENV, BeatProcess
from tests.support.cli import resoto, resoto_process
from tests.support.redis_server import RedisServer
from tests.support.workers import WorkerProcess

SUPERVISOR_INTERVAL_S = 1.0
SUBSCRIBER_TTL_S = 6.0
VISIBILITY_TIMEOUT_S = 8


def parse_iso(text: str | datetime) -> datetime:
    return text if isinstance(text, datetime) else parse_time(text)


def wait_until(predicate: Callable[[], Any], timeout_s: float, what: str, every_s: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = predicate()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not met within {timeout_s:g}s")
        time.sleep(every_s)


def value_of(r: redis.Redis, key: str) -> Any:
    """A key's value, whatever its type (hash, set, sorted set, list, string)."""
    kind = r.type(key)
    if kind == "hash":
        return r.hgetall(key)
    if kind == "set":
        return r.smembers(key)
    if kind == "zset":
        return r.zrange(key, 0, -1, withscores=True)
    if kind == "list":
        return r.lrange(key, 0, -1)
    if kind == "stream":
        return r.xrange(key)
    return r.get(key)


def database(r: redis.Redis, patterns: Iterable[str] = ("*",)) -> dict[str, Any]:
    """Every key matching ``patterns`` with its value: a snapshot to compare before and after."""
    found = sorted({k for pattern in patterns for k in r.scan_iter(match=pattern, count=1000)})
    return {key: (r.type(key), value_of(r, key)) for key in found}


@dataclass
class FaultStack:
    """A private Redis (AOF on) plus the processes a test starts on it; see the module docstring."""

    tmp: Path
    env: dict[str, str] = field(default_factory=dict)
    split_store: bool = False
    """Run state and resources on ``server``; broker, results and schedule on ``broker_server``."""
    server: RedisServer = field(init=False)
    broker_server: RedisServer | None = field(init=False, default=None)
    r: redis.Redis = field(init=False)
    workers: list[WorkerProcess] = field(default_factory=list)
    beats: list[BeatProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.server = RedisServer(appendonly=True).start()
        self.env = {
            "RESOTO_REDIS_URL": self.server.url,
            "RESOTO_KEY_PREFIX": get_settings().key_prefix,
            "RESOTO_SUPERVISOR_INTERVAL_S": str(SUPERVISOR_INTERVAL_S),
            "RESOTO_SUBSCRIBER_TTL_S": str(SUBSCRIBER_TTL_S),
            "RESOTO_VISIBILITY_TIMEOUT_S": str(VISIBILITY_TIMEOUT_S),
            # No hourly run may start by itself in the middle of a fault.
            "RESOTO_SCHEDULE_OVERRIDES": BEAT_ENV["RESOTO_SCHEDULE_OVERRIDES"],
            **self.env,
        }
        if self.split_store:
            self.broker_server = RedisServer(appendonly=True).start()
            for role in ("BROKER", "RESULT_BACKEND", "REDBEAT"):
                self.env[f"RESOTO_{role}_URL"] = self.broker_server.url
        self.r = redis.Redis.from_url(self.server.url, decode_responses=True)

    # -- processes -----------------------------------------------------------------------------

    def worker(self, queues: str, *args: str, wait: bool = True, concurrency: int = 2, **env: str) -> WorkerProcess:
        """``celery -A resoto_tasks worker -Q QUEUES ARGS`` on this stack's Redis."""
        w = WorkerProcess(queues, *args, concurrency=concurrency, env={**self.env, **env})
        self.workers.append(w)
        return w.start(wait=wait)

    def workers_ready(self, *workers: WorkerProcess, timeout_s: float = 40) -> None:
        for w in workers:
            w.wait_ready(timeout_s)

    def beat(self, **env: str) -> BeatProcess:
        b = BeatProcess(env={**self.env, **BEAT_ENV, **env})
        self.beats.append(b)
        return b.start()

    def cli(self, *args: str, timeout_s: float = 90, process: bool = False, **env: str) -> Any:
        """``resoto-tasks ARGS`` against this stack: in this process, or the real executable
        (which ``timeout_s`` bounds; a command in this process is bounded by its own options)."""
        if process:
            return resoto_process(*args, env={**self.env, **env}, timeout_s=timeout_s)
        return resoto(*args, env={**self.env, **env})

    def start(self, workflow: str) -> str:
        """``resoto-tasks run WORKFLOW --json`` (no wait): the new run's id."""
        done = self.cli("run", workflow, "--json")
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["status"] == "started", result
        return str(result["run_id"])

    def run_and_wait(self, workflow: str, timeout_s: float = 90) -> dict[str, Any]:
        """``resoto-tasks run WORKFLOW --wait --json``: the final run record, plus ``_exit``."""
        done = self.cli("run", workflow, "--wait", "--json", "--timeout", str(timeout_s), timeout_s=timeout_s + 30)
        assert done.stdout, done.stderr
        record: dict[str, Any] = json.loads(done.stdout)
        record["_exit"] = done.returncode
        return record

    def add_workflow(self, name: str, steps: list[dict[str, Any]], **extra: Any) -> str:
        """Add a user workflow through ``resoto-tasks workflows add``."""
        path = self.tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"name": name, "steps": steps, **extra}))
        done = self.cli("workflows", "add", str(path))
        assert done.returncode == 0, done.stderr
        return name

    # -- reading the truth ---------------------------------------------------------------------

    def run(self, run_id: str) -> Run:
        raw = self.r.get(keys.run(run_id))
        assert raw, f"no record of run {run_id}"
        return Run.model_validate_json(raw)

    def wait_finished(self, run_id: str, timeout_s: float) -> Run:
        finished: Run = wait_until(
            lambda: (run := self.run(run_id)).status.finished and run, timeout_s, f"run {run_id} finished", 0.1
        )
        return finished

    def progress(self, run_id: str) -> dict[str, int]:
        """Subscriber -> current progress of every step (``{step}/{subscriber}`` keys)."""
        raw = self.r.hgetall(keys.run_progress(run_id))
        return {name: int(json.loads(value)["current"]) for name, value in raw.items()}

    def outcomes(self, run_id: str) -> dict[str, dict[str, Any]]:
        """``{step}/{subscriber}`` -> the answer: what its task returned (the result backend, so
        an answer that came late is seen too), else the outcome the run record decided."""
        run = self.run(run_id)
        found: dict[str, dict[str, Any]] = {}
        for i, step in enumerate(run.steps):
            for sub, outcome in step.outcomes.items():
                found[f"{i}/{sub}"] = outcome.model_dump(mode="json")
            for sub, task_id in step.task_ids.items():
                raw = self.r.get(f"celery-task-meta-{task_id}")
                meta = json.loads(raw) if raw else {}
                if meta.get("status") == "SUCCESS":
                    found[f"{i}/{sub}"] = meta["result"]
        return found

    def store(self) -> ResourceStore:
        return ResourceStore(self.r)

    def hold(self, subs: Iterable[Subscription], holder: str = "fault-test", ttl_s: float = 600) -> None:
        """Keep subscriptions alive for the test, as a worker's heartbeat would."""
        subscribers.register(list(subs), holder, ttl_s, r=self.r)

    def calls(self, run_id: str) -> list[dict[str, Any]]:
        """What ``tests.behave`` recorded for the run, in completion order."""
        return [json.loads(c) for c in self.r.lrange(f"test:calls:{run_id}", 0, -1)]

    # -- teardown ------------------------------------------------------------------------------

    def close(self) -> None:
        for b in self.beats:
            b.kill()
        for w in self.workers:
            w.kill()
        self.r.close()
        self.server.cleanup()
        if self.broker_server is not None:
            self.broker_server.cleanup()


def behave(action: str, sid: str, queue: str, timeout_s: float = 30, **kwargs: Any) -> Subscription:
    """A subscription answered by ``tests.behave`` (sleeps, raises, ... as ``kwargs`` say)."""
    return Subscription(
        action=action, subscriber_id=sid, task="tests.behave", queue=queue, timeout_s=timeout_s, kwargs=kwargs
    )
