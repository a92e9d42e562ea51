"""Every rule of the engine, in memory: no Redis, no worker, a clock the test moves.

The engine here is the real one (:class:`resoto_tasks.engine.Engine`) over
:class:`resoto_tasks.memory.MemoryStore` (the same commands the Redis store's Lua script runs)
and :class:`resoto_tasks.memory.MemoryTasks` (what would be sent waits until ``drain``).
"""

from __future__ import annotations

from typing import Any

import pytest

from resoto_tasks import transitions
from resoto_tasks.memory import Clock, MemoryStore, MemoryTasks, failing, memory_engine, silent
from resoto_tasks.models import (
    ActionMessage,
    EventTrigger,
    OnError,
    OnSurpass,
    Outcome,
    OutcomeStatus,
    RunEndCause,
    RunStatus,
    StartStatus,
    StepCause,
    StepStatus,
    Subscription,
    TriggerInfo,
    TriggerKind,
    Workflow,
    WorkflowDefinition,
)
from resoto_tasks.supervisor import tick
from resoto_tasks.timeutil import from_ms
from resoto_tasks.workflows import builtin_workflows


def sub(action: str, sid: str | None = None, timeout_s: float = 30, blocking: bool = True) -> Subscription:
    return Subscription(
        action=action,
        subscriber_id=sid or f"{action}-sub",
        task="tests.behave",
        queue="workflow",
        timeout_s=timeout_s,
        wait_for_completion=blocking,
    )


def workflow(
    name: str = "wf",
    steps: tuple[str, ...] = ("a",),
    on_surpass: OnSurpass = OnSurpass.wait,
    on_error: OnError = OnError.continue_,
    timeout_s: float = 10,
    **extra: Any,
) -> Workflow:
    definition = WorkflowDefinition.model_validate(
        {
            "name": name,
            "on_surpass": on_surpass.value,
            "steps": [{"name": s, "timeout": timeout_s, "on_error": on_error.value} for s in steps],
            **extra,
        }
    )
    return definition.build()


def setup(*wfs: Workflow) -> tuple[Any, MemoryStore, MemoryTasks, Clock]:
    return memory_engine({w.name: w for w in wfs})


def started(engine: Any, name: str = "wf") -> str:
    result = engine.start(name)
    assert result.status == StartStatus.started, result
    assert result.run_id is not None
    return str(result.run_id)


# ---------------------------------------------------------------------------------------------
# Steps in order, and the steps nobody subscribes to
# ---------------------------------------------------------------------------------------------


def test_the_hourly_workflow_sends_each_subscribed_step_only_after_the_previous_was_recorded() -> None:
    hourly = builtin_workflows()["collect_and_cleanup"]
    engine, store, tasks, _ = setup(hourly)
    for action in ("collect", "cleanup_plan", "cleanup", "generate_metrics"):
        store.subscribe(sub(action, f"{action}-1"), sub(action, f"{action}-2"))
    run_id = started(engine, hourly.name)
    tasks.drain(engine)
    run = store.run(run_id)
    assert run.status == RunStatus.succeeded and run.cause == RunEndCause.completed and not run.has_errors
    assert [s.status for s in run.steps] == [StepStatus.done] * 12
    assert [(index, subs) for _, index, _, subs in tasks.sent] == [
        (1, ("collect-1", "collect-2")),
        (4, ("cleanup_plan-1", "cleanup_plan-2")),
        (7, ("cleanup-1", "cleanup-2")),
        (10, ("generate_metrics-1", "generate_metrics-2")),
    ]
    empty = [s for s in run.steps if not s.blocking]
    assert all(s.cause == StepCause.no_subscriber for s in empty)
    assert store.records("run_finished")[-1]["status"] == "succeeded"


