"""The ASGI app: the API and the pages behind one guard (authentication, cross-site refusals,
security headers, a ``Server-Timing`` header with the time spent in the app)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.base import BaseHTTPMiddleware

from resoto_tasks.timeutil import human_duration
from resoto_tasks.web import api, errors, pages
from resoto_tasks.web.auth import (
    CSRF_COOKIE,
    SAFE_METHODS,
    authenticate,
    cross_site,
    csrf_token,
    is_open_path,
    loopback_host,
)
from resoto_tasks.web.settings import WebSettings, get_web_settings

HERE = Path(__file__).parent
SECURITY_HEADERS = {
    # Scripts only from this server: even a value that escaped escaping could not run.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value else ""


def _forms(request: Request) -> dict[str, Any]:
    """``csrf()`` in every template: the token its forms send."""
    return {"csrf": lambda: csrf_token(request)}


def templates() -> Jinja2Templates:
    """Autoescaped templates (every value from a user or a cloud is text, never markup)."""
    found = Jinja2Templates(directory=str(HERE / "templates"), context_processors=[_forms])
    assert found.env.autoescape, "templates must autoescape"
    found.env.filters["duration"] = human_duration
    found.env.filters["when"] = _when
    return found


class Guard(BaseHTTPMiddleware):
    """Authentication, cross-site refusals and headers for every request (see :mod:`.auth`)."""

    async def dispatch(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        settings: WebSettings = request.app.state.web_settings
        path = request.url.path
        if not settings.protected and not loopback_host(request.headers.get("host")):
            response = errors.error_response(
                request, 400, "without RESOTO_WEB_TOKEN this console answers only to localhost, 127.0.0.1 or [::1]"
            )
        elif request.method not in SAFE_METHODS and (problem := cross_site(request)):
            response = errors.error_response(request, 403, problem)
        else:
            request.state.auth = authenticate(request, settings)
            if request.state.auth is None and not is_open_path(path):
                response = self._refuse(request, settings)
            else:
                if request.method == "GET" and not path.startswith(("/api/", "/static/")):
                    csrf_token(request)  # every page hands its browser the token its forms will send
                response = await call_next(request)
        new_csrf = getattr(request.state, "csrf", None)
        if new_csrf and new_csrf != request.cookies.get(CSRF_COOKIE):
            response.set_cookie(CSRF_COOKIE, new_csrf, samesite="strict", secure=request.url.scheme == "https")
        response.headers.update(SECURITY_HEADERS)
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.2f}"
        return response

    @staticmethod
    def _refuse(request: Request, settings: WebSettings) -> Response:
        challenges = ([] if settings.token is None else ['Bearer realm="resoto-tasks"']) + (
            [] if settings.basic_auth is None else ['Basic realm="resoto-tasks"']
        )
        if request.url.path.startswith("/api/"):
            response: Response = JSONResponse({"error": "authentication required: send the token"}, status_code=401)
        elif settings.token is not None:
            csrf_token(request)
            response = request.app.state.templates.TemplateResponse(
                request, "login.html", {"next": request.url.path, "error": ""}, status_code=401
            )
        else:
            response = JSONResponse({"error": "authentication required"}, status_code=401)
        response.headers["WWW-Authenticate"] = ", ".join(challenges)
        return response


def create_app(settings: WebSettings | None = None) -> FastAPI:
    app = FastAPI(
        title="resoto-tasks",
        summary="Workflows, runs, schedules, subscribers and resources of resoto-tasks.",
        version="1",
        openapi_url="/api/v1/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.web_settings = settings or get_web_settings()
    app.state.templates = templates()
    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    errors.install(app)
    app.add_middleware(Guard)
    return app
