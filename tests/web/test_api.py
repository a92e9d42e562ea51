"""The HTTP API against a real ``resoto-tasks web`` (uvicorn, with a token), the session's real
``celery worker`` and the private redis-server."""

from __future__ import annotations

import json

import httpx
import pytest
import yaml

from resoto_tasks import keys, views
from resoto_tasks.redis_conn import client
from tests.support.cli import resoto
from tests.support.flow import add_workflow, sub, subscribed, unique, wait_finished
from tests.support.web import WebServer
from tests.web.conftest import TOKEN

pytestmark = pytest.mark.xdist_group("web")  # one server and one browser (see conftest)


def test_requests_without_the_token_get_401_and_json_naming_what_is_missing(web: WebServer) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic dXNlcjpwYXNz"}):
        answer = httpx.get(f"{web.url}/api/v1/runs", headers=headers)
        assert answer.status_code == 401
        assert answer.json() == {"error": "authentication required: send the token"}
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert httpx.post(f"{web.url}/api/v1/runs", json={"workflow": "metrics"}).status_code == 401
    assert httpx.get(f"{web.url}/health").status_code == 200  # for probes


def test_the_openapi_description_lists_every_call_of_the_api(api: httpx.Client) -> None:
    paths = api.get("/api/v1/openapi.json").json()["paths"]
    expected = {
        "/api/v1/workflows": {"get", "post"},
        "/api/v1/workflows/{name}": {"get", "delete"},
        "/api/v1/runs": {"get", "post"},
        "/api/v1/runs/{run_id}": {"get"},
        "/api/v1/runs/{run_id}/cancel": {"post"},
        "/api/v1/runs/{run_id}/ledger": {"get"},
        "/api/v1/schedules": {"get"},
        "/api/v1/schedules/{workflow}/pause": {"post"},
        "/api/v1/schedules/{workflow}/resume": {"post"},
        "/api/v1/subscribers": {"get"},
        "/api/v1/events": {"post"},
        "/api/v1/resources/count": {"get"},
    }
    assert {path: set(ops) for path, ops in paths.items()} == expected
    assert not any(p.startswith("/runs") for p in paths), "pages are not part of the API description"


def test_a_run_started_over_http_is_201_and_its_document_is_the_one_runs_show_json_prints(api: httpx.Client) -> None:
    name = unique("apirun")
    add_workflow(name, [{"name": f"{name}_a"}, {"name": f"{name}_b"}])
    with subscribed(sub(f"{name}_a", sleep=0.1), sub(f"{name}_b", raising="disk <full>")):
        started = api.post("/api/v1/runs", json={"workflow": name})
        assert started.status_code == 201, started.text
        run_id = started.json()["run_id"]
        assert started.json()["status"] == "started"
        assert started.headers["Location"] == f"/api/v1/runs/{run_id}"
        wait_finished(run_id)
    document = api.get(f"/api/v1/runs/{run_id}").json()
    assert (document["status"], document["has_errors"]) == ("succeeded", True)
    assert [s["name"] for s in document["steps"]] == [f"{p}{name}_{x}" for x in "ab" for p in ("pre_", "", "post_")]
    answer = document["steps"][4]["outcomes"]
    assert [o["error"] for o in answer.values()] == ["RuntimeError: disk <full>"]
    assert "ledger" in document
    cli = resoto("runs", "show", run_id, "--json")
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout) == document


def test_listings_are_the_cli_json_documents(api: httpx.Client) -> None:
    """One CLI process (each costs seconds on a loaded machine); the views behind the others are
    the same functions, compared in process."""
    cli = resoto("workflows", "list", "--json")
    assert cli.returncode == 0, cli.stderr
    assert api.get("/api/v1/workflows").json() == json.loads(cli.stdout)
    shown = api.get("/api/v1/workflows/collect_and_cleanup").json()
    assert shown == next(w for w in json.loads(cli.stdout) if w["name"] == "collect_and_cleanup")
    assert api.get("/api/v1/resources/count").json() == views.resource_counts().model_dump(mode="json")
    assert api.get("/api/v1/schedules").json() == [row.model_dump(mode="json") for row in views.schedules()]