def test_a_step_sends_one_task_per_subscriber_and_the_callback_gets_their_answers() -> None:
    engine, store, tasks, _ = setup(workflow())
    store.subscribe(sub("a", "one"), sub("a", "two"))
    run_id = started(engine)
    tasks.drain(engine)
    step = store.run(run_id).steps[1]
    assert step.blocking == ["one", "two"]
    assert set(step.task_ids) == {"one", "two"}
    assert step.task_ids["one"] == f"{run_id}:1:1:one"  # readable in Flower: run, step, epoch, subscriber
    assert {s: o.status for s, o in step.outcomes.items()} == {"one": OutcomeStatus.done, "two": OutcomeStatus.done}


# ---------------------------------------------------------------------------------------------
# Errors: continue and stop
# ---------------------------------------------------------------------------------------------


def test_a_tolerated_error_does_not_fail_the_run_but_marks_it_with_errors() -> None:
    engine, store, tasks, _ = setup(workflow(steps=("a", "b")))
    store.subscribe(sub("a", "bad"), sub("b", "good"))
    tasks.answers_by_subscriber["bad"] = failing("disk full")
    run_id = started(engine)
    tasks.drain(engine)
    run = store.run(run_id)
    assert run.status == RunStatus.succeeded
    assert run.has_errors
    assert run.cause == RunEndCause.completed
    assert run.reason == "steps with errors: a"
    assert run.steps[1].status == StepStatus.failed and run.steps[1].error == "bad: disk full"
    assert run.steps[4].status == StepStatus.done  # the next step still ran
    assert store.stat("runs", "wf", "succeeded") == 1


def test_an_error_under_on_error_stop_fails_the_run_and_skips_the_rest() -> None:
    engine, store, tasks, _ = setup(workflow(steps=("a", "b"), on_error=OnError.stop))
    store.subscribe(sub("a", "bad"), sub("b", "never"))
    tasks.answers_by_subscriber["bad"] = failing("boom")
    run_id = started(engine)
    tasks.drain(engine)
    run = store.run(run_id)
    assert run.status == RunStatus.failed and run.cause == RunEndCause.stopped and run.has_errors
    assert run.reason == "step a failed (on_error: stop)"
    assert [s.status for s in run.steps[2:]] == [StepStatus.skipped] * 4
    assert all(subs != ("never",) for *_, subs in tasks.sent)


def test_a_subscriber_that_overruns_its_own_timeout_times_the_step_out_instead_of_failing_it() -> None:
    engine, store, tasks, _ = setup(workflow())
    store.subscribe(sub("a", "slow"))

    def overran(message: ActionMessage) -> Outcome:
        return Outcome(subscriber_id=message.subscriber_id, status=OutcomeStatus.timed_out, error="overran its timeout")

    tasks.answers_by_subscriber["slow"] = overran
    run_id = started(engine)
    tasks.drain(engine)
    assert store.run(run_id).steps[1].status == StepStatus.timed_out


# ---------------------------------------------------------------------------------------------
# Deadlines and the supervisor
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("on_error", "expected"), [(OnError.continue_, RunStatus.succeeded), (OnError.stop, RunStatus.failed)]
)
def test_a_step_times_out_at_the_first_tick_past_its_deadline(on_error: OnError, expected: RunStatus) -> None:
    engine, store, tasks, clock = setup(workflow(on_error=on_error, timeout_s=10))
    store.subscribe(sub("a", "hangs", timeout_s=20))
    tasks.answers_by_subscriber["hangs"] = silent
    run_id = started(engine)
    tasks.drain(engine)
    step = store.run(run_id).steps[1]
    assert step.deadline_ms == clock.now_ms + 20_000  # the longest of the step's and the subscribers' timeouts
    clock.now_ms += 19_999
    assert engine.supervise(run_id, clock.now_ms) is None
    clock.now_ms += 1
    assert engine.supervise(run_id, clock.now_ms) == "timed_out"
    tasks.drain(engine)  # a producer hands the run on; a workflow task moves it
    run = store.run(run_id)
    assert run.steps[1].status == StepStatus.timed_out
    assert run.steps[1].outcomes["hangs"].status == OutcomeStatus.timed_out
    assert tasks.revoked == [((f"{run_id}:1:1:hangs",), True)]
    assert run.status == expected and run.has_errors


