"""Redis restarted under a running deployment, with append-only persistence.

While idle (crash: SIGKILL): the schedule, history, store, pauses and workflows come back value
for value, the workers carry on without a restart, and a new beat finds the schedule as it was.
In the middle of a run (clean restart): the in-flight run resumes or ends with a recorded reason,
and the ``wait`` run queued behind it survives and runs next.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from resoto_tasks import keys
from resoto_tasks.models import RunStatus, StepStatus
from resoto_tasks.routing import WORKFLOW
from resoto_tasks.settings import get_settings
from tests.faults.support import SUPERVISOR_INTERVAL_S, FaultStack, behave, database, parse_iso, wait_until

pytestmark = pytest.mark.faults

QUEUE = "faults"


def durable_state(stack: FaultStack) -> dict[str, Any]:
    """Every key that must survive, with its value: schedule, pauses, workflows, history, store."""
    p = keys.redbeat_prefix()
    wanted = [
        f"{p}wf:*",
        keys.schedule_paused(),
        keys.workflows(),
        keys.workflows_version(),
        keys.runs_index(),
        keys.runs_of_workflow("*"),
        keys.run("*"),
        f"{get_settings().key_prefix}:res:*",  # the resource store and the example cloud
        f"{get_settings().key_prefix}:cloud:*",
        keys.workflow_queued("*"),
    ]
    state = database(stack.r, wanted)
    schedule_key = f"{p}:schedule"
    state["schedule scores"] = {k: s for k, s in stack.r.zrange(schedule_key, 0, -1, withscores=True) if "wf:" in k}
    return state


def test_redis_killed_and_restarted_while_idle_loses_nothing_and_the_workers_carry_on(
    fault_stack: FaultStack,
) -> None:
    stack = fault_stack
    stack.env.update({"RESOTO_EXAMPLE_ACCOUNTS": "2", "RESOTO_EXAMPLE_RESOURCES_PER_ACCOUNT": "500"})
    flow = stack.worker("workflow,collect", wait=False)
    beat = stack.beat()
    stack.workers_ready(flow)
    stack.add_workflow("nightly", [{"name": "night"}], triggers=[{"cron": "0 3 * * *"}])
    stack.add_workflow("paused_one", [{"name": "later"}], triggers=[{"interval": "1h"}])
    assert stack.cli("schedule", "pause", "paused_one", "--note", "until the migration").returncode == 0
    entries = f"{keys.redbeat_prefix()}wf:*"
    wait_until(lambda: len(list(stack.r.scan_iter(match=entries))) == 2, 15, "the beat created both entries")
    history = [stack.run_and_wait("collect")["id"] for _ in range(2)]
    # A beat does not survive an outage yet (see test_redis_unreachable); this test is about data.
    beat.stop()
    before = durable_state(stack)
    assert any(k.endswith(":data") for k in before), "nothing collected"

    stack.server.kill()
    time.sleep(2)  # the workers and their heartbeats hit a dead Redis for a while
    stack.server.start()

    assert durable_state(stack) == before
    listed = stack.cli("runs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [r["id"] for r in json.loads(listed.stdout)] == history[::-1]
    # The same worker goes on, and a new beat finds the schedule as it was: nothing to add.
    again = stack.run_and_wait("collect", timeout_s=60)
    assert again["status"] == "succeeded", again
    assert flow.proc is not None and flow.proc.poll() is None
    stack.beat().wait_for("beat: schedule synced (3 entries, added=0 changed=0 removed=0)")
    rows = {row["workflow"]: row for row in json.loads(stack.cli("schedule", "list", "--json").stdout)}
    assert rows["paused_one"]["paused"] and rows["paused_one"]["paused_note"] == "until the migration"
    assert rows["nightly"]["scheduled"] and not rows["nightly"]["paused"]


def two_step_workflow(stack: FaultStack, timeout_s: float, gate: str | None = None) -> None:
    """``first`` sleeps 3 s, or with ``gate`` waits until the test sets that key (so a slow machine
    cannot let the run finish before the fault is injected)."""
    steps = [{"name": "first", "timeout": timeout_s}, {"name": "second", "timeout": timeout_s}]
    stack.add_workflow("two_steps", steps, on_surpass="wait")
    held: dict[str, Any] = {"until_key": gate} if gate else {"sleep": 3}
    slow = behave("first", "slow", QUEUE, timeout_s=timeout_s, **held)
    stack.hold([slow, behave("second", "quick", QUEUE, timeout_s=timeout_s)])


def test_redis_restarted_in_the_middle_of_a_run_ends_it_with_a_reason_and_the_queued_wait_run_follows(
    fault_stack: FaultStack,
) -> None:
    """Whatever the restart breaks, nothing hangs: each run ends, with a reason when it did not
    succeed, within its steps' timeouts. What it can break: a worker that holds an unacknowledged
    message when the connection drops often exits ('Unrecoverable error' in celery 5.7.0's
    connection-loss handling), so the next step waits for its deadline; run workers under a
    process supervisor."""
    stack = fault_stack
    flow = stack.worker(WORKFLOW, wait=False)
    actors = stack.worker(QUEUE, wait=False)
    stack.workers_ready(flow, actors)
    timeout_s = 6.0
    gate = "test:gate:two_steps"
    two_step_workflow(stack, timeout_s, gate)

    running = stack.start("two_steps")
    queued = stack.cli("run", "two_steps", "--json")
    assert queued.returncode == 0, queued.stderr
    queued_id = json.loads(queued.stdout)["run_id"]
    assert stack.run(queued_id).status == RunStatus.queued
    wait_until(lambda: stack.run(running).steps[1].status == StepStatus.running, 15, "step first dispatched")
    time.sleep(0.5)  # the slow subscriber is waiting at its gate

    stack.server.restart()
    restarted_at = time.time()
    stack.r.set(gate, "open")

    assert stack.r.get(keys.workflow_queued("two_steps")) == queued_id
    assert stack.run(queued_id).status == RunStatus.queued
    bound_s = 2 * timeout_s + 2 * SUPERVISOR_INTERVAL_S + 2
    first = stack.wait_finished(running, bound_s)
    assert parse_iso(first.finished_at or "").timestamp() - restarted_at <= bound_s
    assert first.status == RunStatus.succeeded or (first.status == RunStatus.failed and first.reason), first
    follower = stack.wait_finished(queued_id, bound_s + 5)
    assert parse_iso(follower.started_at or "") >= parse_iso(first.finished_at or "")
    assert follower.status == RunStatus.succeeded or (follower.status == RunStatus.failed and follower.reason)
    assert stack.r.scard(keys.runs_active()) == 0
    assert stack.r.get(keys.workflow_queued("two_steps")) is None


def test_a_subscriber_running_while_the_store_redis_restarts_still_answers_done(split_stack: FaultStack) -> None:
    stack = split_stack
    flow = stack.worker(WORKFLOW, wait=False)
    actors = stack.worker(QUEUE, wait=False)
    stack.workers_ready(flow, actors)
    gate = "test:gate:store_restart"
    two_step_workflow(stack, 8, gate)
    running = stack.start("two_steps")
    wait_until(lambda: stack.run(running).steps[1].status == StepStatus.running, 15, "step first dispatched")
    time.sleep(0.5)

    stack.server.kill()  # the store and run state only: the broker stays up
    time.sleep(1.5)
    stack.server.start()
    stack.r.set(gate, "open")  # the subscriber, polling its gate through the outage, finishes now

    run = stack.wait_finished(running, 30)
    assert run.steps[1].outcomes["slow"].status == "done", run.steps[1].outcomes["slow"]
    assert run.status == RunStatus.succeeded, run.reason
