"""The supervisor: the periodic step function that keeps every run moving.

One :func:`tick` (at an injected time, so tests choose the clock):

* times out the current step of a run past its deadline and moves the run on;
* completes a step whose blocking subscribers all answered but whose callback never came;
* re-dispatches a step whose dispatch was claimed but never confirmed (the dispatcher died);
* drops finished runs from the active sets and starts a queued (``wait``) run whose
  predecessor ended;
* prunes history past retention.

It runs on the ``workflow`` queue (scheduled by beat) and in every worker consuming that
queue; the Redis lock makes it one tick per period however many processes try.
"""

from __future__ import annotations

import logging

from resoto_tasks import engine, keys, runs
from resoto_tasks.models import RunStatus, StepStatus
from resoto_tasks.redis_conn import client
from resoto_tasks.settings import get_settings
from resoto_tasks.timeutil import now_ms

log = logging.getLogger(__name__)

# A step whose every blocking subscriber answered this long ago without a callback is completed.
CALLBACK_GRACE_MS = 5_000


def tick_if_due(force: bool = False) -> bool:
    """Run one tick unless another process ran one within the period; True if this one ran."""
    period_ms = int(get_settings().supervisor_interval_s * 1000)
    got = client().set(keys.supervisor_lock(), "1", nx=True, px=max(100, period_ms - 50))
    if not got and not force:
        return False
    tick()
    return True


def tick(at_ms: int | None = None) -> dict[str, int]:
    """One supervision pass at time ``at_ms``; returns what it did, by kind."""
    now = at_ms if at_ms is not None else now_ms()
    done = {"timed_out": 0, "completed": 0, "resumed": 0, "reconciled": 0, "promoted": 0, "pruned": 0}
    r = client()
    for run_id in sorted(r.smembers(keys.runs_active())):
        try:
            _supervise_run(run_id, now, done)
        except Exception:  # one broken run must not stop the others being supervised
            log.exception("run=%s supervision failed", run_id)
    _reconcile_workflows(done)
    done["pruned"] = runs.prune()
    if any(done.values()):
        log.info("supervisor tick: %s", ", ".join(f"{k}={v}" for k, v in done.items() if v))
    return done


def _supervise_run(run_id: str, now: int, done: dict[str, int]) -> None:
    run = runs.load(run_id)
    if run is None or run.status != RunStatus.running:
        client().srem(keys.runs_active(), run_id)
        done["reconciled"] += 1
        return
    step = run.current
    if step is None:
        engine.advance(run_id)
        done["resumed"] += 1
        return
    index_ = run.step_index
    if step.status == StepStatus.pending:
        engine.advance(run_id)
        done["resumed"] += 1
        return
    if step.status != StepStatus.running:
        engine.advance(run_id)
        return
    if step.deadline_ms is not None and now >= step.deadline_ms:
        if engine.complete_step(run_id, index_, step.epoch, cause="timeout"):
            done["timed_out"] += 1
        engine.advance(run_id)
        return
    if engine.dispatch_state(run_id, index_, step.epoch) is None:
        engine.advance(run_id, run)  # a dead dispatcher's claim expired: dispatch again
        done["resumed"] += 1
        return
    answers = runs.outcomes_of(run_id, index_)
    if step.blocking and all(s in answers for s in step.blocking):
        last = max((answers[s].finished_at or "" for s in step.blocking), default="")
        from datetime import datetime

        last_ms = int(datetime.fromisoformat(last.replace("Z", "+00:00")).timestamp() * 1000) if last else 0
        if now - last_ms >= CALLBACK_GRACE_MS and engine.complete_step(run_id, index_, step.epoch, "callback"):
            done["completed"] += 1
            engine.advance(run_id)


def _reconcile_workflows(done: dict[str, int]) -> None:
    from resoto_tasks.workflows import catalogue

    r = client()
    for name in catalogue.all():
        active = r.smembers(keys.workflow_active(name))
        for run_id in active:
            run = runs.load(run_id)
            if run is None or run.status.finished:
                r.srem(keys.workflow_active(name), run_id)
                done["reconciled"] += 1
        if r.exists(keys.workflow_queued(name)) and engine.promote_queued(name):
            done["promoted"] += 1