def test_an_answer_after_the_step_timed_out_is_shown_late_and_changes_nothing() -> None:
    engine, store, tasks, clock = setup(workflow())
    store.subscribe(sub("a", "late", timeout_s=5))
    tasks.answers_by_subscriber["late"] = silent
    run_id = started(engine)
    tasks.drain(engine)
    clock.now_ms += 10_000  # the step's own timeout (10 s) is the longer one
    assert engine.supervise(run_id, clock.now_ms) == "timed_out"
    tasks.drain(engine)
    step = store.run(run_id).steps[1]
    tasks.results[step.task_ids["late"]] = Outcome(subscriber_id="late", status=OutcomeStatus.done)
    engine.step_done(run_id, 1, step.epoch, [tasks.results[step.task_ids["late"]].model_dump(mode="json")], "cb")
    viewed = engine.view(run_id)
    assert viewed.steps[1].outcomes["late"].status == OutcomeStatus.timed_out
    assert viewed.steps[1].late_answers["late"].late
    assert store.run(run_id).status == RunStatus.succeeded


def test_a_step_whose_callback_was_lost_is_completed_after_the_grace() -> None:
    engine, store, tasks, clock = setup(workflow())
    store.subscribe(sub("a", "one"))
    run_id = started(engine)
    tasks.drain(engine, limit=1)  # the advance: the step is sent
    (_, (run, index, _)) = tasks.queue.popleft()  # the chord ran, but its callback never came
    step = run.steps[index]
    tasks.results[step.task_ids["one"]] = Outcome(
        subscriber_id="one", status=OutcomeStatus.done, finished_at=from_ms(clock.now_ms)
    )
    clock.now_ms += transitions.CALLBACK_GRACE_MS - 1
    assert engine.supervise(run_id, clock.now_ms) is None
    clock.now_ms += 1
    assert engine.supervise(run_id, clock.now_ms) == "completed"
    tasks.drain(engine)
    assert store.run(run_id).status == RunStatus.succeeded


def test_a_run_whose_producer_died_before_handing_it_over_is_resumed_after_the_grace() -> None:
    engine, store, tasks, clock = setup(workflow())
    store.subscribe(sub("a"))
    run_id = started(engine)
    tasks.queue.clear()  # the process that started it died before its advance was delivered
    clock.now_ms += transitions.RESUME_GRACE_MS - 1
    assert engine.supervise(run_id, clock.now_ms) is None
    clock.now_ms += 1
    assert engine.supervise(run_id, clock.now_ms) == "resumed"
    tasks.drain(engine)
    assert store.run(run_id).status == RunStatus.succeeded


def test_the_supervisor_tick_reports_what_it_did(r: Any) -> None:
    engine, store, tasks, clock = setup(workflow())
    store.subscribe(sub("a", "hangs", timeout_s=1))
    tasks.answers_by_subscriber["hangs"] = silent
    run_id = started(engine)
    tasks.drain(engine)
    r.sadd("rt:runs:active", run_id)  # the tick walks the active set in Redis; the runs live in memory
    try:
        assert tick(engine, clock.now_ms + 10_000).get("timed_out") == 1
    finally:
        r.srem("rt:runs:active", run_id)


# ---------------------------------------------------------------------------------------------
# Who is waited for
# ---------------------------------------------------------------------------------------------


def test_a_subscriber_registered_after_the_step_started_is_not_waited_for() -> None:
    engine, store, tasks, _ = setup(workflow())
    store.subscribe(sub("a", "early"))
    tasks.answers_by_subscriber["early"] = silent
    run_id = started(engine)
    tasks.drain(engine)
    store.subscribe(sub("a", "late"))
    assert store.run(run_id).steps[1].blocking == ["early"]


def test_non_blocking_subscribers_are_sent_but_not_waited_for() -> None:
    engine, store, tasks, _ = setup(workflow())
    store.subscribe(sub("a", "fire", blocking=False))
    tasks.answers_by_subscriber["fire"] = silent
    run_id = started(engine)
    tasks.drain(engine)
    run = store.run(run_id)
    assert run.status == RunStatus.succeeded
    assert run.steps[1].nonblocking == ["fire"] and run.steps[1].cause == StepCause.no_blocking_subscriber
    assert [subs for *_, subs in tasks.sent] == [("fire",)]