def test_runs_are_listed_newest_first_by_filter_and_page_by_page_with_a_cursor(api: httpx.Client) -> None:
    name = unique("apipage")
    add_workflow(name, [{"name": f"{name}_a"}], on_surpass="parallel")
    with subscribed(sub(f"{name}_a", raising="boom")):
        ids = [api.post("/api/v1/runs", json={"workflow": name}).json()["run_id"] for _ in range(3)]
        for run_id in ids:
            wait_finished(run_id)
    first = api.get("/api/v1/runs", params={"workflow": name, "limit": 2})
    assert first.status_code == 200
    cursor = first.headers["X-Next-Cursor"]
    assert 'rel="next"' in first.headers["Link"]
    second = api.get("/api/v1/runs", params={"workflow": name, "limit": 2, "cursor": cursor})
    listed = [r["id"] for r in first.json() + second.json()]
    assert listed == ids[::-1]  # started one after the other: newest first
    assert "X-Next-Cursor" not in second.headers
    assert [r["id"] for r in api.get("/api/v1/runs", params={"workflow": name, "has_errors": True}).json()] == listed
    assert api.get("/api/v1/runs", params={"workflow": name, "status": "failed"}).json() == []
    assert len(api.get("/api/v1/runs", params={"workflow": name, "status": "succeeded"}).json()) == 3
    assert api.get("/api/v1/runs", params={"workflow": name, "until": "2000-01-01T00:00:00Z"}).json() == []
    bad = api.get("/api/v1/runs", params={"cursor": "nonsense"})
    assert bad.status_code == 422
    assert bad.json()["error"] == "not a cursor: 'nonsense'"
    assert api.get("/api/v1/runs", params={"status": "sleeping"}).status_code == 422


def test_the_overlap_policy_starting_nothing_is_409_and_a_run_is_cancelled_once(api: httpx.Client) -> None:
    name = unique("apiskip")
    add_workflow(name, [{"name": f"{name}_a", "timeout": 60}], on_surpass="skip")
    with subscribed(sub(f"{name}_a", queue=unique("nowhere"), timeout_s=60)):  # nobody answers: it runs on
        first = api.post("/api/v1/runs", json={"workflow": name}).json()["run_id"]
        refused = api.post("/api/v1/runs", json={"workflow": name})
        assert refused.status_code == 409
        assert refused.json()["error"].startswith("not started:")
        assert refused.json()["start"]["blocking_run_id"] == first
        cancelled = api.post(f"/api/v1/runs/{first}/cancel")
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "cancelled"
        again = api.post(f"/api/v1/runs/{first}/cancel")
        assert (again.status_code, again.json()) == (409, {"error": f"run {first} has already ended"})


def test_unknown_names_are_404_and_bad_requests_422(api: httpx.Client) -> None:
    assert api.get("/api/v1/runs/nope").json() == {"error": "unknown run 'nope'"}
    assert api.get("/api/v1/runs/nope").status_code == 404
    assert api.post("/api/v1/runs/nope/cancel").status_code == 404
    assert api.get("/api/v1/workflows/nope").status_code == 404
    assert api.post("/api/v1/runs", json={"workflow": "nope"}).status_code == 404
    missing = api.post("/api/v1/runs", json={})
    assert missing.status_code == 422
    assert missing.json()["error"] == "workflow: Field required"
    assert api.post("/api/v1/schedules/metrics/pause", json={"note": "x"}).status_code == 422  # no time trigger


def test_workflows_are_added_from_yaml_or_json_checked_and_removed(api: httpx.Client) -> None:
    name = unique("apiwf")
    doc = {"name": name, "steps": [{"name": "backup", "timeout": "5m"}], "triggers": [{"cron": "0 3 * * *"}]}
    added = api.post("/api/v1/workflows", content=yaml.safe_dump(doc), headers={"Content-Type": "application/yaml"})
    assert added.status_code == 201, added.text
    assert added.json()["name"] == name
    assert [s["name"] for s in api.get(f"/api/v1/workflows/{name}").json()["steps"]] == [
        "pre_backup",
        "backup",
        "post_backup",
    ]
    as_json = api.post("/api/v1/workflows", json={**doc, "on_surpass": "skip"})
    assert as_json.status_code == 201
    assert api.get(f"/api/v1/workflows/{name}").json()["on_surpass"] == "skip"
    bad = api.post("/api/v1/workflows", json={"name": name, "steps": [{"name": "x", "timeout": "soon"}], "oops": 1})
    assert bad.status_code == 422
    problems = {(p["field"], p["path"]) for p in bad.json()["problems"]}
    assert ("oops", "request") in problems
    assert ("steps[0:x].timeout", "request") in problems  # as `workflows validate` names it
    assert (
        api.post("/api/v1/workflows", content="name: [", headers={"Content-Type": "application/yaml"})
        .json()["error"]
        .startswith("request: line")
    )
    assert api.delete(f"/api/v1/workflows/{name}").status_code == 204
    assert api.get(f"/api/v1/workflows/{name}").status_code == 404
    assert api.delete(f"/api/v1/workflows/{name}").status_code == 404
    assert api.delete("/api/v1/workflows/collect_and_cleanup").status_code == 409


