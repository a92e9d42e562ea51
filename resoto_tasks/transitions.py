"""Every change to a run, decided as a pure function of (state, inputs, now).

Nothing here does I/O or reads a clock: the caller reads the state (one round trip), calls a
function below, and applies the :class:`Decision` atomically (:mod:`resoto_tasks.runs`, one Lua
script guarded by what was read), then carries out its effects (sending, revoking). Because a
decision is a value, every rule of the engine is tested in memory (``tests/engine/test_transitions.py``).

Who may dispatch: only a task on the ``workflow`` queue starts a step (``Inputs.dispatcher`` is
its task id). Producers (the CLI, beat, events, the supervisor thread) only write and hand the
run to the ``workflow`` queue with :class:`SendAdvance`. A dispatching task that dies after its
commit is redelivered (late acks) under the same task id; :func:`advance` then sees its own
unsent step and sends it again under the next epoch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from resoto_tasks.models import (
    OnError,
    OnSurpass,
    Outcome,
    OutcomeStatus,
    Run,
    RunEndCause,
    RunStatus,
    StartResult,
    StartStatus,
    StepCause,
    StepRun,
    StepStatus,
    Subscription,
    TriggerInfo,
    Workflow,
)
from resoto_tasks.timeutil import from_ms, parse_time, seconds_between

RESUME_GRACE_MS = 10_000
"""A running run whose current step is still pending this long after its last transition is
handed to the ``workflow`` queue again (the process that should have done it died)."""
CALLBACK_GRACE_MS = 5_000
"""A step whose every blocking subscriber answered this long ago without a callback is completed."""
ERROR_TEXT_MAX = 2000


# ---------------------------------------------------------------------------------------------
# What a decision writes (atomically, with the run records) and does (after the commit)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AddActive:
    """The run is running: into its workflow's active set and the global one."""

    workflow: str
    run_id: str


@dataclass(frozen=True)
class RemoveActive:
    workflow: str
    run_id: str


@dataclass(frozen=True)
class SetQueued:
    """The workflow's one queued (``wait``) run."""

    workflow: str
    run_id: str


@dataclass(frozen=True)
class ClearQueued:
    """Drop the queued run, if it is still ``run_id`` (a cancel of a queued run, a promotion)."""

    workflow: str
    run_id: str


@dataclass(frozen=True)
class TakeSlot:
    """The schedule slot ``slot`` (its due time, ISO) ran as ``run_id``: a second start is a duplicate."""

    workflow: str
    slot: str
    run_id: str


@dataclass(frozen=True)
class IndexRun:
    workflow: str
    run_id: str
    at_ms: int


@dataclass(frozen=True)
class RaiseAbort:
    """The abort flag subscribers check (``ctx.check_abort()``)."""

    run_id: str


@dataclass(frozen=True)
class Record:
    """One entry on the event stream: what a transition did."""

    kind: str
    data: Mapping[str, Any]


@dataclass(frozen=True)
class Count:
    """Add ``by`` to a counter of the stats hash ``stat`` (see :mod:`resoto_tasks.stats`)."""

    stat: str
    labels: tuple[str, ...]
    by: float = 1.0


@dataclass(frozen=True)
class SetStat:
    stat: str
    labels: tuple[str, ...]
    value: str


@dataclass(frozen=True)
class KeepRunData:
    """Give the run's side keys (progress) the retention TTL: written once, when it ends."""

    run_id: str


Write = (
    AddActive
    | RemoveActive
    | SetQueued
    | ClearQueued
    | TakeSlot
    | IndexRun
    | RaiseAbort
    | Record
    | Count
    | SetStat
    | KeepRunData
)


@dataclass(frozen=True)
class SendStep:
    """Send step ``index`` of the committed run (its epoch, subscribers and task ids are in it)."""

    run_id: str
    index: int


@dataclass(frozen=True)
class SendAdvance:
    """Hand the run to the ``workflow`` queue, where a task dispatches its next step."""

    run_id: str


@dataclass(frozen=True)
class Revoke:
    """Revoke tasks: queued ones are dropped; with ``terminate`` running ones are killed."""

    task_ids: tuple[str, ...]
    terminate: bool


