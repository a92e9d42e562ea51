"""The orchestration tasks on the ``workflow`` queue: they alone send steps.

Each is idempotent: a redelivered or duplicated message finds its work already done, except
that a redelivered dispatcher sends again what it may not have sent (see
:mod:`resoto_tasks.transitions`). They are shared tasks: defining them builds no app.
"""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task

from resoto_tasks import dispatch, supervisor
from resoto_tasks.models import TriggerInfo, TriggerKind
from resoto_tasks.routing import WORKFLOW
from resoto_tasks.wiring import engine_for


@shared_task(name=dispatch.STEP_DONE_TASK, bind=True, queue=WORKFLOW, ignore_result=True)
def step_done(self: Task, results: list[Any] | Any, run_id: str, step_index: int, epoch: int) -> None:
    """The step's callback: every blocking subscriber answered.

    ``results`` are their answers: a list from a chord, the one answer from a linked task.
    """
    answers = results if isinstance(results, list) else [results]
    engine_for(self.app).step_done(run_id, step_index, epoch, answers, self.request.id)


@shared_task(name=dispatch.STEP_LOST_TASK, bind=True, queue=WORKFLOW, ignore_result=True)
def step_lost(self: Task, *args: Any) -> None:
    """The chord errback: a subscriber task died without answering (worker lost, hard limit).

    Celery passes the failed task's request, exception and traceback first, then our arguments.
    """
    run_id, step_index, epoch = args[-3], int(args[-2]), int(args[-1])
    engine_for(self.app).step_lost(run_id, step_index, epoch, self.request.id)


@shared_task(name=dispatch.ADVANCE_TASK, bind=True, queue=WORKFLOW, ignore_result=True)
def advance(self: Task, run_id: str) -> None:
    """Dispatch a run's current step: where producers hand a run they committed."""
    engine_for(self.app).advance(run_id, self.request.id)


@shared_task(name=dispatch.START_TASK, bind=True, queue=WORKFLOW, ignore_result=True)
def start_workflow(
    self: Task, name: str, trigger: dict[str, Any] | None = None, slot: str | None = None, run_id: str | None = None
) -> None:
    """Start a workflow from a message (beat sends these with their slot; events send them too).

    A workflow task: it sends the run's first step itself, one queue hop fewer than a producer.
    """
    info = TriggerInfo.model_validate(trigger) if trigger else TriggerInfo(kind=TriggerKind.manual)
    engine_for(self.app).start(name, info, slot=slot, dispatcher=self.request.id, run_id=run_id)


@shared_task(name=dispatch.TERMINATE_TASK, bind=True, queue=WORKFLOW, ignore_result=True)
def terminate(self: Task, task_ids: list[str]) -> None:
    """The cancel fallback: terminate the tasks of a cancelled run that still run after the grace."""
    backend = self.app.backend
    raws = backend.client.mget([backend.get_key_for_task(t) for t in task_ids]) if task_ids else []
    running = [
        t
        for t, raw in zip(task_ids, raws, strict=True)
        if raw is None or backend.decode_result(raw).get("status") not in ("SUCCESS", "FAILURE", "REVOKED")
    ]
    if running:
        self.app.control.revoke(running, terminate=True, signal="SIGTERM")


@shared_task(name="resoto.workflow.supervise", bind=True, queue=WORKFLOW, ignore_result=True)
def supervise(self: Task) -> None:
    """A supervisor tick (beat sends one rarely, as a backstop; workflow workers tick every period)."""
    supervisor.tick_if_due(engine_for(self.app), force=True)
