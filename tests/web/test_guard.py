"""The console's rules that need no browser and no worker: where it may listen, which requests may
change something, that no GET changes anything, and the run index's pages (in process, on the
private redis-server)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner

from resoto_tasks import keys, runs
from resoto_tasks.cli.common import EXIT_USAGE
from resoto_tasks.cli.main import app as cli
from resoto_tasks.models import OnError, Run, RunStatus, StepRun, StepStatus, TriggerInfo, TriggerKind
from resoto_tasks.redis_conn import client
from resoto_tasks.web import api, pages, server
from resoto_tasks.web.app import create_app
from resoto_tasks.web.auth import check_csrf
from resoto_tasks.web.settings import WebSettings, get_web_settings
from resoto_tasks.web.timeline import timeline
from tests.support.flow import unique


@pytest.fixture
def open_console() -> Iterator[TestClient]:
    with TestClient(create_app(WebSettings()), base_url="http://127.0.0.1:8900") as found:
        yield found


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "::"])
def test_it_refuses_to_listen_beyond_loopback_without_a_token(host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RESOTO_WEB_TOKEN", raising=False)
    monkeypatch.delenv("RESOTO_WEB_BASIC_AUTH", raising=False)
    get_web_settings.cache_clear()
    try:
        done = CliRunner().invoke(cli, ["web", "--host", host, "--port", "1"])
    finally:
        get_web_settings.cache_clear()
    assert done.exit_code == EXIT_USAGE
    assert done.output.strip().splitlines() == [
        f"error: refusing to serve on {host}: set RESOTO_WEB_TOKEN (or RESOTO_WEB_BASIC_AUTH=user:password) "
        "to listen beyond 127.0.0.1"
    ]


def test_bad_web_settings_are_one_line_each_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESOTO_WEB_BASIC_AUTH", "no-colon")
    monkeypatch.setenv("RESOTO_WEB_PORT", "70000")
    get_web_settings.cache_clear()
    try:
        done = CliRunner().invoke(cli, ["web"])
    finally:
        get_web_settings.cache_clear()
    assert done.exit_code == EXIT_USAGE
    assert "no-colon" not in done.output
    lines = done.output.strip().splitlines()
    assert lines[0] == "error: RESOTO_WEB_PORT: Input should be less than or equal to 65535"
    assert lines[1] == "error: RESOTO_WEB_BASIC_AUTH: expected user:password"


def test_no_get_changes_anything_and_every_change_is_csrf_checked() -> None:
    routes = [r for router in (api.router, pages.router) for r in router.routes if isinstance(r, APIRoute)]
    changes = 0
    for route in routes:
        methods = route.methods or set()
        guarded = any(d.call is check_csrf for d in route.dependant.dependencies)
        if methods & {"POST", "DELETE", "PUT", "PATCH"}:
            changes += 1
            assert guarded, route.path
            assert not methods & {"GET", "HEAD"}, route.path
        else:
            assert methods <= {"GET", "HEAD"}, route.path
    assert changes == 13  # 7 in the API, 6 forms


def test_an_open_console_still_refuses_cross_site_changes(open_console: TestClient) -> None:
    run = {"workflow": "nope"}
    assert open_console.post("/api/v1/runs", json=run).status_code == 404  # curl: no browser headers
    assert open_console.post("/api/v1/runs", json=run, headers={"Origin": "http://evil.example"}).status_code == 403
    assert open_console.post("/api/v1/runs", json=run, headers={"Origin": "null"}).status_code == 403
    assert open_console.post("/api/v1/runs", json=run, headers={"Sec-Fetch-Site": "same-site"}).status_code == 403
    same_origin = {"Origin": "http://127.0.0.1:8900", "Sec-Fetch-Site": "same-origin"}
    assert open_console.post("/api/v1/runs", json=run, headers=same_origin).status_code == 403  # no CSRF token
    form = open_console.post("/runs/nope/cancel", data={"csrf_token": "forged"}, headers=same_origin)
    assert form.status_code == 403
    open_console.get("/runs")
    token = open_console.cookies["resoto_csrf"]
    good = open_console.post("/runs/nope/cancel", data={"csrf_token": token}, headers=same_origin)
    assert good.status_code == 404  # passed the guard; the run is unknown (an HTML page)
    assert "unknown run" in good.text


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8900", "127.0.0.1.evil.example", "10.0.0.5:8900"])
def test_an_open_console_answers_only_to_loopback_host_names(open_console: TestClient, host: str) -> None:
    """DNS rebinding: a hostile page rebound to 127.0.0.1 is same-origin for the browser, so only
    the Host header tells its requests apart."""
    refused = open_console.post("/api/v1/events", json={"name": "x"}, headers={"host": host})
    assert refused.status_code == 400
    assert "answers only to localhost" in refused.json()["error"]
    assert open_console.get("/", headers={"host": host}).status_code == 400
    for loopback in ("127.0.0.1:8900", "localhost:8900", "[::1]:8900", "LOCALHOST"):
        assert open_console.get("/api/v1/workflows", headers={"host": loopback}).status_code == 200


def test_a_login_cookie_that_is_not_ascii_is_refused_not_an_error() -> None:
    settings = WebSettings(token=SecretStr("t0ken"))
    with TestClient(create_app(settings), base_url="http://127.0.0.1:8900") as console:
        cookie = "resoto_login=\u00e9t\u00e9".encode("latin-1")  # as a browser may send it, raw
        assert console.get("/api/v1/workflows", headers={"cookie": cookie}).status_code == 401


def test_every_answer_forbids_inline_scripts_and_framing(open_console: TestClient) -> None:
    answer = open_console.get("/runs")
    policy = answer.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy
    assert "frame-ancestors 'none'" in policy
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["Server-Timing"].startswith("app;dur=")


def test_basic_auth_protects_the_api_and_the_pages() -> None:
    settings = WebSettings(basic_auth=SecretStr("ops:s3cret"))
    with TestClient(create_app(settings)) as console:
        refused = console.get("/runs")
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == 'Basic realm="resoto-tasks"'
        assert console.get("/runs", auth=("ops", "wrong")).status_code == 401
        assert console.get("/runs", auth=("ops", "s3cret")).status_code == 200
        assert console.get("/api/v1/workflows", auth=("ops", "s3cret")).status_code == 200


def _run(run_id: str, created: datetime, status: RunStatus, has_errors: bool = False) -> Run:
    step = StepRun(
        name="a",
        action="a",
        on_error=OnError.continue_,
        timeout_s=10,
        status=StepStatus.done,
        started_at=created,
        finished_at=created + timedelta(seconds=2),
    )
    return Run(
        id=run_id,
        workflow="wf",
        trigger=TriggerInfo(kind=TriggerKind.manual),
        status=status,
        created_at=created,
        started_at=created,
        finished_at=created + timedelta(seconds=4),
        steps=[step, step.model_copy(update={"name": "b", "started_at": None, "finished_at": None})],
        has_errors=has_errors,
    )


def test_run_pages_follow_the_time_index_with_a_cursor_through_ties_and_filters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = unique("idx")
    base = datetime(2026, 1, 1, tzinfo=UTC)
    pipe = client().pipeline()
    made: list[tuple[int, str]] = []
    for i in range(30):
        created = base + timedelta(seconds=i // 3)  # three runs per instant: ties in the index
        run = _run(f"r{i:02d}", created, RunStatus.failed if i % 10 == 0 else RunStatus.succeeded, i % 2 == 0)
        run = run.model_copy(update={"workflow": name})
        at = int(created.timestamp() * 1000)
        pipe.set(keys.run(run.id), run.model_dump_json(), ex=600)
        pipe.zadd(keys.runs_of_workflow(name), {run.id: at})
        made.append((at, run.id))
    pipe.execute()
    newest_first = [i for _, i in sorted(made, reverse=True)]
    seen: list[str] = []
    cursor = None
    while True:
        page = runs.page_runs(runs.RunQuery(workflow=name, limit=4, cursor=cursor))
        seen.extend(r.id for r in page.runs)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == newest_first
    failed = runs.page_runs(runs.RunQuery(workflow=name, status=RunStatus.failed, limit=10)).runs
    assert [r.id for r in failed] == ["r20", "r10", "r00"]
    errors = runs.page_runs(runs.RunQuery(workflow=name, errors_only=True, limit=100)).runs
    assert [r.id for r in errors] == [i for i in newest_first if int(i[1:]) % 2 == 0]
    window = runs.RunQuery(workflow=name, since_ms=made[3][0], until_ms=made[5][0], limit=100)
    assert [r.id for r in runs.page_runs(window).runs] == ["r05", "r04", "r03"]
    monkeypatch.setattr(runs, "MAX_SCANNED", 7)
    bounded = runs.page_runs(runs.RunQuery(workflow=name, status=RunStatus.failed, limit=10))
    assert [r.id for r in bounded.runs] == ["r20"]
    assert bounded.next_cursor is not None, "a page that stopped scanning says where to go on"
    with pytest.raises(ValueError, match="not a cursor"):
        runs.page_runs(runs.RunQuery(cursor="x"))


def test_a_listing_shows_no_run_twice_while_runs_start_and_goes_through_more_ties_than_a_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """120 runs of one millisecond (more ties than a batch of 51), a third of them with errors, and a
    run started after every batch the listing reads (seen in a beat test: with offsets, the oldest
    run was listed twice once a new one had pushed the others down)."""
    name = unique("idx")
    base = datetime(2026, 1, 1, tzinfo=UTC)
    at = int(base.timestamp() * 1000)
    pipe = client().pipeline()
    for i in range(120):
        run = _run(f"t{i:03d}", base, RunStatus.succeeded, i % 3 == 0).model_copy(update={"workflow": name})
        pipe.set(keys.run(run.id), run.model_dump_json(), ex=600)
        pipe.zadd(keys.runs_of_workflow(name), {run.id: at})
    pipe.execute()
    real = client  # what runs.client is
    started: list[str] = []

    class Starting:
        """The store's client, except that a run starts after each read of the index."""

        def __init__(self, r: Any) -> None:
            self.r = r

        def zrevrangebyscore(self, *args: Any, **kwargs: Any) -> Any:
            found = self.r.zrevrangebyscore(*args, **kwargs)
            newer = _run(f"u{len(started):03d}", base + timedelta(seconds=10 + len(started)), RunStatus.running)
            started.append(newer.id)
            self.r.set(keys.run(newer.id), newer.model_copy(update={"workflow": name}).model_dump_json(), ex=600)
            self.r.zadd(keys.runs_of_workflow(name), {newer.id: int(newer.created_at.timestamp() * 1000)})
            return found

        def __getattr__(self, attr: str) -> Any:
            return getattr(self.r, attr)

    monkeypatch.setattr(runs, "client", lambda: Starting(real()))
    listed = [r.id for r in runs.page_runs(runs.RunQuery(workflow=name, errors_only=True, limit=50)).runs]
    assert len(started) > 2, "the listing read the index in several batches"
    assert listed == [f"t{i:03d}" for i in range(119, -1, -1) if i % 3 == 0]


def test_the_timeline_has_one_bar_per_step_on_the_run_axis() -> None:
    created = datetime(2026, 1, 1, tzinfo=UTC)
    found = timeline(_run("t", created, RunStatus.succeeded), created + timedelta(hours=1))
    first, second = found.steps
    assert (first.bar.left_pct, first.bar.width_pct, first.bar.duration_s) == (0.0, 50.0, 2.0)
    assert (second.bar.left_pct, second.bar.width_pct, second.bar.duration_s) == (100.0, 0.0, None)
    assert found.span_s == 4.0


def test_the_extra_is_named_when_it_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "fastapi" else real(name, *a))
    done = CliRunner().invoke(cli, ["web"])
    assert done.exit_code == 1
    assert "pip install 'resoto-tasks[web]'" in done.output
    assert server.Refused.__doc__