@dataclass(frozen=True)
class TerminateLater:
    """Revoke with terminate after the cancel grace, if they still run then (the fallback)."""

    task_ids: tuple[str, ...]


@dataclass(frozen=True)
class EmitAction:
    """A finished action is an event: a workflow may start on ``post_collect``."""

    action: str
    data: Mapping[str, Any]
    source_workflow: str


@dataclass(frozen=True)
class RunEnded:
    """Start the workflow's queued run, and emit ``<workflow>_workflow_<status>``."""

    run_id: str
    workflow: str
    status: RunStatus


Effect = SendStep | SendAdvance | Revoke | TerminateLater | EmitAction | RunEnded


@dataclass(frozen=True)
class Decision:
    """The new records (each guarded by the version read), the writes beside them, the effects."""

    runs: tuple[Run, ...] = ()
    writes: tuple[Write, ...] = ()
    effects: tuple[Effect, ...] = ()

    def __add__(self, other: Decision) -> Decision:
        merged = {r.id: r for r in self.runs}
        merged.update({r.id: r for r in other.runs})
        return Decision(tuple(merged.values()), self.writes + other.writes, self.effects + other.effects)

    def run(self, run_id: str) -> Run | None:
        return next((r for r in self.runs if r.id == run_id), None)


@dataclass(frozen=True)
class Inputs:
    """What a decision may depend on beside the record: the clock and who is asking."""

    now_ms: int
    live: Mapping[str, Sequence[Subscription]] = field(default_factory=dict)
    """Live subscriptions by action, taken when the step starts."""
    dispatcher: str | None = None
    """The ``workflow`` task deciding (it may send steps), or ``None`` for producers."""


# ---------------------------------------------------------------------------------------------
# Starting runs: the overlap policy
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Admission:
    """A workflow's admission state as read: running runs, the queued one, the slot's run."""

    active: tuple[str, ...] = ()
    queued: str | None = None
    slot_taken: str | None = None
    active_runs: Mapping[str, Run] = field(default_factory=dict)
    """The records of the active runs (read only when the policy is ``replace``)."""


def new_run(workflow: Workflow, trigger: TriggerInfo, status: RunStatus, run_id: str, now_ms: int) -> Run:
    now = from_ms(now_ms)
    return Run(
        id=run_id,
        workflow=workflow.name,
        trigger=trigger,
        status=status,
        created_at=now,
        started_at=now if status == RunStatus.running else None,
        updated_ms=now_ms,
        steps=[
            StepRun(name=s.name, action=s.action, on_error=s.on_error, timeout_s=s.timeout_s) for s in workflow.steps
        ],
    )


