"""Subscribers as workers register them: liveness, expiry, and answers that are not clean."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from resoto_tasks import runtime, subscribers
from resoto_tasks.models import OutcomeStatus, RunStatus, StepStatus
from tests.support.cli import resoto
from tests.support.flow import add_workflow, sub, subscribed, unique, wait_finished, wait_until
from tests.support.workers import WorkerProcess

pytestmark = pytest.mark.usefixtures("session_worker")


def _probe_live() -> bool:
    return any(s.subscriber_id.endswith(".probe") for s in subscribers.live("probe_action"))


def test_a_worker_registers_its_hooks_and_a_dead_workers_subscriptions_expire(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    worker = start_worker("probe")
    wait_until(_probe_live, 10, "probe hook registered")
    proc = resoto("subscribers", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(proc.stdout)
    assert any(s["action"] == "probe_action" and worker.name in s["holders"] for s in listed)
    worker.kill()  # SIGKILL: no clean shutdown, the heartbeat just stops
    wait_until(lambda: not _probe_live(), 6 + 3, "subscription expired within the TTL")


def test_a_cleanly_stopped_worker_drops_its_subscriptions_at_once(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    worker = start_worker("probe")
    wait_until(_probe_live, 10, "probe hook registered")
    worker.stop()
    assert not _probe_live()


def test_a_subscriber_returning_garbage_fails_the_step_with_a_message() -> None:
    name = unique("garbage")
    add_workflow(name, [{"name": f"{name}_a"}])
    bad = sub(f"{name}_a", garbage=True)
    with subscribed(bad):
        run = wait_finished(runtime.engine().start(name).run_id or "", 20)
    outcome = run.steps[1].outcomes[bad.subscriber_id]
    assert outcome.status == OutcomeStatus.error
    assert "not JSON" in (outcome.error or "")
    assert run.steps[1].status == StepStatus.failed
    assert run.steps[2].status == StepStatus.done  # on_error: continue


def test_a_subscriber_hanging_past_its_hard_time_limit_is_recorded_as_lost() -> None:
    name = unique("hang")
    add_workflow(name, [{"name": f"{name}_a", "timeout": 60, "on_error": "stop"}])
    hanging = sub(f"{name}_a", timeout_s=1, hang=True)
    other = sub(f"{name}_a")
    with subscribed(hanging, other):
        run = wait_finished(runtime.engine().start(name).run_id or "", 30)
    step = run.steps[1]
    assert step.outcomes[hanging.subscriber_id].status == OutcomeStatus.lost
    assert step.outcomes[other.subscriber_id].status == OutcomeStatus.done
    assert step.status == StepStatus.failed
    assert run.status == RunStatus.failed
    assert run.steps[2].status == StepStatus.skipped
