"""Helpers for engine tests: unique workflows stored in Redis, test subscriptions, waiting."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import yaml

from resoto_tasks import keys, runs, runtime, subscribers, workflows
from resoto_tasks.models import Run, Subscription
from resoto_tasks.redis_conn import client


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def add_workflow(
    name: str, steps: list[dict[str, Any]], on_surpass: str = "wait", triggers: list[dict[str, Any]] | None = None
) -> str:
    """Store a user workflow in Redis, as ``resoto-tasks workflows add`` does."""
    doc = {"name": name, "on_surpass": on_surpass, "steps": steps, "triggers": triggers or []}
    pipe = client().pipeline()
    pipe.hset(keys.workflows(), name, yaml.safe_dump(doc))
    workflows.bump_version(pipe)
    pipe.execute()
    return name


def sub(
    action: str,
    sid: str | None = None,
    queue: str = "workflow",
    timeout_s: float = 30,
    blocking: bool = True,
    task: str = "tests.behave",
    raising: str | None = None,
    **kwargs: Any,
) -> Subscription:
    """A subscription of ``task`` (by default the behaving test task: ``kwargs`` say how it behaves;
    ``raising`` makes it raise with that message)."""
    if raising is not None:
        kwargs["raise"] = raising
    return Subscription(
        action=action,
        subscriber_id=sid or unique(action),
        task=task,
        queue=queue,
        timeout_s=timeout_s,
        wait_for_completion=blocking,
        kwargs=kwargs,
    )


@contextmanager
def subscribed(*subs: Subscription) -> Iterator[str]:
    """Hold ``subs`` alive for the test (as a worker heartbeat would), drop them afterwards."""
    holder = unique("pytest")
    subscribers.register(list(subs), holder, ttl_s=600)
    try:
        yield holder
    finally:
        subscribers.unregister(holder)


def wait_finished(run_id: str, timeout_s: float = 30) -> Run:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = runs.get(run_id)
        if run.status.finished:
            return runtime.engine().view(run_id)
        time.sleep(0.05)
    raise TimeoutError(f"run {run_id} still {runs.get(run_id).status} after {timeout_s}s")


def wait_until(predicate: Any, timeout_s: float = 20, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} not met in {timeout_s}s")


def calls(run_id: str) -> list[dict[str, Any]]:
    """What ``tests.behave`` recorded for the run, in completion order."""
    return [json.loads(c) for c in client().lrange(f"test:calls:{run_id}", 0, -1)]