# ---------------------------------------------------------------------------------------------
# Duplicates, stale epochs, redelivered dispatchers
# ---------------------------------------------------------------------------------------------


def test_a_duplicated_step_callback_advances_the_run_once() -> None:
    engine, store, tasks, _ = setup(workflow(steps=("a", "b")))
    store.subscribe(sub("a", "one"), sub("b", "two"))
    tasks.answers_by_subscriber["two"] = silent
    run_id = started(engine)
    tasks.drain(engine)
    answer = [Outcome(subscriber_id="one", status=OutcomeStatus.done).model_dump(mode="json")]
    before = store.run(run_id)
    engine.step_done(run_id, 1, 1, answer, "another-delivery")
    tasks.drain(engine)
    assert store.run(run_id) == before
    assert len(tasks.sent) == 2


def test_a_callback_of_an_older_dispatch_is_ignored() -> None:
    engine, store, tasks, _ = setup(workflow())
    store.subscribe(sub("a", "one"))
    tasks.answers_by_subscriber["one"] = silent
    run_id = started(engine)
    tasks.drain(engine)
    stale = [Outcome(subscriber_id="one", status=OutcomeStatus.done).model_dump(mode="json")]
    engine.step_done(run_id, 1, 0, stale, "old-callback")
    assert store.run(run_id).steps[1].status == StepStatus.running


def test_a_redelivered_dispatcher_sends_its_step_again_under_the_next_epoch_and_nobody_else_does() -> None:
    engine, store, tasks, _ = setup(workflow())
    store.subscribe(sub("a", "one"))
    run_id = started(engine)
    engine.advance(run_id, "dispatcher-1")  # committed, then the process died before sending
    tasks.queue.clear()
    engine.advance(run_id, "someone-else")
    assert store.run(run_id).steps[1].epoch == 1 and not tasks.queue
    engine.advance(run_id, "dispatcher-1")  # the same message, redelivered
    assert store.run(run_id).steps[1].epoch == 2
    tasks.drain(engine)
    assert store.run(run_id).status == RunStatus.succeeded


def test_the_errback_reads_the_answers_that_came_and_records_the_rest_as_lost() -> None:
    engine, store, tasks, _ = setup(workflow())
    store.subscribe(sub("a", "ok"), sub("a", "died"))
    tasks.answers_by_subscriber["died"] = silent
    run_id = started(engine)
    tasks.drain(engine)
    engine.step_lost(run_id, 1, 1, "errback")
    tasks.drain(engine)
    step = store.run(run_id).steps[1]
    assert step.status == StepStatus.failed and step.cause == StepCause.lost
    assert step.outcomes["ok"].status == OutcomeStatus.done
    assert step.outcomes["died"].status == OutcomeStatus.lost


# ---------------------------------------------------------------------------------------------
# Cancel
# ---------------------------------------------------------------------------------------------


def test_cancel_stops_dispatching_raises_the_abort_flag_and_terminates_only_later() -> None:
    engine, store, tasks, _ = setup(workflow(steps=("a", "b")))
    store.subscribe(sub("a", "busy"), sub("b", "never"))
    tasks.answers_by_subscriber["busy"] = silent
    run_id = started(engine)
    tasks.drain(engine)
    cancelled = engine.cancel(run_id, "by the test")
    assert (
        cancelled is not None and cancelled.status == RunStatus.cancelled and cancelled.cause == RunEndCause.cancelled
    )
    busy = f"{run_id}:1:1:busy"
    assert tasks.revoked == [((busy,), False)]  # queued ones dropped, running ones left to check_abort
    assert tasks.terminated_later == [(busy,)]
    assert store.strings.get(f"rt:run:{run_id}:abort") == "1"
    assert engine.cancel(run_id) is None  # already ended
    assert all(subs != ("never",) for *_, subs in tasks.sent)


