"""The orchestration tasks on the ``workflow`` queue: step callbacks, errbacks, the supervisor.

Each is idempotent: a redelivered or duplicated message finds its work already done.
"""

from __future__ import annotations

import logging
from typing import Any

from resoto_tasks import engine, events, supervisor
from resoto_tasks.celery_app import app
from resoto_tasks.models import TriggerInfo, TriggerKind
from resoto_tasks.routing import WORKFLOW

log = logging.getLogger(__name__)


@app.task(name=engine.STEP_DONE_TASK, queue=WORKFLOW, ignore_result=True)
def step_done(run_id: str, step_index: int, epoch: int) -> None:
    """The chord body: every blocking subscriber of the step answered."""
    if engine.finish_step(run_id, step_index, epoch, cause="callback") is None:
        engine.advance(run_id)  # a duplicate, or a race lost to the supervisor: heal if needed


@app.task(name=engine.STEP_LOST_TASK, queue=WORKFLOW, ignore_result=True)
def step_lost(*args: Any) -> None:
    """The chord errback: a subscriber task died without answering (worker lost, hard limit).

    Celery passes the failed task's id first, then our immutable arguments.
    """
    run_id, step_index, epoch = args[-3], int(args[-2]), int(args[-1])
    if engine.finish_step(run_id, step_index, epoch, cause="lost") is None:
        engine.advance(run_id)


@app.task(name="resoto.workflow.supervise", queue=WORKFLOW, ignore_result=True)
def supervise() -> None:
    """Time steps out, resume stalled runs, start queued runs, prune history."""
    supervisor.tick_if_due(force=True)


@app.task(name="resoto.workflow.start", queue=WORKFLOW, ignore_result=True)
def start_workflow(name: str, trigger: dict[str, Any] | None = None, slot: str | None = None) -> dict[str, Any]:
    """Start a workflow from a message (beat sends these with the slot they were due for)."""
    info = TriggerInfo.model_validate(trigger) if trigger else TriggerInfo(kind=TriggerKind.manual)
    return engine.start(name, info, slot=slot).model_dump(mode="json")


@app.task(name="resoto.workflow.emit", queue=WORKFLOW, ignore_result=True)
def emit_event(name: str, data: dict[str, Any] | None = None) -> None:
    events.emit(name, data or {})
