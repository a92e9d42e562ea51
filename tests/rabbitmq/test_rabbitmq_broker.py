"""The engine with RabbitMQ as its broker; Redis keeps results, schedule, run state and store.

A chosen subset that covers every queue: ``collect_and_cleanup`` through workers on ``workflow``,
``collect``, ``cleanup`` and ``metrics`` (every built-in subscriber answers), a user hook on a
queue of its own, and the same over quorum queues. Each test has its own key prefix, so the
session's Redis-broker worker never sees these runs.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.beat.helpers import BEAT_ENV
from tests.support.cli import resoto
from tests.support.workers import WorkerProcess

pytestmark = pytest.mark.xdist_group("rabbitmq")


class AmqpStack:
    def __init__(self, broker_url: str, tmp: Path, **env: str) -> None:
        self.tmp = tmp
        self.env = {
            "RESOTO_BROKER_URL": broker_url,
            "RESOTO_KEY_PREFIX": f"rmq{uuid.uuid4().hex[:6]}",
            "RESOTO_SCHEDULE_OVERRIDES": BEAT_ENV["RESOTO_SCHEDULE_OVERRIDES"],
            **env,
        }
        self.workers: list[WorkerProcess] = []

    def worker(self, queues: str, *args: str) -> WorkerProcess:
        w = WorkerProcess(queues, *args, env=self.env)
        self.workers.append(w)
        return w.start(wait=False)

    def ready(self) -> None:
        for w in self.workers:
            w.wait_ready(40)

    def run_and_wait(self, workflow: str, timeout_s: float = 60) -> dict[str, Any]:
        done = resoto("run", workflow, "--wait", "--json", "--timeout", str(timeout_s), env=self.env)
        assert done.stdout, done.stderr
        record: dict[str, Any] = json.loads(done.stdout)
        record["_exit"] = done.returncode
        return record

    def close(self) -> None:
        for w in self.workers:
            w.kill()


def answered(record: dict[str, Any], action: str) -> dict[str, str]:
    step = next(s for s in record["steps"] if s["action"] == action)
    return {sub: o["status"] for sub, o in step["outcomes"].items()}


def test_collect_and_cleanup_runs_through_every_queue_with_rabbitmq_as_the_broker(
    amqp_url: str, tmp_path: Path
) -> None:
    stack = AmqpStack(amqp_url, tmp_path, RESOTO_EXAMPLE_ACCOUNTS="2", RESOTO_EXAMPLE_RESOURCES_PER_ACCOUNT="200")
    try:
        stack.worker("workflow")
        stack.worker("collect")
        stack.worker("cleanup,metrics", "--cleanup-expired", "--cleanup")
        stack.ready()
        record = stack.run_and_wait("collect_and_cleanup")
        assert record["status"] == "succeeded" and not record["has_errors"], record
        assert set(answered(record, "collect").values()) == {"done"}
        assert len(answered(record, "collect")) == 2
        for action in ("cleanup_plan", "cleanup", "generate_metrics"):
            assert set(answered(record, action).values()) == {"done"}, (action, record)
    finally:
        stack.close()


def test_a_hook_on_its_own_queue_and_quorum_queues(quorum_amqp_url: str, tmp_path: Path) -> None:
    """Quorum queues (RESOTO_BROKER_QUORUM_QUEUES): the routing is unchanged, a hook's own queue too."""
    stack = AmqpStack(quorum_amqp_url, tmp_path, RESOTO_BROKER_QUORUM_QUEUES="1")
    try:
        path = tmp_path / "hooked.yaml"
        path.write_text(yaml.safe_dump({"name": "hooked", "steps": [{"name": "probe_action"}]}))
        added = resoto("workflows", "add", str(path), env=stack.env)
        assert added.returncode == 0, added.stderr
        stack.worker("workflow")
        stack.worker("probe")  # tests.support.hooks subscribes `probe` to probe_action on its own queue
        stack.ready()
        record = stack.run_and_wait("hooked")
        assert record["status"] == "succeeded" and not record["has_errors"], record
        assert set(answered(record, "probe_action").values()) == {"done"}, record
    finally:
        stack.close()
