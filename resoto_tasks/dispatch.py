"""The Celery side of the engine: send a step as a chord, hand runs to the ``workflow`` queue,
revoke, and read subscribers' answers back from the result backend.

A step is ``chord(group(blocking subscribers), step_done)``: the callback receives the
subscribers' answers (their tasks' results) as its first argument, so no answer is written twice.
A step with one blocking subscriber is that task with ``step_done`` linked, which is what the
chord of one amounts to (Celery's own ``chain`` unrolls a group of one the same way): the callback
still runs only once the subscriber answered, and Celery's chord bookkeeping in the result
backend (counter, join set, expiries: about 27 Redis commands per step, measured) is skipped.
Celery sends a linked callback just before it stores the task's result (a chord's after): the
engine takes the answer from the callback's argument, never from the backend, so the order does
not matter to it; the supervisor's lost-callback check reads the stored result, which follows.
A chord of two or more has a group id that names the step attempt and its size
(:func:`resoto_tasks.result_backend.step_join_id`), so the result backend joins it in one round
trip per answer instead of Celery's generic bookkeeping (see :mod:`resoto_tasks.result_backend`).
Non-blocking subscribers are sent beside the chord. Everything here takes the Celery app it is
given; it never builds one (see :mod:`resoto_tasks.runtime`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from celery import Celery, chord, group
from celery.utils import uuid

from resoto_tasks.models import ActionMessage, Outcome, OutcomeStatus, Run, StepRun, Subscription, TriggerInfo
from resoto_tasks.result_backend import step_join_id
from resoto_tasks.routing import WORKFLOW

log = logging.getLogger(__name__)

STEP_DONE_TASK = "resoto.workflow.step_done"
STEP_LOST_TASK = "resoto.workflow.step_lost"
ADVANCE_TASK = "resoto.workflow.advance"
START_TASK = "resoto.workflow.start"
TERMINATE_TASK = "resoto.workflow.terminate"


def hard_limit_s(timeout_s: float) -> float:
    """Hard time limit: the soft limit (the timeout) plus a grace to catch it and answer."""
    return timeout_s + max(2.0, min(30.0, timeout_s * 0.1))


def outcome_from_result(subscriber_id: str, value: Any, blocking: bool = True) -> Outcome:
    """A subscriber task's result as its answer (anything else than an outcome is an error)."""
    try:
        return Outcome.model_validate(value)
    except ValueError:
        return Outcome(
            subscriber_id=subscriber_id,
            status=OutcomeStatus.error,
            error=f"answered with something that is not an outcome: {str(value)[:200]}",
            blocking=blocking,
        )


def argsrepr(run: Run, step: StepRun, sub: Subscription) -> str:
    """What Flower and the worker log show as a subscriber task's arguments: who and where.

    Given, Celery does not ``saferepr`` the whole action message of every task it sends (measured:
    about 200 calls per message, the largest share of a step's dispatch time after Redis I/O).
    """
    shown = {"run_id": run.id, "workflow": run.workflow, "step": step.name, "subscriber": sub.subscriber_id}
    return repr(shown)


class CeleryDispatcher:
    """Sends what the engine decided, through one Celery app."""

    def __init__(self, app: Celery, cancel_grace_s: float = 30.0) -> None:
        self.app = app
        self.cancel_grace_s = cancel_grace_s

    def send_step(self, run: Run, index: int, subs: Mapping[str, Subscription]) -> None:
        """The step's chord (callback and errback on ``workflow``) and its non-blocking tasks."""
        step = run.steps[index]
        for sid in step.nonblocking:
            if sid in subs:
                self._signature(run, index, step, subs[sid]).apply_async()
        header = [self._signature(run, index, step, subs[sid]) for sid in step.blocking if sid in subs]
        if header:
            args = (run.id, index, step.epoch)
            callback = self.app.signature(STEP_DONE_TASK, args=args, queue=WORKFLOW, argsrepr=repr(args))
            errback = self.app.signature(STEP_LOST_TASK, args=args, queue=WORKFLOW, immutable=True)
            if len(header) == 1:  # a chord of one, unrolled (see the module docstring)
                header[0].apply_async(link=callback, link_error=errback)
            else:
                # The chord's own task_id is its group's id (the callback gets a fresh one).
                join_id = step_join_id(run.id, index, step.epoch, len(header))
                step_chord = chord(group(header, app=self.app), callback, app=self.app, task_id=join_id)
                step_chord.apply_async(task_id=uuid(), link_error=errback)
        log.info(
            "run=%s step=%s dispatched to %d blocking, %d non-blocking subscribers (deadline in %.0fs)",
            run.id, step.name, len(header), len(step.nonblocking),
            ((step.deadline_ms or 0) - run.updated_ms) / 1000,
        )  # fmt: skip

    def _signature(self, run: Run, index: int, step: StepRun, sub: Subscription) -> Any:
        message = ActionMessage.for_step(run, index, sub)
        return self.app.signature(
            sub.task,
            args=(message.model_dump(mode="json"),),
            queue=sub.queue,
            task_id=step.task_ids[sub.subscriber_id],
            soft_time_limit=sub.timeout_s,
            time_limit=hard_limit_s(sub.timeout_s),
            immutable=True,
            argsrepr=argsrepr(run, step, sub),
            kwargsrepr="{}",
        )

    def send_advance(self, run_id: str) -> None:
        self.app.send_task(ADVANCE_TASK, args=(run_id,), queue=WORKFLOW)

    def send_start(self, workflow: str, trigger: TriggerInfo) -> None:
        self.app.send_task(START_TASK, args=(workflow, trigger.model_dump(mode="json")), queue=WORKFLOW)

    def revoke(self, task_ids: Sequence[str], terminate: bool) -> None:
        try:
            if terminate:
                self.app.control.revoke(list(task_ids), terminate=True, signal="SIGTERM")
            else:
                self.app.control.revoke(list(task_ids))
        except Exception as exc:  # revoking is best effort; the step's outcome is already decided
            log.warning("could not revoke %d tasks: %s", len(task_ids), exc)

    def terminate_later(self, task_ids: Sequence[str]) -> None:
        """The cancel fallback: terminate what still runs after the grace (a short countdown)."""
        self.app.send_task(TERMINATE_TASK, args=(list(task_ids),), queue=WORKFLOW, countdown=self.cancel_grace_s)

    def answers(self, step: StepRun, subscriber_ids: Iterable[str]) -> dict[str, Outcome]:
        """The answers the result backend holds for ``subscriber_ids`` of ``step`` (this epoch).

        A task that failed (killed by its hard time limit, its worker lost) answers ``lost``.
        """
        wanted = [(sid, step.task_ids[sid]) for sid in subscriber_ids if sid in step.task_ids]
        if not wanted:
            return {}
        backend = self.app.backend
        raws = backend.client.mget([backend.get_key_for_task(tid) for _, tid in wanted])
        found: dict[str, Outcome] = {}
        for (sid, _), raw in zip(wanted, raws, strict=True):
            if raw is None:
                continue
            meta = backend.decode_result(raw)
            state = meta.get("status")
            if state == "SUCCESS":
                found[sid] = outcome_from_result(sid, meta.get("result"), sid in step.blocking)
            elif state in ("FAILURE", "REVOKED"):
                found[sid] = Outcome(
                    subscriber_id=sid,
                    status=OutcomeStatus.lost,
                    error=f"the task ended {state.lower()}: {str(meta.get('result'))[:300]}",
                    blocking=sid in step.blocking,
                )
        return found
