"""The console's pages: server-rendered (Jinja2, autoescaped), plain JavaScript only to refresh.

Each page reads what :mod:`resoto_tasks.views` builds, the same documents the API returns. A page
that changes over time has a fragment route (``/runs/rows``, ``/runs/{id}/live``) that
``static/console.js`` polls every ``RESOTO_WEB_POLL_MS`` and swaps in, so nothing reloads. Forms
POST (with the CSRF token) and redirect back with a notice (303, Post/Redirect/Get).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from resoto_tasks import runs, views
from resoto_tasks.errors import ResotoError
from resoto_tasks.models import RunStatus
from resoto_tasks.timeutil import utcnow
from resoto_tasks.web import api
from resoto_tasks.web.auth import LOGIN_COOKIE, check_csrf, login_value, token_matches
from resoto_tasks.web.errors import Conflict, Invalid
from resoto_tasks.web.settings import WebSettings
from resoto_tasks.web.timeline import timeline
from worker import ledger

router = APIRouter(include_in_schema=False)
CHANGES = [Depends(check_csrf)]
LEDGER_ROWS = 500
"""Ledger entries shown on the page (the downloads have every one)."""


def _settings(request: Request) -> WebSettings:
    settings: WebSettings = request.app.state.web_settings
    return settings


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(request, template, context, status_code=status_code)


def back(url: str, notice: str | None = None, error: str | None = None) -> RedirectResponse:
    params = {k: v for k, v in (("notice", notice), ("error", error)) if v}
    sep = "&" if "?" in url else "?"
    return RedirectResponse(f"{url}{sep}{urlencode(params)}" if params else url, status_code=303)


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/runs", status_code=307)


@router.get("/health")
def health() -> dict[str, bool]:
    return {"ok": True}


# -- login ------------------------------------------------------------------------------------------


@router.get("/login")
def login_page(request: Request, next: str = "/runs") -> Response:
    return render(request, "login.html", next=next if next.startswith("/") else "/runs")


@router.post("/login", dependencies=CHANGES)
def login(request: Request, token: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/runs") -> Response:
    settings = _settings(request)
    target = next if next.startswith("/") and not next.startswith("//") else "/runs"
    if settings.token is None or not token_matches(settings, token):
        return render(request, "login.html", status_code=401, next=target, error="wrong token")
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        LOGIN_COOKIE,
        login_value(settings),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout", dependencies=CHANGES)
def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(LOGIN_COOKIE)
    return response


# -- runs -------------------------------------------------------------------------------------------


def _runs_context(
    workflow: str | None,
    status: str | None,
    has_errors: bool,
    since: str | None,
    until: str | None,
    cursor: str | None,
    limit: int,
) -> dict[str, Any]:
    """What the runs page and its rows fragment show (the same filters as the API)."""
    status_value = RunStatus(status) if status else None
    query = api.run_query(workflow, status_value, has_errors, _when(since), _when(until), limit, cursor)
    found = api.run_page(query)
    filters = {
        "workflow": workflow or "",
        "status": status or "",
        "has_errors": "1" if has_errors else "",
        "since": since or "",
        "until": until or "",
    }
    kept = {k: v for k, v in filters.items() if v}
    return {
        "runs": found.runs,
        "filters": filters,
        "query_string": urlencode({**kept, **({"cursor": cursor} if cursor else {})}),
        "next_url": f"/runs?{urlencode({**kept, 'cursor': found.next_cursor})}" if found.next_cursor else None,
        "first_url": f"/runs?{urlencode(kept)}" if cursor else None,
        "statuses": [s.value for s in RunStatus],
        "workflow_names": [w.name for w in views.workflows()],
        "now": utcnow(),
    }


def _when(value: str | None) -> datetime | None:
    """A ``datetime-local`` field's value (no zone: UTC, as every time the console shows)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise Invalid(f"not a time: {value!r} (expected YYYY-MM-DDTHH:MM)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


RunFilters = dict[str, Any]


def run_filters(
    workflow: str | None = None,
    status: Annotated[str | None, Query(pattern="^(|queued|running|succeeded|failed|cancelled)$")] = None,
    has_errors: bool = False,
    since: str | None = None,
    until: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=api.MAX_LIMIT)] = 25,
) -> RunFilters:
    return _runs_context(workflow, status, has_errors, since, until, cursor, limit)


@router.get("/runs")
def runs_page(
    request: Request, context: Annotated[RunFilters, Depends(run_filters)], notice: str = "", error: str = ""
) -> Response:
    return render(request, "runs.html", notice=notice, error=error, **context)


