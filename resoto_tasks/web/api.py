"""The HTTP API under ``/api/v1``: the CLI's ``--json`` documents (:mod:`resoto_tasks.views`), over HTTP.

Reads are GETs; changes are POSTs (and one DELETE), each guarded by :func:`auth.check_csrf`.
Handlers are plain functions where they only call blocking code: FastAPI runs those in its
thread pool, where the blocking Redis client belongs.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from beat import control
from beat.control import ScheduleRow
from resoto_tasks import runs, runtime, views, workflows
from resoto_tasks.models import (
    Run,
    RunStatus,
    StartResult,
    StartStatus,
    TriggerInfo,
    TriggerKind,
    Workflow,
    WorkflowDefinition,
)
from resoto_tasks.store import StoreCounts
from resoto_tasks.web.auth import check_csrf
from resoto_tasks.web.errors import Conflict, Invalid
from worker import ledger

router = APIRouter(prefix="/api/v1")
CHANGES = [Depends(check_csrf)]
MAX_LIMIT = 500
LEDGER_COLUMNS = ["provider", "account", "id", "kind", "name", "decision", "reason", "mark_reason", "at"]


class StartRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workflow: str


class PauseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(default=None, max_length=500)


class EventRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    data: dict[str, Any] = Field(default_factory=dict)


class ErrorBody(BaseModel):
    """Every error: a message, and where it helps, the problems one by one."""

    error: str
    problems: list[dict[str, str]] | None = None


ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (401, 403, 404, 409, 422, 503)}


def run_query(
    workflow: str | None = None,
    status: RunStatus | None = None,
    has_errors: bool = False,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> runs.RunQuery:
    """The listing's query from request parameters (the API's and the runs page's)."""
    return runs.RunQuery(
        workflow=workflow or None,
        status=status,
        errors_only=has_errors,
        since_ms=int(since.timestamp() * 1000) if since else None,
        until_ms=int(until.timestamp() * 1000) if until else None,
        limit=max(1, min(limit, MAX_LIMIT)),
        cursor=cursor or None,
    )


def run_page(query: runs.RunQuery) -> runs.RunPage:
    """Raises: Invalid (a malformed cursor)."""
    try:
        return views.list_runs(query)
    except ValueError as exc:
        raise Invalid(str(exc)) from None


def filter_ledger(
    entries: list[ledger.Entry],
    decision: str | None = None,
    reason: str | None = None,
    kind: str | None = None,
    account: str | None = None,
) -> list[ledger.Entry]:
    """Entries whose decision and kind are the given ones, whose account (``provider/account`` or
    ``account``) matches, and whose reason contains ``reason``."""
    return [
        e
        for e in entries
        if (not decision or e.decision.value == decision)
        and (not kind or e.kind == kind)
        and (not account or account in (e.account, f"{e.provider}/{e.account}"))
        and (not reason or reason.lower() in e.reason.lower())
    ]


