"""Workflow files: valid ones load; each kind of mistake is one clear line naming file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from resoto_tasks.workflows import builtin_workflows, validate_files
from tests.support.cli import resoto

GOOD = """
name: nightly
on_surpass: skip
triggers:
  - cron: "0 3 * * *"
  - interval: 30m
  - event: post_collect
    filter: {account: prod}
steps:
  - name: backup
    timeout: 10m
    on_error: stop
  - name: report
    action: send_report
"""

BAD: dict[str, tuple[str, str, str]] = {
    # case: (yaml, expected field, expected words in the problem)
    "not_yaml": ("name: [unclosed", "line", "not valid YAML"),
    "empty": ("", "(document)", "must be a mapping"),
    "a_list": ("- name: x", "(document)", "must be a mapping"),
    "missing_name": ("steps: [{name: a}]", "name", "required"),
    "missing_steps": ("name: x", "steps", "required"),
    "no_steps": ("name: x\nsteps: []", "steps", "at least 1"),
    "unknown_key": ("name: x\nstep: []\nsteps: [{name: a}]", "step", "unknown key"),
    "unknown_step_key": ("name: x\nsteps: [{name: a, timout: 5}]", "steps[0:a].timout", "unknown key"),
    "bad_on_error": ("name: x\nsteps: [{name: a, on_error: retry}]", "steps[0:a].on_error", "'continue' or 'stop'"),
    "bad_on_surpass": ("name: x\non_surpass: later\nsteps: [{name: a}]", "on_surpass", "'skip'"),
    "bad_cron": ("name: x\nsteps: [{name: a}]\ntriggers: [{cron: '61 * * * *'}]", "triggers[0].cron", "not valid"),
    "short_cron": ("name: x\nsteps: [{name: a}]\ntriggers: [{cron: '* *'}]", "triggers[0].cron", "5 fields"),
    "bad_interval": (
        "name: x\nsteps: [{name: a}]\ntriggers: [{interval: soon}]",
        "triggers[0].interval",
        "not an interval",
    ),
    "zero_interval": ("name: x\nsteps: [{name: a}]\ntriggers: [{interval: 0s}]", "triggers[0].interval", "positive"),
    "two_kinds": (
        "name: x\nsteps: [{name: a}]\ntriggers: [{cron: '* * * * *', event: e}]",
        "triggers[0]",
        "exactly one",
    ),
    "bad_timeout": ("name: x\nsteps: [{name: a, timeout: -5}]", "steps[0:a].timeout", "positive"),
    "bad_name": ("name: 'has space'\nsteps: [{name: a}]", "name", "pattern"),
    "duplicate_step": ("name: x\nsteps: [{name: a}, {name: a}]", "(document)", "used twice"),
    "builtin_name": ("name: collect\nsteps: [{name: a}]", "name", "already defined (built-in)"),
}


def test_a_good_file_loads_with_expanded_steps_and_all_trigger_kinds(tmp_path: Path) -> None:
    path = tmp_path / "nightly.yaml"
    path.write_text(GOOD)
    found, problems = validate_files([path])
    assert problems == []
    wf = found[0].build()
    assert [s.name for s in wf.steps] == ["pre_backup", "backup", "post_backup", "pre_report", "report", "post_report"]
    assert [s.action for s in wf.steps][3:] == ["pre_send_report", "send_report", "post_send_report"]
    assert wf.steps[0].timeout_s == 600 and wf.steps[0].on_error.value == "stop"


@pytest.mark.parametrize("case", sorted(BAD))
def test_each_kind_of_mistake_names_the_file_the_field_and_the_problem(tmp_path: Path, case: str) -> None:
    text, field, words = BAD[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    found, problems = validate_files([path])
    assert found == []
    assert problems, case
    first = problems[0]
    assert first.path == str(path)
    assert first.field.startswith(field), (first.field, field)
    assert words in first.problem, first.problem


def test_duplicate_names_across_files_are_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: same\nsteps: [{name: a}]")
    (tmp_path / "b.yaml").write_text("name: same\nsteps: [{name: b}]")
    found, problems = validate_files(sorted(tmp_path.iterdir()))
    assert [f.name for f in found] == ["same"]
    assert len(problems) == 1 and "already defined" in problems[0].problem
    assert problems[0].path.endswith("b.yaml")


def test_the_cli_prints_one_line_per_problem_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nsteps: [{name: a, timout: 5, on_error: retry}]\ntriggers: [{cron: nope}]")
    proc = resoto("workflows", "validate", str(path))
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 3, proc.stderr
    assert all(str(path) in line for line in lines)


def test_the_builtin_workflows_are_resotos_compositions() -> None:
    flows = builtin_workflows()
    assert [s.action for s in flows["collect"].steps] == [
        "pre_collect",
        "collect",
        "post_collect",
        "pre_generate_metrics",
        "generate_metrics",
        "post_generate_metrics",
    ]
    assert len(flows["collect_and_cleanup"].steps) == 12
    assert len(flows["cleanup"].steps) == 9 and len(flows["metrics"].steps) == 3
    for name, wf in flows.items():
        assert wf.on_surpass.value == "wait"
        assert all(s.on_error.value == "continue" for s in wf.steps)
        assert any(getattr(t, "event", None) == f"start_{name}_workflow" for t in wf.triggers)
    assert any(getattr(t, "cron", None) == "0 * * * *" for t in flows["collect_and_cleanup"].triggers)


def test_workflows_show_json_has_the_documented_shape() -> None:
    import json

    proc = resoto("workflows", "show", "collect_and_cleanup", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert {"name", "on_surpass", "triggers", "steps"} <= set(doc)
    assert [set(s) for s in doc["steps"]] == [{"name", "action", "timeout_s", "on_error"}] * 12


def test_an_unknown_workflow_lists_the_known_ones() -> None:
    proc = resoto("workflows", "show", "nope")
    assert proc.returncode == 2
    assert "unknown workflow 'nope'" in proc.stderr and "collect_and_cleanup" in proc.stderr