def admit(
    workflow: Workflow,
    trigger: TriggerInfo,
    state: Admission,
    run_id: str,
    now_ms: int,
    slot: str | None = None,
    inputs: Inputs | None = None,
) -> tuple[StartResult, Decision]:
    """Start, queue or refuse a run of ``workflow`` by its ``on_surpass``.

    A started run is committed ``running``; a producer hands it to the ``workflow`` queue
    (:class:`SendAdvance`), while a ``workflow`` task (``inputs.dispatcher``: beat's start task,
    an event's) dispatches its first subscribed step in the same decision, saving a queue hop.
    ``replace`` cancels the runs in the way in the same decision.
    """
    name = workflow.name
    if slot is not None and state.slot_taken:
        return StartResult(
            status=StartStatus.duplicate,
            workflow=name,
            run_id=state.slot_taken,
            message=f"slot already ran as {state.slot_taken}",
        ), Decision()
    active = sorted(state.active)
    policy = workflow.on_surpass
    if active and policy == OnSurpass.skip:
        return StartResult(
            status=StartStatus.skipped,
            workflow=name,
            blocking_run_id=active[0],
            message=f"run {active[0]} of {name} is still running (on_surpass: skip)",
        ), Decision(writes=(Count("not_started", (name, "skipped")),))
    if active and policy == OnSurpass.wait and state.queued:
        return StartResult(
            status=StartStatus.queued,
            workflow=name,
            run_id=state.queued,
            blocking_run_id=active[0],
            message=f"run {state.queued} is already queued behind {active[0]} (on_surpass: wait)",
        ), Decision(writes=(Count("not_started", (name, "queued")),))
    slot_writes: tuple[Write, ...] = (TakeSlot(name, slot, run_id),) if slot is not None else ()
    if active and policy == OnSurpass.wait:
        run = new_run(workflow, trigger, RunStatus.queued, run_id, now_ms)
        writes = (
            IndexRun(name, run_id, now_ms),
            SetQueued(name, run_id),
            Count("not_started", (name, "queued")),
            Record("run_queued", {"run_id": run_id, "workflow": name, "behind": active[0]}),
            *slot_writes,
        )
        return StartResult(
            status=StartStatus.queued,
            workflow=name,
            run_id=run_id,
            blocking_run_id=active[0],
            message=f"queued behind run {active[0]} (on_surpass: wait)",
        ), Decision(runs=(run,), writes=writes)
    replaced: list[str] = active if policy == OnSurpass.replace_ else []
    decision = Decision()
    for old_id in replaced:
        old = state.active_runs.get(old_id)
        if old is not None:
            decision += cancel(old, f"replaced by run {run_id}", now_ms, RunEndCause.replaced) or Decision()
    run = new_run(workflow, trigger, RunStatus.running, run_id, now_ms)
    decision += Decision(
        runs=(run,),
        writes=(
            IndexRun(name, run_id, now_ms),
            AddActive(name, run_id),
            *_schedule_delay(run),
            Record("run_started", {"run_id": run_id, "workflow": name, "trigger": trigger.kind.value}),
            *slot_writes,
        ),
    )
    if inputs is not None and inputs.dispatcher is not None:
        decision = _walk(run, inputs, decision)
    else:
        decision += Decision(effects=(SendAdvance(run_id),))
    return StartResult(
        status=StartStatus.started,
        workflow=name,
        run_id=run_id,
        replaced=replaced,
        message="started" + (f", replacing {', '.join(replaced)}" if replaced else ""),
    ), decision


def promote(queued: Run, active: Sequence[str], now_ms: int) -> Decision | None:
    """Start the workflow's queued run once nothing of the workflow runs any more."""
    if active or queued.status != RunStatus.queued:
        return None
    run = queued.model_copy(update={"status": RunStatus.running, "started_at": from_ms(now_ms), "updated_ms": now_ms})
    return Decision(
        runs=(run,),
        writes=(
            ClearQueued(run.workflow, run.id),
            AddActive(run.workflow, run.id),
            *_schedule_delay(run),
            Record("run_started", {"run_id": run.id, "workflow": run.workflow, "trigger": "queued"}),
        ),
        effects=(SendAdvance(run.id),),
    )


def _schedule_delay(run: Run) -> tuple[Write, ...]:
    """How late a scheduled run started after its slot's due time."""
    slot = run.trigger.details.get("slot")
    if not slot or run.started_at is None:
        return ()
    try:
        delay = seconds_between(parse_time(str(slot)), run.started_at)
    except ValueError:
        return ()
    if delay is None:
        return ()
    return (Count("schedule_delay", (run.workflow, "sum"), delay), Count("schedule_delay", (run.workflow, "count")))


# ---------------------------------------------------------------------------------------------
# Moving a run: dispatching steps, completing them, ending the run
# ---------------------------------------------------------------------------------------------


def task_id(run_id: str, index: int, epoch: int, subscriber_id: str) -> str:
    """A subscriber task's id: unique per dispatch, and readable in Flower (which puts it in a URL
    path, so a ``/`` of a subscriber id is written ``_``)."""
    return f"{run_id}:{index}:{epoch}:{subscriber_id.replace('/', '_')}"