def test_schedules_pause_with_a_note_and_resume(api: httpx.Client) -> None:
    name = add_workflow(unique("apisched"), [{"name": "nightly"}], triggers=[{"cron": "0 3 * * *"}])
    paused = api.post(f"/api/v1/schedules/{name}/pause", json={"note": "maintenance <window>"})
    assert paused.status_code == 200
    assert [(r["paused"], r["paused_note"]) for r in paused.json()] == [(True, "maintenance <window>")]
    assert client().hexists(keys.schedule_paused(), name)
    listed = {r["workflow"]: r for r in api.get("/api/v1/schedules").json()}
    assert listed[name]["paused"] is True
    resumed = api.post(f"/api/v1/schedules/{name}/resume")
    assert [r["paused"] for r in resumed.json()] == [False]
    assert not client().hexists(keys.schedule_paused(), name)


def test_subscribers_events_and_resources(api: httpx.Client) -> None:
    action = unique("apisub")
    name = add_workflow(unique("apievt"), [{"name": action}], triggers=[{"event": f"{action}_go"}])
    with subscribed(sub(action)) as holder:
        found = [s for s in api.get("/api/v1/subscribers").json() if s["action"] == action]
        assert [(s["holders"], [w["hostname"] for w in s["workers"]]) for s in found] == [([holder], [holder])]
        emitted = api.post("/api/v1/events", json={"name": f"{action}_go", "data": {"env": "prod"}})
        assert emitted.status_code == 200
        (result,) = emitted.json()
        assert (result["workflow"], result["status"]) == (name, "started")
        wait_finished(result["run_id"])
    workers = {w["hostname"]: w for s in api.get("/api/v1/subscribers").json() for w in s["workers"]}
    ages = [w["heartbeat_age_s"] for name, w in workers.items() if name.endswith("@test")]
    assert ages
    assert all(age is not None and 0 <= age <= 6 for age in ages)  # RESOTO_SUBSCRIBER_TTL_S in the tests
    counts = api.get("/api/v1/resources/count").json()
    assert set(counts) == {"total", "by_kind", "by_account", "expired", "marked", "protected", "malformed"}


def test_a_change_from_another_site_is_refused_even_with_the_login_cookie(web: WebServer) -> None:
    with httpx.Client(base_url=web.url) as browser_like:
        form = {"token": TOKEN, "next": "/runs"}
        assert browser_like.post("/login", data=form, headers={"Origin": web.url}).status_code == 403  # no CSRF token
        assert browser_like.get("/login").status_code == 200
        csrf = browser_like.cookies["resoto_csrf"]
        login = browser_like.post("/login", data={**form, "csrf_token": csrf}, headers={"Origin": web.url})
        assert login.status_code == 303
        assert browser_like.get("/runs").status_code == 200
        run = {"workflow": "nope"}
        evil = browser_like.post("/api/v1/runs", json=run, headers={"Origin": "https://evil.example"})
        assert evil.status_code == 403
        assert browser_like.post("/api/v1/runs", json=run, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
        no_token = browser_like.post("/api/v1/runs", json=run, headers={"Origin": web.url})
        assert (no_token.status_code, no_token.json()["error"]) == (
            403,
            "missing or wrong CSRF token: reload the page and try again",
        )
        with_token = browser_like.post("/api/v1/runs", json=run, headers={"Origin": web.url, "X-CSRF-Token": csrf})
        assert with_token.status_code == 404  # through the guard: the workflow is unknown