def test_cancelling_a_queued_run_frees_the_queue() -> None:
    engine, store, tasks, _ = setup(workflow())
    store.subscribe(sub("a", "busy"))
    tasks.answers_by_subscriber["busy"] = silent
    first = started(engine)
    queued = engine.start("wf")
    assert queued.status == StartStatus.queued and queued.run_id
    engine.cancel(queued.run_id)
    assert "rt:wf:wf:queued" not in store.strings
    again = engine.start("wf")
    assert again.status == StartStatus.queued and again.run_id != queued.run_id
    assert first


# ---------------------------------------------------------------------------------------------
# Overlap: skip, wait, replace, parallel; schedule slots
# ---------------------------------------------------------------------------------------------


def _busy(policy: OnSurpass) -> tuple[Any, MemoryStore, MemoryTasks, str]:
    engine, store, tasks, _ = setup(workflow(on_surpass=policy))
    store.subscribe(sub("a", "busy"))
    tasks.answers_by_subscriber["busy"] = silent
    first = started(engine)
    tasks.drain(engine)
    return engine, store, tasks, first


def test_skip_starts_nothing_and_names_the_run_in_the_way() -> None:
    engine, store, _, first = _busy(OnSurpass.skip)
    second = engine.start("wf")
    assert second.status == StartStatus.skipped and second.blocking_run_id == first and first in second.message
    assert store.stat("not_started", "wf", "skipped") == 1


def test_wait_queues_exactly_one_run_that_starts_when_the_running_one_ends() -> None:
    engine, store, tasks, first = _busy(OnSurpass.wait)
    second, third = engine.start("wf"), engine.start("wf")
    assert second.status == third.status == StartStatus.queued and second.run_id == third.run_id
    tasks.answers_by_subscriber.pop("busy")
    step = store.run(first).steps[1]
    engine.step_done(
        first, 1, step.epoch, [Outcome(subscriber_id="busy", status=OutcomeStatus.done).model_dump(mode="json")], "cb"
    )
    tasks.drain(engine)
    assert store.run(first).status == RunStatus.succeeded
    assert second.run_id is not None and store.run(second.run_id).status == RunStatus.succeeded


def test_replace_cancels_the_running_run_in_the_same_transaction_that_admits_the_new_one() -> None:
    engine, store, _tasks, first = _busy(OnSurpass.replace_)
    applies_before = store.conflicts
    second = engine.start("wf")
    assert second.status == StartStatus.started and second.replaced == [first]
    old = store.run(first)
    assert old.status == RunStatus.cancelled and old.cause == RunEndCause.replaced
    assert old.reason == f"replaced by run {second.run_id}"
    assert store.conflicts == applies_before
    assert store.sets["rt:wf:wf:active"] == {second.run_id}


def test_parallel_starts_another_run_beside_the_running_one() -> None:
    engine, store, _, first = _busy(OnSurpass.parallel)
    second = engine.start("wf")
    assert second.status == StartStatus.started
    assert store.sets["rt:wf:wf:active"] == {first, second.run_id}


def test_a_schedule_slot_starts_one_run_however_often_it_is_fired() -> None:
    engine, store, _, _ = setup(workflow(on_surpass=OnSurpass.parallel))
    store.subscribe(sub("a"))
    trigger = TriggerInfo(kind=TriggerKind.time, details={"slot": "2026-12-01T10:00:00Z"})
    first = engine.start("wf", trigger, slot="2026-12-01T10:00:00Z")
    again = engine.start("wf", trigger, slot="2026-12-01T10:00:00Z")
    assert first.status == StartStatus.started
    assert again.status == StartStatus.duplicate and again.run_id == first.run_id


def test_a_start_that_loses_a_race_reads_again_and_decides_again() -> None:
    engine, store, tasks, _ = setup(workflow(on_surpass=OnSurpass.skip))
    store.subscribe(sub("a", "busy"))
    tasks.answers_by_subscriber["busy"] = silent
    original = store.admission

    def racing(name: str, slot: str | None, live_at_ms: int | None = None) -> Any:
        state = original(name, slot, live_at_ms)
        if not store.sets.get("rt:wf:wf:active"):
            store.sets["rt:wf:wf:active"] = {"someone-else"}  # another process admitted a run meanwhile
        return state

    store.admission = racing  # type: ignore[method-assign,assignment]
    result = engine.start("wf")
    assert result.status == StartStatus.skipped and result.blocking_run_id == "someone-else"
    assert store.conflicts == 1


