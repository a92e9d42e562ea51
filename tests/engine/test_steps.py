"""The state machine against a real Redis and real prefork workers: what needs real processes.

The rules themselves (outcomes, deadlines, overlap, duplicates, epochs) are tested in memory in
``test_memory_engine.py``; here: order through real chords, real soft time limits, the guarded
Lua transition under racing callbacks, a cooperative cancel, and workers one per queue.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from resoto_tasks import runs, runtime
from resoto_tasks.models import OutcomeStatus, RunStatus, StepCause, StepStatus
from resoto_tasks.subscribers import is_aborted
from resoto_tasks.workflows import builtin_workflows
from tests.support.flow import add_workflow, calls, sub, subscribed, unique, wait_finished, wait_until
from tests.support.workers import WorkerProcess

pytestmark = pytest.mark.usefixtures("session_worker")

BUILTIN_ACTIONS = [s.action for s in builtin_workflows()["collect_and_cleanup"].steps]


def test_collect_and_cleanup_runs_its_twelve_actions_in_order_each_after_the_previous_ended() -> None:
    subs = [sub(a, queue="workflow", sleep=0.05) for a in BUILTIN_ACTIONS]
    with subscribed(*subs):
        result = runtime.engine().start("collect_and_cleanup")
        assert result.run_id
        run = wait_finished(result.run_id, 60)
    assert run.status == RunStatus.succeeded
    assert [s.action for s in run.steps] == BUILTIN_ACTIONS
    assert all(s.status == StepStatus.done for s in run.steps)
    for before, after in zip(run.steps, run.steps[1:], strict=False):
        assert before.finished_at is not None and after.started_at is not None
        assert after.started_at >= before.finished_at
    ours = {s.subscriber_id for s in subs}
    recorded = [c for c in calls(run.id) if c["sub"] in ours]
    assert [c["step"] for c in recorded] == BUILTIN_ACTIONS


def test_a_slow_subscriber_holds_the_next_step_back() -> None:
    name = unique("slow")
    add_workflow(name, [{"name": f"{name}_a"}, {"name": f"{name}_b"}])
    slow, fast, nxt = sub(f"{name}_a", sleep=1.0), sub(f"{name}_a", sleep=0), sub(f"{name}_b")
    with subscribed(slow, fast, nxt):
        run = wait_finished(runtime.engine().start(name).run_id or "", 30)
    by_sub = {c["sub"]: c for c in calls(run.id)}
    assert by_sub[nxt.subscriber_id]["start"] >= by_sub[slow.subscriber_id]["end"]
    assert run.status == RunStatus.succeeded


@pytest.mark.parametrize(
    ("on_error", "run_status", "later"),
    [
        ("continue", RunStatus.succeeded, StepStatus.done),
        ("stop", RunStatus.failed, StepStatus.skipped),
    ],
)
def test_a_failing_subscriber_fails_its_step_and_the_run_follows_on_error(
    on_error: str, run_status: RunStatus, later: StepStatus
) -> None:
    name = unique("fail")
    add_workflow(name, [{"name": f"{name}_a", "on_error": on_error}, {"name": f"{name}_b"}])
    bad, good = sub(f"{name}_a", raising="boom"), sub(f"{name}_a")
    with subscribed(bad, good, sub(f"{name}_b")):
        run = wait_finished(runtime.engine().start(name).run_id or "", 30)
    step = next(s for s in run.steps if s.name == f"{name}_a")
    assert step.status == StepStatus.failed
    assert step.outcomes[bad.subscriber_id].status == OutcomeStatus.error
    assert "RuntimeError: boom" in (step.outcomes[bad.subscriber_id].error or "")
    assert step.outcomes[good.subscriber_id].status == OutcomeStatus.done
    assert run.status == run_status
    assert run.has_errors
    assert next(s for s in run.steps if s.name == f"{name}_b").status == later
    if on_error == "stop":
        assert run.reason and "on_error: stop" in run.reason


def test_a_step_times_out_at_the_supervisor_when_a_subscriber_never_answers() -> None:
    name = unique("timeout")
    add_workflow(name, [{"name": f"{name}_a", "timeout": 1}, {"name": f"{name}_b"}])
    # nobody consumes this queue: the task is never run, only the supervisor can end the step
    silent = sub(f"{name}_a", queue=unique("nowhere"), timeout_s=1)
    with subscribed(silent, sub(f"{name}_b")):
        run = wait_finished(runtime.engine().start(name).run_id or "", 30)
    step = next(s for s in run.steps if s.name == f"{name}_a")
    assert step.status == StepStatus.timed_out
    assert step.outcomes[silent.subscriber_id].status == OutcomeStatus.timed_out
    assert run.status == RunStatus.succeeded and run.has_errors
    assert next(s for s in run.steps if s.name == f"{name}_b").status == StepStatus.done


def test_a_hook_that_overruns_its_own_timeout_ends_timed_out_not_failed() -> None:
    name = unique("overrun")
    # The step allows 30 s, so its own deadline never races the hook's (which would record "no
    # answer before the step's deadline" when a supervisor tick comes first).
    add_workflow(name, [{"name": f"{name}_a", "timeout": 30}])
    slow = sub(f"{name}_a", timeout_s=1, sleep=10)  # the prefork pool's soft time limit stops it
    with subscribed(slow):
        run = wait_finished(runtime.engine().start(name).run_id or "", 30)
    step = run.steps[1]
    assert step.status == StepStatus.timed_out
    outcome = step.outcomes[slow.subscriber_id]
    assert outcome.status == OutcomeStatus.timed_out
    assert outcome.error == "overran its timeout of 1 s"


def test_racing_step_callbacks_advance_the_run_once_through_the_guarded_transition() -> None:
    name = unique("dup")
    add_workflow(name, [{"name": f"{name}_a"}, {"name": f"{name}_b"}])
    silent = sub(f"{name}_a", queue=unique("nowhere"), timeout_s=60)
    with subscribed(silent, sub(f"{name}_b", queue=unique("nowhere"), timeout_s=60)):
        run_id = runtime.engine().start(name).run_id or ""
        wait_until(lambda: runs.get(run_id).steps[1].status == StepStatus.running, what="step a sent")
        epoch = runs.get(run_id).steps[1].epoch
        results: list[bool] = []
        barrier = threading.Barrier(8)

        def callback() -> None:
            barrier.wait()
            done = runtime.engine().complete(run_id, 1, epoch, StepCause.answered, {}, None)
            results.append(done is not None)

        threads = [threading.Thread(target=callback) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results.count(True) == 1
        # a's subscriber never answered (lost); post_a and pre_b passed through; b is sent once
        wait_until(lambda: runs.get(run_id).step_index == 4, what="step b sent")
        run = runs.get(run_id)
        assert [s.status for s in run.steps[1:5]] == [
            StepStatus.failed,
            StepStatus.done,
            StepStatus.done,
            StepStatus.running,
        ]
        assert run.steps[4].epoch == 1
        assert runtime.engine().complete(run_id, 1, epoch, StepCause.answered, {}, None) is None
        runtime.engine().cancel(run_id)


def test_a_cancel_is_quiet_and_cooperative_the_hook_stops_through_its_abort_check(
    session_worker: WorkerProcess,
) -> None:
    name = unique("cancel")
    add_workflow(name, [{"name": f"{name}_a"}, {"name": f"{name}_b"}])
    slow = sub(f"{name}_a", sleep=20, honour_abort=True)
    after = sub(f"{name}_b")
    with subscribed(slow, after):
        run_id = runtime.engine().start(name).run_id or ""
        wait_until(lambda: bool(runs.progress_of(run_id)), what="the slow hook reports progress")
        cancelled = runtime.engine().cancel(run_id)
        assert cancelled is not None
        run = runs.get(run_id)
        assert run.status == RunStatus.cancelled
        assert run.steps[1].status == StepStatus.cancelled
        assert all(s.status == StepStatus.cancelled for s in run.steps[2:])
        assert is_aborted(run_id)
        assert runtime.engine().cancel(run_id) is None
        # the hook saw the flag and ended long before its 20 s (and before the terminate grace)
        wait_until(lambda: len(calls(run_id)) == 1, 15, "the hook returned")
    (call,) = calls(run_id)
    assert call["end"] - call["start"] < 15
    assert all(c["sub"] != after.subscriber_id for c in calls(run_id))
    lines = [line for line in session_worker.tail(200_000).splitlines() if run_id in line]
    assert lines and not [line for line in lines if " ERROR " in line or "Traceback" in line]


def test_separate_workers_one_per_queue_run_the_hourly_workflow(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    workers = [start_worker(q, wait=False) for q in ("collect", "cleanup", "metrics", "workflow")]
    for w in workers:
        w.wait_ready()
    subs = [
        sub(a, queue=q)
        for a, q in [
            ("collect", "collect"),
            ("cleanup_plan", "cleanup"),
            ("cleanup", "cleanup"),
            ("generate_metrics", "metrics"),
        ]
    ]
    with subscribed(*subs):
        run = wait_finished(runtime.engine().start("collect_and_cleanup").run_id or "", 60)
    assert run.status == RunStatus.succeeded
    assert {c["sub"] for c in calls(run.id)} >= {s.subscriber_id for s in subs}
