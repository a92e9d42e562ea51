"""The engine: read, decide, apply, then act. The one place the pure rules meet Redis and Celery.

Every method has the same shape: read what the decision needs (one round trip), decide with a
pure function of :mod:`resoto_tasks.transitions`, apply the decision atomically under the guard
of what was read (:class:`resoto_tasks.runs.RunStore`; on a concurrent change read and decide
again), then carry out its effects through the task queue (:class:`Tasks`): send the step, hand a
run to the ``workflow`` queue, revoke, start workflows an event triggers.

The store and the task queue are injected: :mod:`resoto_tasks.runtime` composes the Redis store
and the Celery dispatcher; :mod:`resoto_tasks.memory` composes in-memory ones for tests.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from resoto_tasks import events, keys, transitions
from resoto_tasks.errors import UnknownRun, UnknownWorkflow
from resoto_tasks.models import (
    OnSurpass,
    Outcome,
    OutcomeStatus,
    Progress,
    Run,
    RunEndCause,
    StartResult,
    StartStatus,
    StepCause,
    StepRun,
    StepStatus,
    Subscription,
    TriggerInfo,
    TriggerKind,
    Workflow,
)
from resoto_tasks.runs import Applied, Guard, Versioned
from resoto_tasks.transitions import (
    Admission,
    Decision,
    EmitAction,
    Inputs,
    Record,
    Revoke,
    RunEnded,
    SendAdvance,
    SendStep,
    TerminateLater,
)

log = logging.getLogger(__name__)

Live = Mapping[str, Sequence[Subscription]]


class Store(Protocol):
    """What the engine needs of the run store (:class:`resoto_tasks.runs.RunStore`)."""

    def load(self, run_id: str) -> Versioned | None: ...

    def load_with_live(
        self, run_id: str, at_ms: int
    ) -> tuple[Versioned | None, dict[str, list[Subscription]], str]: ...

    def admission(
        self, workflow: str, slot: str | None, live_at_ms: int | None = None
    ) -> tuple[Admission, list[Guard], str, dict[str, list[Subscription]]]: ...

    def with_active_runs(self, state: Admission, guards: list[Guard]) -> tuple[Admission, list[Guard]]: ...

    def apply(self, decision: Decision, guards: Sequence[Guard], reads: Sequence[str] = ()) -> Applied: ...


class Tasks(Protocol):
    """What the engine needs of the task queue (:class:`resoto_tasks.dispatch.CeleryDispatcher`)."""

    def send_step(self, run: Run, index: int, subs: Mapping[str, Subscription]) -> None: ...

    def send_advance(self, run_id: str) -> None: ...

    def send_start(self, workflow: str, trigger: TriggerInfo) -> None: ...

    def revoke(self, task_ids: Sequence[str], terminate: bool) -> None: ...

    def terminate_later(self, task_ids: Sequence[str]) -> None: ...

    def answers(self, step: StepRun, subscriber_ids: Iterable[str]) -> dict[str, Outcome]: ...


Workflows = Callable[[str | None], Mapping[str, Workflow]]
"""The catalogue: every workflow by name, given the workflows version if the caller read it."""


def _run_guard(found: Versioned) -> list[Guard]:
    return [("sha", keys.run(found.run.id), found.sha)]


class Engine:
    """Starts, moves, cancels and supervises runs (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        tasks: Tasks,
        workflows: Workflows,
        clock: Callable[[], int],
        new_run_id: Callable[[], str],
        progress: Callable[[str], Mapping[tuple[int, str], Progress]] = lambda _run_id: {},
    ) -> None:
        self.store = store
        self.tasks = tasks
        self.workflows = workflows
        self.clock = clock
        self.new_run_id = new_run_id
        self.progress = progress

    # -- starting runs (producers) ----------------------------------------------------------------

    def workflow(self, name: str, version: str | None = None) -> Workflow:
        """The definition of ``name`` (at the workflows ``version`` if the caller read it).

        Raises: UnknownWorkflow (listing the known ones)."""
        known = self.workflows(version)
        if name not in known:
            raise UnknownWorkflow(name, list(known))
        return known[name]

    def start(
        self,
        name: str,
        trigger: TriggerInfo | None = None,
        slot: str | None = None,
        dispatcher: str | None = None,
        run_id: str | None = None,
    ) -> StartResult:
        """Start ``name`` following its ``on_surpass``: commit the run and hand it to the
        ``workflow`` queue, or, for a ``workflow`` task (``dispatcher``), send its first step.

        ``slot`` (a schedule's due time) makes the start idempotent per slot, and so does a
        ``run_id`` chosen by the caller; a dispatcher redelivered after dying finds its run and
        sends what it may not have sent.

        Raises:
            UnknownWorkflow: no such workflow.
        """
        trigger = trigger or TriggerInfo(kind=TriggerKind.manual)
        result = self._admit(name, trigger, slot, dispatcher, run_id or self.new_run_id(), run_id is not None)
        if result.status == StartStatus.duplicate and dispatcher is not None and result.run_id:
            self.advance(result.run_id, dispatcher)
        if result.status == StartStatus.started:
            log.info("run=%s workflow=%s started (%s)", result.run_id, name, trigger.kind.value)
        else:
            log.info("workflow=%s %s: %s", name, result.status.value, result.message)
        return result

    def _admit(
        self,
        name: str,
        trigger: TriggerInfo,
        slot: str | None,
        dispatcher: str | None,
        run_id: str,
        chosen_id: bool,
    ) -> StartResult:
        """Read the admission state with the workflows version, decide with that version's
        definition, apply under the guards; again on a conflict. Raises: UnknownWorkflow."""
        while True:
            now = self.clock()
            # A dispatching start (a workflow task) reads the live subscriptions in the same round trip.
            state, guards, version, live = self.store.admission(name, slot, now if dispatcher is not None else None)
            workflow = self.workflow(name, version)
            if workflow.on_surpass == OnSurpass.replace_ and state.active:
                state, guards = self.store.with_active_runs(state, guards)
            inputs = Inputs(now, live, dispatcher)
            result, decision = transitions.admit(workflow, trigger, state, run_id, now, slot, inputs)
            if not decision.runs and not decision.writes:
                return result
            if self._apply(decision, guards, live):
                return result
            if chosen_id and self.store.load(run_id) is not None:  # the caller's id was taken before
                return StartResult(
                    status=StartStatus.duplicate, workflow=workflow.name, run_id=run_id, message="already started"
                )

    def emit(self, name: str, data: Mapping[str, Any] | None = None) -> list[StartResult]:
        """Record an event and start every workflow whose event trigger matches it."""
        payload = dict(data or {})
        events.record(name, payload)
        trigger = TriggerInfo(kind=TriggerKind.event, details={"event": name, "data": payload})
        return [self.start(w, trigger) for w in events.matching(name, payload, self.workflows(None))]

    # -- moving runs (the workflow queue's tasks) -------------------------------------------------

    def advance(self, run_id: str, dispatcher: str | None) -> None:
        """Dispatch the run's current step (passing steps nobody subscribes to), or end it."""
        while True:
            found, live, version = self.store.load_with_live(run_id, self.clock())
            if found is None:
                return
            decision = transitions.advance(found.run, Inputs(self.clock(), live, dispatcher))
            if decision is None:
                return
            if self._apply(decision, _run_guard(found), live, version):
                return

    def step_done(self, run_id: str, index: int, epoch: int, results: Sequence[Any], dispatcher: str | None) -> None:
        """The step callback (a chord's body, or linked to a lone subscriber): ``results`` are the
        blocking subscribers' answers."""
        answers = {o.subscriber_id: o for o in (_outcome(r) for r in results) if o is not None}
        self.complete(run_id, index, epoch, StepCause.answered, answers, dispatcher)

    def step_lost(self, run_id: str, index: int, epoch: int, dispatcher: str | None) -> None:
        """The chord errback: a subscriber task died; the answers that came are read back."""
        self.complete(run_id, index, epoch, StepCause.lost, None, dispatcher)

    def complete(
        self,
        run_id: str,
        index: int,
        epoch: int,
        cause: StepCause,
        answers: Mapping[str, Outcome] | None,
        dispatcher: str | None,
    ) -> Run | None:
        """Complete step ``index`` (see :func:`transitions.complete`); the committed run, or ``None``
        if it was not that step's turn (a duplicate: a redelivered dispatcher then sends what it owes).
        """
        while True:
            now = self.clock()
            found, live, version = self.store.load_with_live(run_id, now)
            if found is None:
                return None
            step = found.run.steps[index] if index < len(found.run.steps) else None
            known = dict(answers) if answers is not None else {}
            if step is not None and step.status == StepStatus.running:
                missing = [s for s in step.blocking + step.nonblocking if s not in known]
                if missing:  # the errback, a non-blocking subscriber, or a result that is not an outcome
                    known.update(self.tasks.answers(step, missing))
            decision = transitions.complete(found.run, index, epoch, cause, known, Inputs(now, live, dispatcher))
            if decision is None:
                if dispatcher is not None:
                    self.advance(run_id, dispatcher)
                return None
            if self._apply(decision, _run_guard(found), live, version):
                return decision.run(run_id)

    # -- cancel, promote, supervise (producers) ---------------------------------------------------

    def cancel(self, run_id: str, reason: str = "cancelled by user") -> Run | None:
        """Cancel the run; the cancelled run, or ``None`` if it had already ended.

        Raises:
            UnknownRun: no such run.
        """
        while True:
            found = self.store.load(run_id)
            if found is None:
                raise UnknownRun(run_id)
            decision = transitions.cancel(found.run, reason, self.clock(), RunEndCause.cancelled)
            if decision is None:
                return None
            if self._apply(decision, _run_guard(found), {}):
                log.info("run=%s cancelled: %s", run_id, reason)
                return decision.run(run_id)

    def promote(self, workflow: str) -> str | None:
        """Start the workflow's queued run if nothing of it runs; its id, or ``None``."""
        while True:
            state, guards, _, _ = self.store.admission(workflow, None)
            if not state.queued:
                return None
            queued = self.store.load(state.queued)
            if queued is None:
                return None
            decision = transitions.promote(queued.run, state.active, self.clock())
            if decision is None:
                return None
            if self._apply(decision, [*guards, *_run_guard(queued)], {}):
                log.info("run=%s workflow=%s started from the queue", queued.run.id, workflow)
                return queued.run.id

    def supervise(self, run_id: str, at_ms: int, found: Versioned | None = None) -> str | None:
        """One supervisor look at a running run; what it did (``timed_out``, ``completed``, ``resumed``).

        ``found`` is the record if the caller just read it (read again only after a conflict).
        """
        while True:
            found = found or self.store.load(run_id)
            if found is None:
                return None
            run, step = found.run, found.run.current
            answers: dict[str, Outcome] = {}
            if step is not None and step.status == StepStatus.running:
                answers = self.tasks.answers(step, step.blocking)
            decision = transitions.supervise(run, at_ms, answers)
            if decision is None:
                return None
            if not decision.runs:  # only hands the run to the workflow queue again
                self._carry_out(decision, {}, {})
                return "resumed"
            if not self._apply(decision, _run_guard(found), {}):
                found = None  # changed meanwhile: read and look again
                continue
            finished = decision.run(run_id)
            cause = finished.steps[run.step_index].cause if finished and step else None
            return "timed_out" if cause == StepCause.timeout else "completed"

    # -- reading runs for people ------------------------------------------------------------------

    def view(self, run_id: str) -> Run:
        """The record as people read it: live answers and progress merged into the running step,
        answers that came after their step was decided shown apart as ``late_answers``.

        Raises:
            UnknownRun.
        """
        found = self.store.load(run_id)
        if found is None:
            raise UnknownRun(run_id)
        progress = self.progress(run_id)
        steps = [self._live_step(i, step, progress) for i, step in enumerate(found.run.steps)]
        return found.run.model_copy(update={"steps": steps})

    def _live_step(self, index: int, step: StepRun, progress: Mapping[tuple[int, str], Progress]) -> StepRun:
        everyone = step.blocking + step.nonblocking
        if step.status == StepStatus.running:
            answers = self.tasks.answers(step, everyone)
            outcomes = {
                sub: answers.get(sub)
                or Outcome(subscriber_id=sub, status=OutcomeStatus.running, blocking=sub in step.blocking)
                for sub in everyone
            }
            late: dict[str, Outcome] = {}
        else:
            outcomes = dict(step.outcomes)
            unsettled = [
                s
                for s in everyone
                if s not in outcomes or outcomes[s].status in (OutcomeStatus.timed_out, OutcomeStatus.lost)
            ]
            answers = self.tasks.answers(step, unsettled) if unsettled else {}
            late = {}
            for sub, answer in answers.items():
                decided = outcomes.get(sub)
                if decided is None:
                    outcomes[sub] = answer  # a non-blocking answer that came after the step ended
                elif answer.status != OutcomeStatus.lost and answer != decided:
                    late[sub] = answer.model_copy(update={"late": True})
        for (i, sub), p in progress.items():
            if i == index and sub in outcomes:
                outcomes[sub] = outcomes[sub].model_copy(update={"progress": p})
        return step.model_copy(update={"outcomes": outcomes, "late_answers": late})

    # -- effects ------------------------------------------------------------------------------------

    def _apply(self, decision: Decision, guards: Sequence[Guard], live: Live, version: str | None = None) -> bool:
        """Apply under ``guards``; on success carry the effects out. In the same round trip, read
        what the effects need: the workflows version (event triggers) unless the caller read it
        with the run, and, for a run that ended, whether its workflow has a queued run to start."""
        reads = [] if version is not None else [keys.workflows_version()]
        reads += [keys.workflow_queued(e.workflow) for e in decision.effects if isinstance(e, RunEnded)]
        applied = self.store.apply(decision, guards, reads)
        if applied.ok:
            values = dict(applied.values)
            if version is not None:
                values[keys.workflows_version()] = version
            self._carry_out(decision, live, values)
        return applied.ok

    def _carry_out(self, decision: Decision, live: Live, read: Mapping[str, str]) -> None:
        """What follows a commit, in this order: send (the next step should wait for nothing
        else), revoke, end runs (promote the queued one), then start what events trigger."""
        for write in decision.writes:
            if isinstance(write, Record) and write.kind in ("step_finished", "run_finished"):
                data = write.data
                if write.kind == "step_finished":
                    log.info("run=%s step=%s %s", data["run_id"], data["step"], data["status"])
                else:
                    reason = f" ({data['reason']})" if data.get("reason") else ""
                    log.info(
                        "run=%s workflow=%s finished: %s%s", data["run_id"], data["workflow"], data["status"], reason
                    )
        version = read.get(keys.workflows_version()) or "0"  # "0" until a workflow is added
        ordered = sorted(decision.effects, key=_effect_order)
        for effect in ordered:
            match effect:
                case SendStep(run_id, index):
                    run = decision.run(run_id)
                    if run is not None:
                        step = run.steps[index]
                        self.tasks.send_step(run, index, {s.subscriber_id: s for s in live.get(step.action, ())})
                case SendAdvance(run_id):
                    self.tasks.send_advance(run_id)
                case Revoke(task_ids, terminate):
                    self.tasks.revoke(task_ids, terminate)
                case TerminateLater(task_ids):
                    self.tasks.terminate_later(task_ids)
                case RunEnded(run_id, workflow, status):
                    if read.get(keys.workflow_queued(workflow)):
                        self.promote(workflow)
                    self._trigger(
                        f"{workflow}_workflow_{status.value}",
                        {"run_id": run_id, "workflow": workflow},
                        workflow,
                        version,
                    )
                case EmitAction(action, data, source):
                    self._trigger(action, data, source, version)

    def _trigger(self, name: str, data: Mapping[str, Any], source: str, version: str) -> None:
        """Start (through the ``workflow`` queue) every workflow an event triggers, but never the
        workflow whose run emitted it: a workflow does not feed itself."""
        matches = [w for w in events.matching(name, data, self.workflows(version or None)) if w != source]
        for workflow in matches:
            self.tasks.send_start(
                workflow, TriggerInfo(kind=TriggerKind.event, details={"event": name, "data": dict(data)})
            )


_ORDER = {SendStep: 0, SendAdvance: 0, Revoke: 1, TerminateLater: 1, RunEnded: 2, EmitAction: 3}


def _effect_order(effect: object) -> int:
    return _ORDER.get(type(effect), 4)


def _outcome(value: Any) -> Outcome | None:
    try:
        return Outcome.model_validate(value)
    except ValueError:
        return None
