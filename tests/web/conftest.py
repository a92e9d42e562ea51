"""One ``resoto-tasks web`` (real uvicorn, with a token) and one browser per test process.

Both are session fixtures beside the session worker the tests share. The API and browser tests
carry ``xdist_group("web")`` so one xdist process runs them and starts the server and the browser
once (this needs pytest below 9.2, see pyproject.toml).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

from tests.support.redis_server import RedisServer
from tests.support.web import ARTIFACTS, CHROMIUM, WebServer
from tests.support.workers import WorkerProcess

TOKEN = f"test-{secrets.token_hex(8)}"
POLL_MS = 250
"""The pages ask for fresh rows this often (the default is 2 s); waits below are 100x that or more."""
WAIT_MS = 30_000
"""Playwright's bound on every wait and ``expect`` (they return as soon as the condition holds)."""
expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="session")
def web(redis_server: RedisServer, session_worker: WorkerProcess) -> Iterator[WebServer]:
    server = WebServer({"RESOTO_WEB_TOKEN": TOKEN, "RESOTO_WEB_POLL_MS": str(POLL_MS)}).start()
    yield server
    server.stop(timeout_s=10)


@pytest.fixture
def api(web: WebServer) -> Iterator[httpx.Client]:
    """An API client with the bearer token."""
    with httpx.Client(base_url=web.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    found = playwright.chromium.launch(executable_path=CHROMIUM)
    yield found
    found.close()


@pytest.fixture(scope="session")
def logged_in(browser: Browser, web: WebServer) -> Iterator[BrowserContext]:
    """A browser context that logged in once through the login form."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(base_url=web.url, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.goto("/runs")
    page.fill("input[name=token]", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_url("**/runs")
    page.close()
    yield context
    context.close()


@pytest.fixture
def page(logged_in: BrowserContext) -> Iterator[Page]:
    found = logged_in.new_page()
    yield found
    found.close()
