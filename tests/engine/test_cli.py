"""The real ``resoto-tasks`` command: exit codes and JSON a script can read."""

from __future__ import annotations

import itertools
import json

import pytest

from resoto_tasks import runs, runtime
from tests.support.cli import resoto, resoto_process
from tests.support.flow import add_workflow, sub, subscribed, unique

pytestmark = pytest.mark.usefixtures("session_worker")


def test_run_wait_json_exits_0_with_the_twelve_actions_in_order() -> None:
    """The installed executable, as users call it."""
    proc = resoto_process("run", "collect_and_cleanup", "--wait", "--json", timeout_s=120)
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["status"] == "succeeded"
    steps = record["steps"]
    assert [s["action"] for s in steps][:3] == ["pre_collect", "collect", "post_collect"]
    assert len(steps) == 12
    for before, after in itertools.pairwise(steps):
        assert after["started_at"] >= before["finished_at"]


def test_run_wait_exits_1_when_the_run_fails() -> None:
    name = unique("clifail")
    add_workflow(name, [{"name": f"{name}_a", "on_error": "stop"}])
    with subscribed(sub(f"{name}_a", raising="nope")):
        proc = resoto("run", name, "--wait", "--json")
    assert proc.returncode == 1, proc.stderr
    document = json.loads(proc.stdout)
    assert (document["status"], document["cause"], document["has_errors"]) == ("failed", "stopped", True)


def test_a_run_that_tolerated_an_error_exits_0_with_a_warning_and_is_listed_with_errors() -> None:
    name = unique("cliwarn")
    add_workflow(name, [{"name": f"{name}_a"}])  # on_error: continue
    with subscribed(sub(f"{name}_a", raising="nope")):
        proc = resoto("run", name, "--wait", "--json")
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    assert (document["status"], document["has_errors"]) == ("succeeded", True)
    assert proc.stderr.splitlines() == [
        f"warning: run {document['id']} succeeded with errors (steps with errors: {name}_a)"
    ]
    listed = json.loads(resoto("runs", "list", "--workflow", name, "--has-errors", "--json").stdout)
    assert [r["id"] for r in listed] == [document["id"]]


def test_run_exits_3_when_the_overlap_policy_starts_nothing() -> None:
    name = unique("cliskip")
    add_workflow(name, [{"name": f"{name}_a", "timeout": 60}], on_surpass="skip")
    with subscribed(sub(f"{name}_a", queue=unique("nowhere"), timeout_s=60)):
        first = runtime.engine().start(name)
        proc = resoto("run", name, "--wait")
        runtime.engine().cancel(first.run_id or "")
    assert proc.returncode == 3
    assert "still running" in proc.stderr


def test_run_wait_timeout_exits_1() -> None:
    name = unique("clitimeout")
    add_workflow(name, [{"name": f"{name}_a", "timeout": 60}])
    with subscribed(sub(f"{name}_a", queue=unique("nowhere"), timeout_s=60)):
        proc = resoto("run", name, "--wait", "--timeout", "1")
        assert runs.list_runs(name, 1), proc.stderr
        run_id = runs.list_runs(name, 1)[0].id
        runtime.engine().cancel(run_id)
    assert proc.returncode == 1
    assert "did not end within 1 s" in proc.stderr


def test_runs_list_show_and_cancel() -> None:
    name = unique("clilist")
    add_workflow(name, [{"name": f"{name}_a", "timeout": 60}])
    with subscribed(sub(f"{name}_a", queue=unique("nowhere"), timeout_s=60)):
        run_id = runtime.engine().start(name).run_id or ""
        listed = json.loads(resoto("runs", "list", "--workflow", name, "--json").stdout)
        assert [r["id"] for r in listed] == [run_id]
        shown = resoto("runs", "show", run_id)
        assert shown.returncode == 0 and name in shown.stdout
        cancel = resoto("runs", "cancel", run_id)
        assert cancel.returncode == 0, cancel.stderr
        again = resoto("runs", "cancel", run_id)
        assert again.returncode == 1 and "already ended" in again.stderr
    errors = json.loads(resoto("runs", "list", "--workflow", name, "--has-errors", "--json").stdout)
    assert errors == []
    assert resoto("runs", "show", "no-such-run").returncode == 2