def advance(run: Run, inputs: Inputs) -> Decision | None:
    """Start the current step (passing every step nobody subscribes to), or end the run.

    ``None`` when the run is waiting for its subscribers, or is not running. A dispatcher that
    finds the step it started itself still unanswered was redelivered after dying: the step is
    started again under the next epoch (at least once: its subscribers may run twice).
    """
    if run.status != RunStatus.running or inputs.dispatcher is None:
        return None  # producers never send steps
    step = run.current
    if step is None:
        return _end(run, inputs.now_ms)
    if step.status == StepStatus.running:
        if step.dispatcher != inputs.dispatcher:
            return None
        return _walk(run, inputs, Decision())
    if step.status.finished:  # an index left behind a finished step: move past it
        return _walk(run.model_copy(update={"step_index": run.step_index + 1}), inputs, Decision())
    return _walk(run, inputs, Decision())


def _walk(run: Run, inputs: Inputs, so_far: Decision) -> Decision:
    """From the current step on: pass every step nobody subscribes to, start the first one
    somebody does, or end the run; all in one decision."""
    decision = so_far
    current = run
    while current.status == RunStatus.running and current.current is not None:
        index, step = current.step_index, current.current
        subs = list(inputs.live.get(step.action, ()))
        if not subs:
            current, done = _finish_step(_started(step, inputs), current, index, {}, StepCause.no_subscriber, inputs)
            decision += done
            continue
        blocking = sorted((s for s in subs if s.wait_for_completion), key=lambda s: s.subscriber_id)
        nonblocking = sorted((s for s in subs if not s.wait_for_completion), key=lambda s: s.subscriber_id)
        timeout_s = max([step.timeout_s, *(s.timeout_s for s in blocking)])
        epoch = step.epoch + 1
        started = _started(step, inputs).model_copy(
            update={
                "deadline_ms": inputs.now_ms + int(timeout_s * 1000),
                "epoch": epoch,
                "dispatcher": inputs.dispatcher,
                "blocking": [s.subscriber_id for s in blocking],
                "nonblocking": [s.subscriber_id for s in nonblocking],
                "task_ids": {s.subscriber_id: task_id(run.id, index, epoch, s.subscriber_id) for s in subs},
            }
        )
        current = current.with_step(index, started)
        if blocking:  # its start is in the record (and in the step_finished entry before it)
            decision += Decision(effects=(SendStep(run.id, index),))
            break
        # Only non-blocking subscribers: they are sent, and the step passes at once.
        decision += Decision(effects=(SendStep(run.id, index),))
        current, done = _finish_step(started, current, index, {}, StepCause.no_blocking_subscriber, inputs)
        decision += done
    if current.status == RunStatus.running and current.current is None:
        decision += _end(current, inputs.now_ms)
        current = decision.run(current.id) or current
    current = current.model_copy(update={"updated_ms": inputs.now_ms})
    return decision + Decision(runs=(current,))


def _started(step: StepRun, inputs: Inputs) -> StepRun:
    return step.model_copy(
        update={"status": StepStatus.running, "started_at": step.started_at or from_ms(inputs.now_ms)}
    )


def complete(
    run: Run,
    index: int,
    epoch: int,
    cause: StepCause,
    answers: Mapping[str, Outcome],
    inputs: Inputs,
) -> Decision | None:
    """Record step ``index``'s outcome and move the run on; ``None`` if it is not that step's turn.

    ``answers`` are the subscribers' outcomes by subscriber id (the chord's results, or what the
    result backend holds). A dispatcher goes on to start the next step in the same decision; a
    producer (the supervisor) leaves it pending and hands the run to the ``workflow`` queue.
    """
    if run.status != RunStatus.running or run.step_index != index:
        return None
    step = run.steps[index]
    if step.status != StepStatus.running or step.epoch != epoch:
        return None  # already decided, or a callback of an older dispatch
    current, decision = _finish_step(step, run, index, answers, cause, inputs)
    if current.status.finished:
        return decision + Decision(runs=(current.model_copy(update={"updated_ms": inputs.now_ms}),))
    if inputs.dispatcher is None:
        return decision + Decision(
            runs=(current.model_copy(update={"updated_ms": inputs.now_ms}),), effects=(SendAdvance(run.id),)
        )
    return _walk(current, inputs, decision)


