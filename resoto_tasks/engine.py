"""The workflow state machine: start a run, dispatch its steps, complete them, end the run.

A step is dispatched as ``chord(group(blocking subscribers), step_done)`` on the subscribers'
queues, with the callback on the ``workflow`` queue; non-blocking subscribers are sent beside
it, and a step with no blocking subscriber completes here and now, without a broker round
trip. Step k+1 is dispatched only after step k's outcome is committed.

Every decision is a :func:`resoto_tasks.runs.transition`, so it is atomic and idempotent:
callbacks, errbacks and the supervisor may all try to complete the same step; one wins.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

import redis
from celery import chord, group

from resoto_tasks import keys, runs, stats, subscribers
from resoto_tasks.celery_app import app
from resoto_tasks.models import (
    ActionMessage,
    OnError,
    OnSurpass,
    Outcome,
    OutcomeStatus,
    Run,
    RunStatus,
    StartResult,
    StartStatus,
    StepRun,
    StepStatus,
    Subscription,
    TriggerInfo,
    TriggerKind,
    Workflow,
)
from resoto_tasks.redis_conn import client
from resoto_tasks.routing import WORKFLOW
from resoto_tasks.timeutil import iso, to_ms, utcnow
from resoto_tasks.workflows import catalogue

log = logging.getLogger(__name__)

STEP_DONE_TASK = "resoto.workflow.step_done"
STEP_LOST_TASK = "resoto.workflow.step_lost"
# A dispatch claimed but never confirmed (the dispatcher died) may be retried after this.
DISPATCH_CLAIM_MS = 10_000


def hard_limit_s(timeout_s: float) -> float:
    """Hard time limit: the soft limit (the timeout) plus a grace to catch it and answer."""
    return timeout_s + max(2.0, min(30.0, timeout_s * 0.1))


# ---------------------------------------------------------------------------------------------
# Starting runs (the overlap policy)
# ---------------------------------------------------------------------------------------------


def start(
    name: str,
    trigger: TriggerInfo | None = None,
    slot: str | None = None,
) -> StartResult:
    """Start ``name`` following its ``on_surpass``; atomic across processes.

    ``slot`` (a schedule's due time, ISO) makes the start idempotent: a second start of the
    same slot starts nothing and returns ``duplicate`` with the run that took it.

    Raises:
        UnknownWorkflow: no such workflow.
    """
    workflow = catalogue.get(name)
    trigger = trigger or TriggerInfo(kind=TriggerKind.manual)
    r = client()
    active_key, queued_key = keys.workflow_active(name), keys.workflow_queued(name)
    slot_key = keys.slot(name, slot) if slot else None
    watched = [active_key, queued_key] + ([slot_key] if slot_key else [])
    with r.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(*watched)
                result, replaced = _decide_start(pipe, workflow, trigger, slot_key)
                break
            except redis.WatchError:
                continue
    if result.status == StartStatus.started and result.run_id:
        for old in replaced:
            cancel(old, reason=f"replaced by run {result.run_id}")
        log.info("run=%s workflow=%s started (%s)", result.run_id, name, trigger.kind.value)
        advance(result.run_id)
    elif result.status != StartStatus.started:
        log.info("workflow=%s %s: %s", name, result.status.value, result.message)
    return result


def _decide_start(
    pipe: Any, workflow: Workflow, trigger: TriggerInfo, slot_key: str | None
) -> tuple[StartResult, list[str]]:
    """Runs inside WATCH; executes the MULTI itself when it changes anything."""
    name = workflow.name
    if slot_key is not None:
        taken = pipe.get(slot_key)
        if taken:
            pipe.unwatch()
            return StartResult(
                status=StartStatus.duplicate,
                workflow=name,
                run_id=taken,
                message=f"slot already ran as {taken}",
            ), []
    active = sorted(pipe.smembers(keys.workflow_active(name)))
    queued = pipe.get(keys.workflow_queued(name))
    policy = workflow.on_surpass
    replaced: list[str] = []
    if active and policy == OnSurpass.skip:
        pipe.unwatch()
        stats.on_not_started(name, "skipped")
        return StartResult(
            status=StartStatus.skipped,
            workflow=name,
            blocking_run_id=active[0],
            message=f"run {active[0]} of {name} is still running (on_surpass: skip)",
        ), []
    if active and policy == OnSurpass.wait and queued:
        pipe.unwatch()
        stats.on_not_started(name, "queued")
        return StartResult(
            status=StartStatus.queued,
            workflow=name,
            run_id=queued,
            blocking_run_id=active[0],
            message=f"run {queued} is already queued behind {active[0]} (on_surpass: wait)",
        ), []
    status = RunStatus.running
    if active and policy == OnSurpass.wait:
        status = RunStatus.queued
    elif active and policy == OnSurpass.replace_:
        replaced = active
    run = runs.new_run(workflow, trigger, status)
    pipe.multi()
    runs.write(pipe, run)
    runs.index(pipe, run)
    if status == RunStatus.queued:
        pipe.set(keys.workflow_queued(name), run.id)
        pipe.hincrby(keys.stats("not_started"), stats.field(name, "queued"), 1)
        runs.event(pipe, "run_queued", run_id=run.id, workflow=name, behind=active[0])
    else:
        stats.on_run_started(pipe, name, run.started_at, trigger.details.get("slot"))
        for old in replaced:
            pipe.srem(keys.workflow_active(name), old)
            runs.set_abort(pipe, old)
        pipe.sadd(keys.workflow_active(name), run.id)
        pipe.sadd(keys.runs_active(), run.id)
        runs.event(pipe, "run_started", run_id=run.id, workflow=name, trigger=trigger.kind.value)
    if slot_key is not None:
        pipe.set(slot_key, run.id, ex=runs.retention_s())
    pipe.execute()
    if status == RunStatus.queued:
        return StartResult(
            status=StartStatus.queued,
            workflow=name,
            run_id=run.id,
            blocking_run_id=active[0],
            message=f"queued behind run {active[0]} (on_surpass: wait)",
        ), []
    return StartResult(
        status=StartStatus.started,
        workflow=name,
        run_id=run.id,
        replaced=replaced,
        message="started" + (f", replacing {', '.join(replaced)}" if replaced else ""),
    ), replaced


def promote_queued(name: str) -> str | None:
    """Start the queued run of ``name`` if nothing of it runs any more; returns its id."""
    r = client()
    active_key, queued_key = keys.workflow_active(name), keys.workflow_queued(name)
    with r.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(active_key, queued_key)
                queued = pipe.get(queued_key)
                if not queued or pipe.scard(active_key):
                    pipe.unwatch()
                    return None
                run = runs.load(queued, pipe)
                pipe.multi()
                pipe.delete(queued_key)
                if run is not None and run.status == RunStatus.queued:
                    started = run.model_copy(update={"status": RunStatus.running, "started_at": iso(utcnow())})
                    runs.write(pipe, started)
                    stats.on_run_started(pipe, name, started.started_at, run.trigger.details.get("slot"))
                    pipe.sadd(active_key, run.id)
                    pipe.sadd(keys.runs_active(), run.id)
                    runs.event(pipe, "run_started", run_id=run.id, workflow=name, trigger="queued")
                pipe.execute()
                break
            except redis.WatchError:
                continue
    if run is None or run.status != RunStatus.queued:
        return None
    log.info("run=%s workflow=%s started from the queue", run.id, name)
    advance(run.id)
    return run.id


# ---------------------------------------------------------------------------------------------
# Dispatching steps
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Dispatch:
    """A step the committed transition started: what to send once the record says so."""

    index: int
    epoch: int
    blocking: list[Subscription]
    nonblocking: list[Subscription]
    task_ids: dict[str, str]
    deadline_ms: int
    timeout_s: float


@dataclass
class _Plan:
    """What a transition function decided beyond the record (it may run more than once)."""

    dispatch: _Dispatch | None = None
    completed: list[int] = field(default_factory=list)


def advance(run_id: str, run: Run | None = None) -> None:
    """Move the run forward as far as it can go without waiting for anyone.

    Idempotent: called after a start, by the supervisor and to heal; each call either starts the
    current step (passing through every step nobody subscribes to, in the same transaction),
    ends the run, or finds the run waiting and does nothing. ``run`` is a record the caller just
    read, used to skip the transaction when the run is visibly waiting.
    """
    if run is not None and _waiting(run):
        return
    live = subscribers.live_by_action()
    plan = _Plan()

    def decide(current: Run) -> runs.Change | None:
        nonlocal plan
        plan = _Plan()
        if current.status != RunStatus.running:
            return None
        step = current.current
        if step is None:
            return _finish_change(current)
        if step.status.finished:  # finished without moving the index: heal (older versions did)
            plan.completed.append(current.step_index)
            healed = _complete(current, current.step_index, step, {}, "heal")
            return _walk(healed.run, live, plan, healed)
        if step.status == StepStatus.running and dispatch_state(run_id, current.step_index, step.epoch):
            return None  # sent, or being sent: waiting for its subscribers
        return _walk(current, live, plan, None)

    change = runs.transition(run_id, decide)
    if change is not None:
        _after(change.run, plan, cause="advance")


def _waiting(run: Run) -> bool:
    step = run.current
    if run.status != RunStatus.running or step is None:
        return run.status != RunStatus.running
    return step.status == StepStatus.running and dispatch_state(run.id, run.step_index, step.epoch) is not None


def dispatch_state(run_id: str, index_: int, epoch: int) -> str | None:
    """``claimed`` while a process sends the step, ``sent`` once it did, ``None`` if neither.

    The claim is written by the transaction that starts the step and expires after
    ``DISPATCH_CLAIM_MS`` unless the sender confirms; a step whose sender died is then started
    again (with the next epoch) by the supervisor.
    """
    found: str | None = client().get(keys.dispatch_claim(run_id, index_, epoch))
    return found


def _walk(run: Run, live: dict[str, list[Subscription]], plan: _Plan, base: runs.Change | None) -> runs.Change:
    """From the current step on: complete every step nobody subscribes to, start the first one
    somebody does (or end the run), all in the one transaction being decided.

    ``base`` is the change decided so far (a completed step), whose writes are kept.
    """
    extra = list(base.extra) if base else []
    events = list(base.events) if base else []
    current = run
    while current.status == RunStatus.running and current.current is not None:
        index_, step = current.step_index, current.current
        subs = live.get(step.action, [])
        now = utcnow()
        if not subs:
            started = step.model_copy(update={"status": StepStatus.running, "started_at": step.started_at or iso(now)})
            done = _complete(current.with_step(index_, started), index_, started, {}, "no_subscriber")
            extra += done.extra
            events += done.events
            current = done.run
            plan.completed.append(index_)
            continue
        blocking = sorted((s for s in subs if s.wait_for_completion), key=lambda s: s.subscriber_id)
        nonblocking = sorted((s for s in subs if not s.wait_for_completion), key=lambda s: s.subscriber_id)
        timeout_s = max([step.timeout, *(s.timeout for s in blocking)])
        deadline_ms = to_ms(now) + int(timeout_s * 1000)
        epoch = step.epoch + 1
        task_ids = {s.subscriber_id: uuid.uuid4().hex for s in blocking + nonblocking}
        started = step.model_copy(
            update={
                "status": StepStatus.running,
                "started_at": step.started_at or iso(now),
                "deadline_ms": deadline_ms,
                "epoch": epoch,
                "dispatched": True,
                "blocking": [s.subscriber_id for s in blocking],
                "nonblocking": [s.subscriber_id for s in nonblocking],
                "task_ids": list(task_ids.values()),
            }
        )
        current = current.with_step(index_, started)
        events.append(("step_started", {"step": step.name, "index": index_, "subscribers": len(blocking)}))
        extra.append(_claim(current.id, index_, epoch))
        plan.dispatch = _Dispatch(index_, epoch, blocking, nonblocking, task_ids, deadline_ms, timeout_s)
        break
    if current.status == RunStatus.running and current.current is None:
        finished = _finish_change(current)
        extra += finished.extra
        events += finished.events
        current = finished.run
    return runs.Change(run=current, extra=extra, events=events)


def _claim(run_id: str, index_: int, epoch: int) -> Any:
    def write(pipe: Any) -> None:
        pipe.set(keys.dispatch_claim(run_id, index_, epoch), "claimed", px=DISPATCH_CLAIM_MS)

    return write


def _send(run: Run, d: _Dispatch) -> None:
    """Send a started step: chord(group(blocking), step_done) plus the non-blocking beside it."""
    for sub in d.nonblocking:
        _signature(run, d.index, sub, d.deadline_ms, d.task_ids[sub.subscriber_id], blocking=False).apply_async()
    if d.blocking:
        header = [
            _signature(run, d.index, s, d.deadline_ms, d.task_ids[s.subscriber_id], blocking=True) for s in d.blocking
        ]
        callback = app.signature(STEP_DONE_TASK, args=(run.id, d.index, d.epoch), queue=WORKFLOW, immutable=True)
        errback = app.signature(STEP_LOST_TASK, args=(run.id, d.index, d.epoch), queue=WORKFLOW, immutable=True)
        chord(group(header, app=app), callback, app=app).apply_async(link_error=errback)
    client().set(keys.dispatch_claim(run.id, d.index, d.epoch), "sent", ex=runs.retention_s())
    log.info(
        "run=%s step=%s dispatched to %d blocking, %d non-blocking subscribers (timeout %.0fs)",
        run.id, run.steps[d.index].name, len(d.blocking), len(d.nonblocking), d.timeout_s,
    )  # fmt: skip
    if not d.blocking:  # nothing to wait for: the non-blocking ones were sent, the step is done
        finish_step(run.id, d.index, d.epoch, cause="no_blocking_subscriber")


def _message(run: Run, index_: int, sub: Subscription, deadline_ms: int, blocking: bool) -> dict[str, Any]:
    step = run.steps[index_]
    return ActionMessage(
        run_id=run.id,
        workflow=run.workflow,
        step_index=index_,
        step=step.name,
        action=step.action,
        subscriber_id=sub.subscriber_id,
        blocking=blocking,
        deadline_ms=deadline_ms,
        kwargs=sub.kwargs,
    ).model_dump(mode="json")


def _signature(run: Run, index_: int, sub: Subscription, deadline_ms: int, task_id: str, blocking: bool) -> Any:
    return app.signature(
        sub.task,
        args=(_message(run, index_, sub, deadline_ms, blocking),),
        queue=sub.queue,
        task_id=task_id,
        soft_time_limit=sub.timeout,
        time_limit=hard_limit_s(sub.timeout),
        immutable=True,
    )


# ---------------------------------------------------------------------------------------------
# Completing steps and runs
# ---------------------------------------------------------------------------------------------

_MISSING_BY_CAUSE = {
    "timeout": (OutcomeStatus.timed_out, "no answer before the step's deadline"),
    "lost": (OutcomeStatus.lost, "the task died without answering (worker lost, hard time limit or revoked)"),
}


def complete_step(run_id: str, index_: int, epoch: int, cause: str) -> bool:
    """Record step ``index_``'s outcome and move the run on; True if this call did it.

    ``cause`` is ``callback`` (every blocking subscriber answered), ``lost`` (the chord failed:
    a task died), ``timeout`` (the deadline passed), ``no_blocking_subscriber`` or ``heal``.
    """
    return finish_step(run_id, index_, epoch, cause) is not None


def finish_step(run_id: str, index_: int, epoch: int, cause: str) -> Run | None:
    """:func:`complete_step`, returning the committed run (``None`` if another call did it).

    The same transaction passes through the following steps nobody subscribes to and starts
    the next one somebody does, so a step costs one transaction, not three.
    """
    pipe = client().pipeline(transaction=False)
    pipe.hgetall(keys.run_outcomes(run_id))
    pipe.get(keys.workflows_version())
    raw_answers, version = pipe.execute()
    answers = runs.parse_outcomes(raw_answers, index_)
    live = subscribers.live_by_action()
    plan = _Plan()

    def decide(run: Run) -> runs.Change | None:
        nonlocal plan
        plan = _Plan()
        if run.status != RunStatus.running or run.step_index != index_:
            return None
        step = run.steps[index_]
        if step.status != StepStatus.running:
            if not (cause == "heal" and step.status.finished):
                return None
        elif cause == "lost" and epoch != step.epoch:
            return None  # an older dispatch's chord failed; the current one is still going
        plan.completed.append(index_)
        done = _complete(run, index_, step, answers, cause)
        return _walk(done.run, live, plan, done)

    change = runs.transition(run_id, decide)
    if change is None:
        return None
    _after(change.run, plan, cause, version or "0")
    return change.run


def _after(run: Run, plan: _Plan, cause: str, version: str | None = None) -> None:
    """What follows a committed transition: send the started step, revoke the tasks of a step
    that timed out, end the run, emit the finished actions as events (in that order: the next
    step should not wait for event triggers)."""
    if plan.dispatch is not None:
        _send(run, plan.dispatch)
    for index_ in plan.completed:
        step = run.steps[index_]
        log.info(
            "run=%s step=%s %s (%s)",
            run.id,
            step.name,
            step.status.value,
            cause if index_ == plan.completed[0] else "no subscriber",
        )
        if step.status == StepStatus.timed_out and step.task_ids:
            _revoke(step.task_ids)
    if run.status.finished:
        _after_finish(run)
    for index_ in plan.completed:
        _emit_action_event(run, run.steps[index_], version)


def _complete(run: Run, index_: int, step: StepRun, answers: dict[str, Outcome], cause: str) -> runs.Change:
    outcomes: dict[str, Outcome] = {}
    missing_status, missing_text = _MISSING_BY_CAUSE.get(cause, (OutcomeStatus.lost, "no answer"))
    for sub in step.blocking:
        found = answers.get(sub)
        outcomes[sub] = (
            found
            if found is not None
            else Outcome(subscriber_id=sub, status=missing_status, error=missing_text, blocking=True)
        )
    for sub in step.nonblocking:
        if sub in answers:
            outcomes[sub] = answers[sub]
    statuses = {o.status for s, o in outcomes.items() if s in step.blocking}
    if step.status.finished:
        status = step.status
    elif OutcomeStatus.timed_out in statuses:
        status = StepStatus.timed_out
    elif statuses & {OutcomeStatus.error, OutcomeStatus.lost}:
        status = StepStatus.failed
    else:
        status = StepStatus.done
    errors = [f"{s}: {o.error}" for s, o in outcomes.items() if o.error and s in step.blocking]
    finished = step.model_copy(
        update={
            "status": status,
            "finished_at": step.finished_at or iso(utcnow()),
            "outcomes": outcomes,
            "error": "; ".join(errors)[:2000] or None,
        }
    )
    updated = run.with_step(index_, finished)
    events: list[tuple[str, dict[str, Any]]] = [
        ("step_finished", {"step": step.name, "index": index_, "status": status.value})
    ]
    bad = status in (StepStatus.failed, StepStatus.timed_out)
    if bad and step.on_error == OnError.stop:
        steps = [
            s if i <= index_ else s.model_copy(update={"status": StepStatus.skipped})
            for i, s in enumerate(updated.steps)
        ]
        updated = updated.model_copy(
            update={
                "steps": steps,
                "step_index": len(steps),
                "status": RunStatus.failed,
                "finished_at": iso(utcnow()),
                "reason": f"step {step.name} {status.value} (on_error: stop)",
            }
        )
    else:
        updated = updated.model_copy(update={"step_index": index_ + 1})
        if updated.step_index >= len(updated.steps):
            failed = [s.name for s in updated.steps if s.status in (StepStatus.failed, StepStatus.timed_out)]
            updated = updated.model_copy(
                update={
                    "status": RunStatus.failed if failed else RunStatus.succeeded,
                    "finished_at": iso(utcnow()),
                    "reason": f"steps with errors: {', '.join(failed)}" if failed else None,
                }
            )
    extra = [_step_stats(run.workflow, finished)]
    if updated.status.finished:
        extra.append(_finish_writes(updated))
        events.append(("run_finished", {"status": updated.status.value, "reason": updated.reason}))
    return runs.Change(run=updated, extra=extra, events=events)


def _finish_writes(run: Run) -> Any:
    """What ending a run writes beside its record: the active sets and the run counters."""

    def write(pipe: Any) -> None:
        pipe.srem(keys.workflow_active(run.workflow), run.id)
        pipe.srem(keys.runs_active(), run.id)
        stats.on_run_finished(pipe, run.workflow, run.status.value, run.started_at, run.finished_at)

    return write


def _step_stats(workflow: str, step: StepRun) -> Any:
    def write(pipe: Any) -> None:
        stats.on_step_finished(pipe, workflow, step.name, step.started_at, step.finished_at)

    return write


def _finish_change(run: Run) -> runs.Change:
    """End a running run whose index is past its last step."""
    failed = [s.name for s in run.steps if s.status in (StepStatus.failed, StepStatus.timed_out)]
    done = run.model_copy(
        update={
            "status": RunStatus.failed if failed else RunStatus.succeeded,
            "finished_at": run.finished_at or iso(utcnow()),
            "reason": run.reason or (f"steps with errors: {', '.join(failed)}" if failed else None),
        }
    )
    return runs.Change(run=done, extra=[_finish_writes(done)], events=[("run_finished", {"status": done.status.value})])


def _after_finish(run: Run) -> None:
    log.info(
        "run=%s workflow=%s finished: %s%s",
        run.id,
        run.workflow,
        run.status.value,
        f" ({run.reason})" if run.reason else "",
    )
    from resoto_tasks import events

    events.emit(
        f"{run.workflow}_workflow_{run.status.value}",
        {"run_id": run.id, "workflow": run.workflow},
        source_workflow=run.workflow,
    )
    promote_queued(run.workflow)


def _emit_action_event(run: Run, step: StepRun, version: str | None = None) -> None:
    """An action is an event too: a workflow may start on ``post_collect``."""
    from resoto_tasks import events

    events.emit(
        step.action,
        {"run_id": run.id, "workflow": run.workflow, "status": step.status.value},
        source_workflow=run.workflow,
        record=False,  # the transition already appended step_finished to the stream
        version=version,
    )


def _revoke(task_ids: list[str]) -> None:
    try:
        app.control.revoke(task_ids, terminate=True, signal="SIGTERM")
    except Exception as exc:  # revoking is best effort; the step's outcome is already decided
        log.warning("could not revoke %d tasks: %s", len(task_ids), exc)


# ---------------------------------------------------------------------------------------------
# Cancel
# ---------------------------------------------------------------------------------------------


def cancel(run_id: str, reason: str = "cancelled by user") -> Run | None:
    """Stop dispatching, mark the run cancelled, raise its abort flag and revoke running tasks.

    Returns the cancelled run, or ``None`` if it had already ended.
    """

    def decide(run: Run) -> runs.Change | None:
        if run.status.finished:
            return None
        was_queued = run.status == RunStatus.queued
        steps = [
            s.model_copy(
                update={
                    "status": StepStatus.cancelled,
                    "finished_at": iso(utcnow()) if s.status == StepStatus.running else None,
                }
            )
            if s.status in (StepStatus.pending, StepStatus.running)
            else s
            for s in run.steps
        ]
        done = run.model_copy(
            update={
                "status": RunStatus.cancelled,
                "steps": steps,
                "finished_at": iso(utcnow()),
                "reason": reason,
                "step_index": len(steps),
            }
        )

        def writes(pipe: Any) -> None:
            _finish_writes(done)(pipe)
            runs.set_abort(pipe, run.id)
            if was_queued:
                pipe.delete(keys.workflow_queued(run.workflow))

        return runs.Change(
            run=done, extra=[writes], events=[("run_finished", {"status": "cancelled", "reason": reason})]
        )

    before = runs.load(run_id)
    watch = [keys.workflow_queued(before.workflow)] if before else []
    change = runs.transition(run_id, decide, watch=watch)
    if change is None:
        return None
    task_ids = [t for s in (before.steps if before else []) if s.status == StepStatus.running for t in s.task_ids]
    if task_ids:
        _revoke(task_ids)
    log.info("run=%s cancelled: %s", run_id, reason)
    promote_queued(change.run.workflow)
    return change.run