@router.get("/runs/rows")
def runs_rows(request: Request, context: Annotated[RunFilters, Depends(run_filters)]) -> Response:
    return render(request, "runs_rows.html", **context)


def _run_context(run_id: str, filters: dict[str, str]) -> dict[str, Any]:
    document = views.show_run(run_id, with_entries=False)
    entries = ledger.entries(run_id) if document.ledger is not None else []
    shown = api.filter_ledger(entries, **{k: v or None for k, v in filters.items()})
    now = utcnow()
    return {
        "run": document,
        "timeline": timeline(document, now),
        "ledger_summary": document.ledger,
        "ledger_rows": shown[:LEDGER_ROWS],
        "ledger_matching": len(shown),
        "ledger_filters": filters,
        "ledger_query": urlencode({k: v for k, v in filters.items() if v}),
        "ledger_kinds": sorted({e.kind for e in entries}),
        "ledger_accounts": sorted({f"{e.provider}/{e.account}" for e in entries}),
        "decisions": [d.value for d in ledger.Decision],
        "now": now,
    }


def ledger_filters(decision: str = "", reason: str = "", kind: str = "", account: str = "") -> dict[str, str]:
    return {"decision": decision, "reason": reason, "kind": kind, "account": account}


@router.get("/runs/{run_id}")
def run_page(
    request: Request,
    run_id: str,
    filters: Annotated[dict[str, str], Depends(ledger_filters)],
    notice: str = "",
    error: str = "",
) -> Response:
    return render(request, "run.html", notice=notice, error=error, **_run_context(run_id, filters))


@router.get("/runs/{run_id}/live")
def run_live(request: Request, run_id: str) -> Response:
    document = views.show_run(run_id, with_entries=False)
    return render(request, "run_live.html", run=document, timeline=timeline(document, utcnow()), now=utcnow())


@router.post("/runs/{run_id}/cancel", dependencies=CHANGES)
def cancel_run(run_id: str) -> Response:
    runs.get(run_id)
    try:
        api.cancel_run(run_id)
    except Conflict as exc:
        return back(f"/runs/{run_id}", error=str(exc))
    return back(f"/runs/{run_id}", notice="cancelled: running tasks stop at their next abort check")


# -- workflows, schedules, subscribers, resources --------------------------------------------------


@router.get("/workflows")
def workflows_page(request: Request, notice: str = "", error: str = "") -> Response:
    found = views.workflows()
    schedules: dict[str, list[Any]] = {}
    for row in views.schedules():
        schedules.setdefault(row.workflow, []).append(row)
    recent = views.recent_runs_of([w.name for w in found], per_workflow=5)
    return render(
        request,
        "workflows.html",
        workflows=found,
        schedules=schedules,
        recent=recent,
        notice=notice,
        error=error,
        now=utcnow(),
    )


@router.post("/workflows/{name}/run", dependencies=CHANGES)
def run_now(name: str) -> Response:
    try:
        result = api.start_run(name, "web")
    except Conflict as exc:
        return back("/workflows", error=str(exc))
    note = f"{name}: run {result.run_id} {result.status.value}"
    return back(f"/runs?{urlencode({'workflow': name})}", notice=note)


@router.get("/schedules")
def schedules_page(request: Request, notice: str = "", error: str = "") -> Response:
    return render(request, "schedules.html", rows=views.schedules(), notice=notice, error=error)


@router.post("/schedules/{workflow}/pause", dependencies=CHANGES)
def pause(workflow: str, note: Annotated[str, Form(max_length=500)] = "") -> Response:
    from beat import control

    try:
        control.pause(workflow, note or None)
    except ResotoError as exc:
        return back("/schedules", error=str(exc))
    return back("/schedules", notice=f"paused the schedule of {workflow}")


@router.post("/schedules/{workflow}/resume", dependencies=CHANGES)
def resume(workflow: str) -> Response:
    from beat import control

    was = control.resume(workflow)
    text = f"resumed the schedule of {workflow}" if was else f"the schedule of {workflow} was not paused"
    return back("/schedules", notice=text)


@router.get("/subscribers")
def subscribers_page(request: Request) -> Response:
    return render(request, "subscribers.html", subs=views.subscriber_views())


@router.get("/resources")
def resources_page(request: Request) -> Response:
    return render(request, "resources.html", counts=views.resource_counts(), accounts=views.account_stats())
