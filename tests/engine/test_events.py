"""Event triggers: emitted events and finished actions start the workflows they match."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from resoto_tasks import runs, runtime
from resoto_tasks.models import RunStatus, StartStatus, TriggerKind
from tests.support.cli import resoto
from tests.support.flow import add_workflow, sub, subscribed, unique, wait_finished, wait_until

pytestmark = pytest.mark.usefixtures("session_worker")


def test_an_event_with_matching_data_starts_the_workflow_and_others_do_not() -> None:
    name = unique("evt")
    event = unique("deploy_done")
    add_workflow(name, [{"name": f"{name}_a"}], triggers=[{"event": event, "filter": {"env": "prod"}}])
    proc = resoto("events", "emit", event, "--data", json.dumps({"env": "dev"}), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []
    proc = resoto("events", "emit", event, "--data", json.dumps({"env": "prod", "by": "ci"}), "--json")
    assert proc.returncode == 0, proc.stderr
    started = json.loads(proc.stdout)
    assert [s["workflow"] for s in started] == [name]
    run = wait_finished(started[0]["run_id"], 20)
    assert run.trigger.kind == TriggerKind.event
    assert run.trigger.details["data"] == {"env": "prod", "by": "ci"}
    assert run.status == RunStatus.succeeded


def test_bad_event_data_is_a_usage_error() -> None:
    proc = resoto("events", "emit", "x", "--data", "{not json")
    assert proc.returncode == 2
    assert "--data is not valid JSON" in proc.stderr


def test_a_finished_action_is_an_event_that_can_start_another_workflow() -> None:
    first, second = unique("first"), unique("second")
    add_workflow(first, [{"name": f"{first}_a"}])
    add_workflow(second, [{"name": f"{second}_a"}], triggers=[{"event": f"post_{first}_a"}])
    with subscribed(sub(f"{first}_a")):
        run = wait_finished(runtime.engine().start(first).run_id or "", 20)
    assert run.status == RunStatus.succeeded
    wait_until(lambda: bool(runs.list_runs(second, 5)), what="second workflow started")
    follower = runs.list_runs(second, 5)[0]
    assert follower.trigger.details["event"] == f"post_{first}_a"
    assert follower.trigger.details["data"]["run_id"] == run.id


def test_the_builtin_start_events_start_the_builtin_workflows() -> None:
    results = runtime.engine().emit("start_metrics_workflow", {})
    assert [r.workflow for r in results] == ["metrics"]
    assert results[0].status in (StartStatus.started, StartStatus.queued)
    assert results[0].run_id
    wait_finished(results[0].run_id, 30)


def test_a_workflow_added_with_json_starts_on_its_event_and_the_emit_line_names_the_run(tmp_path: Path) -> None:
    name = unique("evtcli")
    event = unique("ping")
    path = tmp_path / "wf.yaml"
    path.write_text(f"name: {name}\nsteps: [{{name: {name}_a}}]\ntriggers: [{{event: {event}}}]\n")
    proc = resoto("workflows", "add", str(path), "--json")
    assert proc.returncode == 0, proc.stderr
    added = json.loads(proc.stdout)
    assert (added["name"], added["triggers"]) == (name, [{"event": event, "filter": {}}])
    try:
        proc = resoto("events", "emit", event)
        assert proc.returncode == 0, proc.stderr
        assert re.fullmatch(rf"{name}: started \S+", proc.stdout.strip()), proc.stdout
        assert wait_finished(proc.stdout.split()[-1], 20).status == RunStatus.succeeded
    finally:
        assert resoto("workflows", "remove", name).returncode == 0