_MISSING = {
    StepCause.timeout: (OutcomeStatus.timed_out, "no answer before the step's deadline"),
    StepCause.lost: (OutcomeStatus.lost, "the task died without answering (worker lost, hard time limit or revoked)"),
}


def _finish_step(
    step: StepRun, run: Run, index: int, answers: Mapping[str, Outcome], cause: StepCause, inputs: Inputs
) -> tuple[Run, Decision]:
    """The finished step and the run moved past it (or ended, under ``on_error: stop``)."""
    now = from_ms(inputs.now_ms)
    missing_status, missing_text = _MISSING.get(cause, (OutcomeStatus.lost, "no answer"))
    outcomes: dict[str, Outcome] = {}
    for sub in step.blocking:
        found = answers.get(sub)
        outcomes[sub] = found or Outcome(subscriber_id=sub, status=missing_status, error=missing_text, blocking=True)
    for sub in step.nonblocking:
        if sub in answers:
            outcomes[sub] = answers[sub]
    statuses = {outcomes[s].status for s in step.blocking}
    if OutcomeStatus.timed_out in statuses:
        status = StepStatus.timed_out
    elif statuses & {OutcomeStatus.error, OutcomeStatus.lost}:
        status = StepStatus.failed
    else:
        status = StepStatus.done
    errors = [f"{s}: {outcomes[s].error}" for s in step.blocking if outcomes[s].error]
    finished = step.model_copy(
        update={
            "status": status,
            "finished_at": now,
            "cause": cause,
            "outcomes": outcomes,
            "error": "; ".join(errors)[:ERROR_TEXT_MAX] or None,
        }
    )
    updated = run.with_step(index, finished).model_copy(update={"has_errors": run.has_errors or status.bad})
    writes: list[Write] = []
    # A step nobody subscribes to passes in no time: it is in the record, but it costs neither an
    # event nor a duration sample (8 of the hourly run's 12 steps, as most users run it).
    seconds = seconds_between(finished.started_at, finished.finished_at)
    if cause != StepCause.no_subscriber:
        writes.append(
            Record("step_finished", {"run_id": run.id, "step": step.name, "index": index, "status": status.value})
        )
    if seconds is not None and cause != StepCause.no_subscriber:
        writes += [
            Count("step_seconds", (run.workflow, step.name, "sum"), seconds),
            Count("step_seconds", (run.workflow, step.name, "count")),
        ]
    effects: list[Effect] = [
        EmitAction(step.action, {"run_id": run.id, "workflow": run.workflow, "status": status.value}, run.workflow)
    ]
    unanswered = tuple(step.task_ids[s] for s in step.blocking if s not in answers and s in step.task_ids)
    if cause == StepCause.timeout and unanswered:
        effects.insert(0, Revoke(unanswered, terminate=True))
    decision = Decision(writes=tuple(writes), effects=tuple(effects))
    if status.bad and step.on_error == OnError.stop:
        steps = [
            s if i <= index else s.model_copy(update={"status": StepStatus.skipped})
            for i, s in enumerate(updated.steps)
        ]
        stopped = updated.model_copy(update={"steps": steps, "step_index": len(steps)})
        ended = _ended(
            stopped,
            RunStatus.failed,
            RunEndCause.stopped,
            f"step {step.name} {status.value} (on_error: stop)",
            inputs.now_ms,
        )
        return ended.run(run.id) or stopped, decision + ended
    return updated.model_copy(update={"step_index": index + 1}), decision


def _end(run: Run, now_ms: int) -> Decision:
    """Every step ran: the run succeeded (steps that failed under ``continue`` set ``has_errors``)."""
    bad = [s.name for s in run.steps if s.status.bad]
    reason = f"steps with errors: {', '.join(bad)}" if bad else None
    return _ended(run, RunStatus.succeeded, RunEndCause.completed, reason, now_ms)


