"""A resoto-tasks deployment on a Sentinel cluster: real workers, beat and CLI, told only the sentinels.

Like ``tests/faults/support.py``'s ``FaultStack``, but every process gets ``RESOTO_REDIS_SENTINELS``
and finds the primary itself; the test reads the truth through a sentinel-aware client, so it
follows the failover too.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import yaml

from resoto_tasks import keys
from resoto_tasks.models import Run
from resoto_tasks.settings import get_settings
from resoto_tasks.timeutil import now_ms
from tests.beat.helpers import BEAT_ENV, BeatProcess
from tests.faults.support import wait_until
from tests.support.cli import resoto, resoto_process
from tests.support.sentinel import SentinelCluster
from tests.support.workers import WorkerProcess

SUPERVISOR_INTERVAL_S = 1.0
SUBSCRIBER_TTL_S = 6.0
FAILOVER_WAIT_S = 15.0
"""RESOTO_REDIS_FAILOVER_WAIT_S of the processes under test: how long a producer waits for a new primary."""
STEP_TIMEOUT_S = 20.0
"""Every subscriber's timeout here (collect, cleanup, hooks): the longest a lost step can wait."""


@dataclass
class HaStack:
    cluster: SentinelCluster
    tmp: Path
    extra: dict[str, str] = field(default_factory=dict)
    workers: list[WorkerProcess] = field(default_factory=list)
    beats: list[BeatProcess] = field(default_factory=list)
    r: redis.Redis = field(init=False)

    def __post_init__(self) -> None:
        self.r = self.cluster.client()
        self.r.flushdb()  # the cluster is shared by the module's tests: nothing of the last one stays

    @property
    def env(self) -> dict[str, str]:
        """Recomputed at each use: RESOTO_REDIS_URL names the primary of now (only our helpers use its host)."""
        return {
            **self.cluster.env(),
            "RESOTO_KEY_PREFIX": get_settings().key_prefix,
            "RESOTO_SUPERVISOR_INTERVAL_S": str(SUPERVISOR_INTERVAL_S),
            "RESOTO_SUBSCRIBER_TTL_S": str(SUBSCRIBER_TTL_S),
            "RESOTO_VISIBILITY_TIMEOUT_S": "30",
            "RESOTO_REDIS_FAILOVER_WAIT_S": str(FAILOVER_WAIT_S),
            "RESOTO_COLLECT_TIMEOUT_S": str(STEP_TIMEOUT_S),
            "RESOTO_CLEANUP_PLAN_TIMEOUT_S": str(STEP_TIMEOUT_S),
            "RESOTO_CLEANUP_TIMEOUT_S": str(STEP_TIMEOUT_S),
            "RESOTO_SCHEDULE_OVERRIDES": BEAT_ENV["RESOTO_SCHEDULE_OVERRIDES"],
            **self.extra,
        }

    def worker(self, queues: str, *args: str, wait: bool = True) -> WorkerProcess:
        w = WorkerProcess(queues, *args, env=self.env)
        self.workers.append(w)
        return w.start(wait=wait)

    def beat(self) -> BeatProcess:
        b = BeatProcess(env={**self.env, **BEAT_ENV})
        self.beats.append(b)
        return b.start()

    def cli(self, *args: str, timeout_s: float = 90, process: bool = False) -> Any:
        """``resoto-tasks ARGS`` against this cluster: in this process, or the real executable
        (from a thread: an in-process command owns the environment while it runs), which
        ``timeout_s`` bounds."""
        if process:
            return resoto_process(*args, env=self.env, timeout_s=timeout_s)
        return resoto(*args, env=self.env)

    def start(self, workflow: str) -> str:
        done = self.cli("run", workflow, "--json")
        assert done.returncode == 0, done.stderr
        return str(json.loads(done.stdout)["run_id"])

    def add_workflow(self, name: str, steps: list[dict[str, Any]], **extra: Any) -> str:
        path = self.tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"name": name, "steps": steps, **extra}))
        done = self.cli("workflows", "add", str(path))
        assert done.returncode == 0, done.stderr
        return name

    def hold(self, subs: list[Any], holder: str = "ha-test", ttl_s: float = 600) -> None:
        expires = now_ms() + int(ttl_s * 1000)
        self.r.zadd(keys.subscriptions_live(), {f"{holder}|{s.model_dump_json()}": expires for s in subs})

    def run(self, run_id: str) -> Run | None:
        raw = self.r.get(keys.run(run_id))
        return Run.model_validate_json(raw) if raw else None

    def wait_finished(self, run_id: str, timeout_s: float) -> Run:
        def finished() -> Run | None:
            run = self.run(run_id)
            return run if run is not None and run.status.finished else None

        found: Run = wait_until(finished, timeout_s, f"run {run_id} finished", 0.1)
        return found

    def calls(self, run_id: str) -> list[dict[str, Any]]:
        return [json.loads(c) for c in self.r.lrange(f"test:calls:{run_id}", 0, -1)]

    def runs_of(self, workflow: str) -> list[Run]:
        ids = self.r.zrange(keys.runs_of_workflow(workflow), 0, -1)
        raws = self.r.mget([keys.run(i) for i in ids]) if ids else []
        return [Run.model_validate_json(raw) for raw in raws if raw]

    def close(self) -> None:
        for b in self.beats:
            b.kill()
        for w in self.workers:
            w.kill()
        self.r.close()


def elapsed_since(start: float) -> float:
    return time.time() - start