def ledger_csv(entries: list[ledger.Entry]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=LEDGER_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for e in entries:
        writer.writerow(e.model_dump(mode="json"))
    return out.getvalue()


def start_run(name: str, by: str) -> StartResult:
    """Start ``name`` as ``resoto-tasks run`` does.

    Raises:
        UnknownWorkflow.
        Conflict: the overlap policy started nothing (skipped, or the slot already has its run).
    """
    result = runtime.engine().start(name, TriggerInfo(kind=TriggerKind.manual, details={"by": by}))
    if result.status in (StartStatus.skipped, StartStatus.duplicate):
        raise Conflict(f"not started: {result.message}", {"start": result.model_dump(mode="json")})
    return result


def cancel_run(run_id: str) -> views.RunDocument:
    """Raises: UnknownRun, Conflict (it had already ended)."""
    if runtime.engine().cancel(run_id) is None:
        raise Conflict(f"run {run_id} has already ended")
    return views.show_run(run_id)


def schedules_of(name: str) -> list[ScheduleRow]:
    return [row for row in views.schedules() if row.workflow == name]


# -- workflows --------------------------------------------------------------------------------------


@router.get("/workflows", tags=["workflows"])
def list_workflows() -> list[Workflow]:
    """Every workflow (built-in, from files, added at runtime): ``workflows list --json``."""
    return views.workflows()


@router.get("/workflows/{name}", responses=ERRORS, tags=["workflows"])
def show_workflow(name: str) -> Workflow:
    """One workflow with its steps in run order: ``workflows show NAME --json``."""
    return workflows.catalogue.get(name)


@router.post(
    "/workflows",
    status_code=201,
    responses=ERRORS,
    dependencies=CHANGES,
    tags=["workflows"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/yaml": {"schema": {"type": "string"}}, "application/json": {"schema": {}}},
        }
    },
)
async def add_workflow(request: Request) -> WorkflowDefinition:
    """Add (or replace) a workflow from a YAML or JSON document, as ``workflows add FILE`` does; a
    bad document is a 422 that names each problem (the field and what is wrong)."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return await run_in_threadpool(workflows.add_text, body, "request")


@router.delete("/workflows/{name}", status_code=204, responses=ERRORS, dependencies=CHANGES, tags=["workflows"])
def remove_workflow(name: str) -> Response:
    """Remove a workflow added at runtime (a built-in: 409)."""
    workflows.remove(name)
    return Response(status_code=204)


# -- runs -------------------------------------------------------------------------------------------


@router.get("/runs", responses=ERRORS, tags=["runs"])
def list_runs(
    request: Request,
    response: Response,
    workflow: str | None = None,
    status: RunStatus | None = None,
    has_errors: bool = False,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
    cursor: str | None = None,
) -> list[Run]:
    """Runs newest first, as ``runs list --json`` prints them. The next page's cursor is in the
    ``X-Next-Cursor`` header (and ``Link: <...>; rel="next"``), absent on the last page."""
    found = run_page(run_query(workflow, status, has_errors, since, until, limit, cursor))
    if found.next_cursor:
        params = {k: v for k, v in request.query_params.items() if k != "cursor"}
        response.headers["X-Next-Cursor"] = found.next_cursor
        response.headers["Link"] = (
            f'<{request.url.path}?{urlencode({**params, "cursor": found.next_cursor})}>; rel="next"'
        )
    return found.runs


@router.get("/runs/{run_id}", responses=ERRORS, tags=["runs"])
def show_run(run_id: str) -> views.RunDocument:
    """One run with its steps, each subscriber's answer (live while it runs) and the cleanup
    ledger: ``runs show RUN_ID --json``."""
    return views.show_run(run_id)


@router.get("/runs/{run_id}/ledger", responses=ERRORS, tags=["runs"])
def run_ledger(
    run_id: str,
    decision: ledger.Decision | None = None,
    reason: str | None = None,
    kind: str | None = None,
    account: str | None = None,
    format: Annotated[str, Query(pattern="^(json|csv)$")] = "json",
) -> list[ledger.Entry]:
    """The run's cleanup ledger, filtered; ``format=csv`` for a spreadsheet."""
    runs.get(run_id)
    found = filter_ledger(ledger.entries(run_id), decision.value if decision else None, reason, kind, account)
    if format == "csv":
        return Response(  # type: ignore[return-value]  # the CSV variant of the same list
            ledger_csv(found),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="ledger-{run_id}.csv"'},
        )
    return found


@router.post("/runs", status_code=201, responses=ERRORS, dependencies=CHANGES, tags=["runs"])
def start(body: StartRequest, response: Response) -> StartResult:
    """Start a workflow, as ``resoto-tasks run NAME --json``: 201 with the started (or queued) run,
    409 when the overlap policy starts nothing."""
    result = start_run(body.workflow, "api")
    response.headers["Location"] = f"/api/v1/runs/{result.run_id}"
    return result


@router.post("/runs/{run_id}/cancel", responses=ERRORS, dependencies=CHANGES, tags=["runs"])
def cancel(run_id: str) -> views.RunDocument:
    """Cancel a run (``runs cancel``); the cancelled run, or 409 if it had already ended."""
    return cancel_run(run_id)


# -- schedules, subscribers, events, resources -------------------------------------------------------


@router.get("/schedules", tags=["schedules"])
def list_schedules() -> list[ScheduleRow]:
    """Every time trigger with its next due time, last fired slot and pause: ``schedule list --json``."""
    return views.schedules()


@router.post("/schedules/{workflow}/pause", responses=ERRORS, dependencies=CHANGES, tags=["schedules"])
def pause(workflow: str, body: PauseRequest | None = None) -> list[ScheduleRow]:
    """Pause the workflow's time triggers, with a note; its schedules after the change."""
    control.pause(workflow, body.note if body else None)
    return schedules_of(workflow)


@router.post("/schedules/{workflow}/resume", responses=ERRORS, dependencies=CHANGES, tags=["schedules"])
def resume(workflow: str) -> list[ScheduleRow]:
    """Resume from the next slot (missed ones are not replayed); its schedules after the change."""
    control.resume(workflow)
    return schedules_of(workflow)


@router.get("/subscribers", tags=["subscribers"])
def list_subscribers() -> list[views.SubscriberView]:
    """Live subscriptions with the workers holding them: ``subscribers list --json``."""
    return views.subscriber_views()


@router.post("/events", responses=ERRORS, dependencies=CHANGES, tags=["events"])
def emit(body: EventRequest) -> list[StartResult]:
    """Emit an event; what each triggered workflow did: ``events emit NAME --json``."""
    return runtime.engine().emit(body.name, body.data)


@router.get("/resources/count", tags=["resources"])
def resource_counts() -> StoreCounts:
    """Resources by kind and account; expired, marked, protected: ``resources count --json``."""
    return views.resource_counts()