def _ended(run: Run, status: RunStatus, cause: RunEndCause, reason: str | None, now_ms: int) -> Decision:
    now = from_ms(now_ms)
    done = run.model_copy(
        update={
            "status": status,
            "cause": cause,
            "reason": reason,
            "finished_at": now,
            "updated_ms": now_ms,
            "step_index": len(run.steps),
            "has_errors": run.has_errors or any(s.status.bad for s in run.steps),
        }
    )
    writes: list[Write] = [
        RemoveActive(run.workflow, run.id),
        KeepRunData(run.id),
        Count("runs", (run.workflow, status.value)),
        Record(
            "run_finished",
            {
                "run_id": run.id,
                "workflow": run.workflow,
                "status": status.value,
                "cause": cause.value,
                "reason": reason,
            },
        ),
    ]
    seconds = seconds_between(done.started_at, done.finished_at)
    if seconds is not None:
        writes += [
            Count("run_seconds", (run.workflow, "sum"), seconds),
            Count("run_seconds", (run.workflow, "count")),
        ]
    if status == RunStatus.succeeded:
        writes.append(SetStat("last_success", (run.workflow,), f"{now_ms / 1000:.3f}"))
    return Decision(runs=(done,), writes=tuple(writes), effects=(RunEnded(run.id, run.workflow, status),))


# ---------------------------------------------------------------------------------------------
# Cancel
# ---------------------------------------------------------------------------------------------


def cancel(run: Run, reason: str, now_ms: int, cause: RunEndCause = RunEndCause.cancelled) -> Decision | None:
    """Stop the run: no further step is sent, the abort flag is raised for the running ones.

    Running tasks are revoked without terminate (those still queued are dropped), and terminated
    only after a grace (:class:`TerminateLater`), so a subscriber that checks the abort flag
    stops by itself and nothing logs an error. ``None`` if the run already ended.
    """
    if run.status.finished:
        return None
    now = from_ms(now_ms)
    running = tuple(tid for s in run.steps if s.status == StepStatus.running for sub, tid in sorted(s.task_ids.items()))
    steps = [
        s.model_copy(
            update={"status": StepStatus.cancelled, "finished_at": now if s.status == StepStatus.running else None}
        )
        if s.status in (StepStatus.pending, StepStatus.running)
        else s
        for s in run.steps
    ]
    ended = _ended(run.model_copy(update={"steps": steps}), RunStatus.cancelled, cause, reason, now_ms)
    writes: tuple[Write, ...] = (RaiseAbort(run.id),)
    if run.status == RunStatus.queued:
        writes += (ClearQueued(run.workflow, run.id),)
    effects: tuple[Effect, ...] = (Revoke(running, terminate=False), TerminateLater(running)) if running else ()
    return ended + Decision(writes=writes, effects=effects)


# ---------------------------------------------------------------------------------------------
# Supervision: what one tick does to one running run
# ---------------------------------------------------------------------------------------------


def supervise(run: Run, now_ms: int, answers: Mapping[str, Outcome] | None = None) -> Decision | None:
    """One supervisor look at a running run.

    * the current step is past its deadline: it times out (answers that came count);
    * every blocking subscriber answered ``CALLBACK_GRACE_MS`` ago and no callback came: complete it;
    * the current step is still pending ``RESUME_GRACE_MS`` after the last transition: hand the run
      to the ``workflow`` queue again.

    ``answers`` are the current step's answers (from the result backend), read only for a running
    step. The supervisor is a producer: it never sends a step itself.
    """
    if run.status != RunStatus.running:
        return None
    step = run.current
    inputs = Inputs(now_ms=now_ms)
    if step is None or step.status != StepStatus.running:
        if now_ms - run.updated_ms >= RESUME_GRACE_MS:
            return Decision(effects=(SendAdvance(run.id),))
        return None
    found = dict(answers or {})
    if step.deadline_ms is not None and now_ms >= step.deadline_ms:
        return complete(run, run.step_index, step.epoch, StepCause.timeout, found, inputs)
    if step.blocking and all(s in found for s in step.blocking):
        last = max((t for s in step.blocking if (t := found[s].finished_at) is not None), default=None)
        if last is None or now_ms - int(last.timestamp() * 1000) >= CALLBACK_GRACE_MS:
            return complete(run, run.step_index, step.epoch, StepCause.answered, found, inputs)
    return None
