"""Errors as answers: JSON ``{"error": message, ...}`` under ``/api/``, an HTML page elsewhere.

Every domain error maps to one status code: unknown run or workflow 404, an invalid workflow
document 422 (with one problem per line, as ``workflows validate`` prints them), a change the
state does not allow 409, a CSRF refusal 403, Redis unreachable 503.
"""

from __future__ import annotations

from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from beat.control import NoTimeTrigger
from resoto_tasks.errors import (
    BuiltinWorkflowError,
    ConfigurationError,
    RedisUnavailable,
    ResotoError,
    UnknownRun,
    UnknownWorkflow,
    WorkflowFileErrors,
)
from resoto_tasks.redis_conn import mask_url
from resoto_tasks.settings import get_settings
from resoto_tasks.web.auth import CsrfRefused


class Conflict(ResotoError):
    """The request is valid but the state does not allow it (409): a run already ended, a start
    the overlap policy refused."""

    def __init__(self, message: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.detail = detail or {}


class Invalid(ResotoError):
    """A request the API cannot use (422), e.g. a malformed cursor."""


def error_response(request: Request, status: int, message: str, extra: dict[str, Any] | None = None) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message, **(extra or {})}, status_code=status)
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(
        request, "error.html", {"status": status, "message": message, "extra": extra or {}}, status_code=status
    )


def _status_of(exc: ResotoError) -> int:
    match exc:
        case UnknownRun() | UnknownWorkflow():
            return 404
        case WorkflowFileErrors() | Invalid() | ConfigurationError() | NoTimeTrigger():
            return 422
        case BuiltinWorkflowError() | Conflict():
            return 409
        case RedisUnavailable():
            return 503
    return 500


async def _domain(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ResotoError)
    extra: dict[str, Any] = {}
    if isinstance(exc, WorkflowFileErrors):
        extra["problems"] = [{"path": p.path, "field": p.field, "problem": p.problem} for p in exc.problems]
    if isinstance(exc, Conflict):
        extra.update(exc.detail)
    message = str(exc).splitlines()[0] if isinstance(exc, WorkflowFileErrors) else str(exc)
    return error_response(request, _status_of(exc), message, extra)


async def _redis(request: Request, exc: Exception) -> Response:
    return error_response(request, 503, f"cannot reach Redis at {mask_url(get_settings().store)}")


async def _validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"), "problem": str(e.get("msg", ""))}
        for e in exc.errors()
    ]
    first = problems[0] if problems else {"field": "", "problem": "invalid request"}
    return error_response(request, 422, f"{first['field']}: {first['problem']}", {"problems": problems})


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    response = error_response(request, exc.status_code, str(exc.detail))
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


async def _csrf(request: Request, exc: Exception) -> Response:
    return error_response(request, 403, str(exc))


def install(app: FastAPI) -> None:
    app.add_exception_handler(CsrfRefused, _csrf)
    app.add_exception_handler(ResotoError, _domain)
    app.add_exception_handler(redis.exceptions.ConnectionError, _redis)
    app.add_exception_handler(redis.exceptions.TimeoutError, _redis)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
