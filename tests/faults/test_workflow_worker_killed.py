"""The ``workflow`` worker (step callbacks, supervisor) SIGKILLed between two steps.

While it is gone the subscribers of the current step finish and their chord's callback waits in
the ``workflow`` queue; nothing moves. When a workflow worker returns, the run goes on from
where it was: the next step is dispatched once, and the run ends.
"""

from __future__ import annotations

import time

import pytest

from resoto_tasks import keys
from resoto_tasks.models import OutcomeStatus, RunStatus, StepStatus
from resoto_tasks.routing import WORKFLOW
from resoto_tasks.transitions import CALLBACK_GRACE_MS
from tests.faults.support import SUPERVISOR_INTERVAL_S, FaultStack, behave, parse_iso, wait_until

pytestmark = pytest.mark.faults

QUEUE = "faults"


def two_step_workflow(stack: FaultStack, first_sleep_s: float) -> None:
    stack.add_workflow("two_steps", [{"name": "first", "timeout": 60}, {"name": "second", "timeout": 60}])
    stack.hold([behave("first", "slow", QUEUE, sleep=first_sleep_s), behave("second", "quick", QUEUE)])


def test_the_workflow_worker_killed_while_a_step_runs_resumes_the_run_when_it_returns(fault_stack: FaultStack) -> None:
    stack = fault_stack
    flow = stack.worker(WORKFLOW, wait=False)
    actors = stack.worker(QUEUE, wait=False)
    stack.workers_ready(flow, actors)
    two_step_workflow(stack, first_sleep_s=2.0)

    run_id = stack.start("two_steps")
    # The record says "running" before the subscriber's message is sent: wait until it runs.
    wait_until(lambda: "1/slow" in stack.progress(run_id), 15, "the slow subscriber running")
    flow.kill()
    killed_at = time.time()
    # The subscriber answers and its callback is queued; with no workflow worker nothing moves.
    wait_until(lambda: "1/slow" in stack.outcomes(run_id), 15, "the slow subscriber answered")
    wait_until(lambda: stack.r.llen(WORKFLOW) > 0, 5, "the step callback waiting in the workflow queue")
    time.sleep(2 * SUPERVISOR_INTERVAL_S)  # two ticks' worth: nobody would tick anyway
    stalled = stack.run(run_id)
    assert stalled.status == RunStatus.running
    assert (stalled.step_index, stalled.steps[1].status) == (1, StepStatus.running)

    back_at = time.time()
    stack.worker(WORKFLOW)
    run = stack.wait_finished(run_id, 20)

    assert run.status == RunStatus.succeeded, run.reason
    assert [s.status for s in run.steps] == [StepStatus.done] * 6
    calls = stack.calls(run_id)
    assert [c["sub"] for c in calls] == ["slow", "quick"]  # each subscriber ran exactly once
    assert calls[0]["start"] < killed_at < calls[0]["end"]
    assert calls[1]["start"] >= back_at  # the next step was dispatched by the returning worker
    assert int(parse_iso(run.steps[4].started_at or "").timestamp() * 1000) >= int(back_at * 1000)
    assert run.steps[4].outcomes["quick"].status == OutcomeStatus.done


def test_a_lost_step_callback_is_made_good_by_the_supervisor_of_a_returning_workflow_worker(
    fault_stack: FaultStack,
) -> None:
    """The callback message itself is lost with the worker (here: dropped from the queue); the
    supervisor sees every blocking subscriber answered and completes the step after its grace."""
    stack = fault_stack
    flow = stack.worker(WORKFLOW, wait=False)
    actors = stack.worker(QUEUE, wait=False)
    stack.workers_ready(flow, actors)
    two_step_workflow(stack, first_sleep_s=1.0)

    run_id = stack.start("two_steps")
    # The record says "running" before the subscriber's message is sent: wait until it runs.
    wait_until(lambda: "1/slow" in stack.progress(run_id), 15, "the slow subscriber running")
    flow.kill()
    wait_until(lambda: stack.r.llen(WORKFLOW) > 0, 15, "the step callback waiting in the workflow queue")
    assert stack.r.delete(WORKFLOW) == 1  # the callback is gone for good
    # A linked callback is sent just before the answer is stored: wait for the stored answer.
    wait_until(lambda: "1/slow" in stack.outcomes(run_id), 15, "the slow subscriber's answer stored")
    # Records keep milliseconds, and so does the supervisor's grace decision.
    answered_ms = int(parse_iso(stack.outcomes(run_id)["1/slow"]["finished_at"]).timestamp() * 1000)

    stack.worker(WORKFLOW)
    run = stack.wait_finished(run_id, 20)

    assert run.status == RunStatus.succeeded, run.reason
    first = run.steps[1]
    assert first.status == StepStatus.done
    assert int(parse_iso(first.finished_at or "").timestamp() * 1000) >= answered_ms + CALLBACK_GRACE_MS
    assert [c["sub"] for c in stack.calls(run_id)] == ["slow", "quick"]
    assert stack.r.scard(keys.runs_active()) == 0
