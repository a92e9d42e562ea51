"""The supervisor's recovery paths, one tick at a chosen time (no sleeping for periods)."""

from __future__ import annotations

import pytest

from resoto_tasks import engine, keys, runs, supervisor
from resoto_tasks.models import ActionMessage, Outcome, OutcomeStatus, Run, RunStatus, StepStatus
from resoto_tasks.redis_conn import client
from resoto_tasks.timeutil import iso, now_ms, utcnow
from tests.support.flow import add_workflow, sub, subscribed, unique, wait_finished, wait_until

pytestmark = pytest.mark.usefixtures("session_worker")


def _running(name: str) -> tuple[str, int]:
    run_id = engine.start(name).run_id or ""
    wait_until(lambda: runs.get(run_id).steps[1].status == StepStatus.running, what="step running")
    run = runs.get(run_id)
    wait_until(lambda: engine.dispatch_state(run_id, 1, run.steps[1].epoch) == "sent", what="sent")
    return run_id, run.steps[1].epoch


def _answer_done(run: Run, subscriber_id: str) -> None:
    """Record a done answer for step 1 as the subscriber task would (no task runs it here)."""
    step = run.steps[1]
    message = ActionMessage(
        run_id=run.id, workflow=run.workflow, step_index=1, step=step.name, action=step.action,
        subscriber_id=subscriber_id, blocking=True, deadline_ms=step.deadline_ms or 0,
    )  # fmt: skip
    runs.record_outcome(
        message, Outcome(subscriber_id=subscriber_id, status=OutcomeStatus.done, finished_at=iso(utcnow()))
    )


def test_a_step_being_dispatched_is_not_dispatched_again_by_the_supervisor() -> None:
    name = unique("window")
    add_workflow(name, [{"name": f"{name}_a", "timeout": 60}])
    with subscribed(sub(f"{name}_a", queue=unique("nowhere"), timeout=60)):
        run_id, epoch = _running(name)
        # the dispatcher is between its "running" transition and the send: the claim says so
        client().set(keys.dispatch_claim(run_id, 1, epoch), "claimed", px=10_000)
        supervisor.tick()
        assert runs.get(run_id).steps[1].epoch == epoch
        engine.cancel(run_id)


def test_a_step_whose_dispatcher_died_before_sending_is_dispatched_again() -> None:
    name = unique("lostsend")
    add_workflow(name, [{"name": f"{name}_a", "timeout": 60}])
    with subscribed(sub(f"{name}_a", queue=unique("nowhere"), timeout=60)) as first:
        run_id, epoch = _running(name)
    del first
    with subscribed(sub(f"{name}_a")):
        client().delete(keys.dispatch_claim(run_id, 1, epoch))  # the claim expired: nothing was sent
        supervisor.tick()
        run = wait_finished(run_id, 20)
    assert run.status == RunStatus.succeeded
    assert run.steps[1].epoch == epoch + 1


def test_a_step_whose_callback_was_lost_is_completed_after_the_grace() -> None:
    name = unique("lostcallback")
    add_workflow(name, [{"name": f"{name}_a", "timeout": 60}])
    silent = sub(f"{name}_a", queue=unique("nowhere"), timeout=60)
    with subscribed(silent):
        run_id, _ = _running(name)
        run = runs.get(run_id)
        # the subscriber answered, but its chord callback never arrives
        _answer_done(run, silent.subscriber_id)
        assert supervisor.tick(now_ms())["completed"] == 0  # within the grace: the callback may come
        done = supervisor.tick(now_ms() + supervisor.CALLBACK_GRACE_MS + 1000)
        assert done["completed"] == 1
        run = wait_finished(run_id, 10)
    assert run.steps[1].status == StepStatus.done
    assert run.status == RunStatus.succeeded


def test_a_step_past_its_deadline_times_out_at_the_tick() -> None:
    name = unique("deadline")
    add_workflow(name, [{"name": f"{name}_a", "timeout": 60}])
    with subscribed(sub(f"{name}_a", queue=unique("nowhere"), timeout=60)):
        run_id, _ = _running(name)
        deadline = runs.get(run_id).steps[1].deadline_ms or 0
        assert supervisor.tick(deadline - 1000)["timed_out"] == 0
        assert supervisor.tick(deadline + 1)["timed_out"] == 1
        run = wait_finished(run_id, 10)
    assert run.steps[1].status == StepStatus.timed_out


def test_an_answer_after_the_step_timed_out_is_recorded_and_ignored() -> None:
    name = unique("lateanswer")
    add_workflow(name, [{"name": f"{name}_a", "timeout": 60}])
    silent = sub(f"{name}_a", queue=unique("nowhere"), timeout=60)
    with subscribed(silent):
        run_id, _ = _running(name)
        run = runs.get(run_id)
        supervisor.tick((run.steps[1].deadline_ms or 0) + 1)
        wait_finished(run_id, 10)
        _answer_done(run, silent.subscriber_id)
    shown = runs.view(run_id)
    step = shown.steps[1]
    assert step.status == StepStatus.timed_out
    assert step.outcomes[silent.subscriber_id].status == OutcomeStatus.timed_out
    assert step.late_answers[silent.subscriber_id].status == OutcomeStatus.done
    assert step.late_answers[silent.subscriber_id].late
    assert shown.status == RunStatus.failed