# ---------------------------------------------------------------------------------------------
# Events: actions and finished runs start workflows through the workflow queue
# ---------------------------------------------------------------------------------------------


def test_a_finished_action_starts_a_workflow_triggered_by_it_but_never_its_own() -> None:
    source = workflow("source", steps=("collect",), triggers=[{"event": "post_collect"}])
    follower = workflow("follower", steps=("x",), triggers=[{"event": "post_collect"}])
    engine, store, tasks, _ = setup(source, follower)
    store.subscribe(sub("collect"))
    started(engine, "source")
    tasks.drain(engine)
    assert [name for name, _ in tasks.started] == ["follower"]
    trigger = tasks.started[0][1]
    assert trigger.kind == TriggerKind.event and trigger.details["event"] == "post_collect"
    assert any(r.workflow == "follower" for r in (store.run(i) for i in ("run-2",)))


def test_a_finished_run_is_an_event_too() -> None:
    source = workflow("source")
    after = workflow("after", triggers=[EventTrigger(event="source_workflow_succeeded").model_dump()])
    engine, _store, tasks, _ = setup(source, after)
    started(engine, "source")
    tasks.drain(engine)
    assert [name for name, _ in tasks.started] == ["after"]


def test_emit_records_the_event_and_starts_what_it_triggers() -> None:
    engine, _store, _tasks, _ = setup(workflow("wf", triggers=[{"event": "go", "filter": {"team": "a"}}]))
    assert engine.emit("go", {"team": "b"}) == []
    (result,) = engine.emit("go", {"team": "a", "extra": 1})
    assert result.status == StartStatus.started


def test_transition_counters_are_written_with_the_transition() -> None:
    engine, store, tasks, clock = setup(workflow())
    store.subscribe(sub("a"))
    run_id = started(engine)
    tasks.drain(engine)
    assert store.stat("runs", "wf", "succeeded") == 1
    assert store.stat("step_seconds", "wf", "a", "count") == 1
    assert store.stat("run_seconds", "wf", "count") == 1
    assert store.records("run_started")[0]["run_id"] == run_id
    assert clock.now_ms


def test_a_start_task_sends_the_first_step_itself_and_a_producer_hands_it_over() -> None:
    engine, store, tasks, _ = setup(workflow(on_surpass=OnSurpass.parallel))
    store.subscribe(sub("a", "one"))
    by_task = engine.start("wf", dispatcher="start-task-1")
    assert [kind for kind, _ in tasks.queue] == ["step"]  # no advance hop
    assert by_task.run_id is not None and store.run(by_task.run_id).steps[1].dispatcher == "start-task-1"
    tasks.queue.clear()
    engine.start("wf")
    assert [kind for kind, _ in tasks.queue] == ["advance"]


def test_a_redelivered_start_task_of_a_slot_sends_its_step_again_and_starts_no_second_run() -> None:
    engine, store, tasks, _ = setup(workflow())
    store.subscribe(sub("a", "one"))
    slot = "2026-12-01T10:00:00Z"
    trigger = TriggerInfo(kind=TriggerKind.time, details={"slot": slot})
    first = engine.start("wf", trigger, slot=slot, dispatcher="beat-start-1")
    tasks.queue.clear()  # the worker died after the commit, before the send
    again = engine.start("wf", trigger, slot=slot, dispatcher="beat-start-1")
    assert again.status == StartStatus.duplicate and again.run_id == first.run_id
    assert first.run_id is not None and store.run(first.run_id).steps[1].epoch == 2
    tasks.drain(engine)
    assert store.run(first.run_id).status == RunStatus.succeeded
    assert len(store.sets["rt:wf:wf:active"]) == 0
