"""Bad input: malformed workflow and metric definition files, and hostile resource tags.

Every file of ``corpus/`` starts with one ``# expect: FIELD | PROBLEM`` line per problem it must be
rejected for; the commands must print exactly those lines (``error: FILE: FIELD: ...PROBLEM...``),
exit 2, and change nothing in Redis.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from resoto_tasks import keys
from tests.faults.support import FaultStack, database
from tests.support.cli import resoto

pytestmark = pytest.mark.faults

CORPUS = Path(__file__).parent / "corpus"
WORKFLOW_FILES = sorted((CORPUS / "workflows").glob("*.yaml"))
METRIC_FILES = sorted((CORPUS / "metrics").glob("*.yaml"))


def expectations(path: Path) -> list[tuple[str, str]]:
    """The ``# expect: FIELD | PROBLEM`` header lines of a corpus file."""
    found = []
    for line in path.read_bytes().decode("latin-1").splitlines():
        if not line.startswith("# expect: "):
            break
        field, _, problem = line.removeprefix("# expect: ").partition(" | ")
        found.append((field, problem))
    assert found, f"{path.name} has no '# expect:' header"
    return found


def check_problem_lines(path: Path, lines: list[str]) -> None:
    """``lines`` are exactly the expected problems of ``path``, in order, each naming file and field."""
    expected = expectations(path)
    assert len(lines) == len(expected), (path.name, lines)
    for line, (field, problem) in zip(lines, expected, strict=True):
        assert line.startswith(f"error: {path}: {field}: "), (path.name, line)
        assert problem in line, (path.name, line)


def run_all(stack: FaultStack, commands: list[tuple[str, ...]]) -> list[Any]:
    """The real ``resoto-tasks`` executable, four at a time (the whole corpus runs in process)."""
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda args: stack.cli(*args, process=True), commands))


# A sample of the corpus that also goes through the real command: one per kind of failure path.
REAL_WORKFLOW_SAMPLE = (
    "three_problems_at_once",
    "not_yaml_unclosed_bracket",
    "not_utf8",
    "python_object_tag",
    "alias_bomb_in_an_unknown_key",
)
REAL_METRICS_SAMPLE = ("four_problems_at_once", "not_yaml", "unknown_definition_key", "scale_nan")


def test_the_corpus_is_big_enough() -> None:
    assert len(WORKFLOW_FILES) >= 30
    assert len(METRIC_FILES) >= 10


def test_workflows_validate_rejects_every_malformed_file_with_one_line_per_problem(fault_stack: FaultStack) -> None:
    paths = [str(p) for p in WORKFLOW_FILES]
    as_json = fault_stack.cli("workflows", "validate", "--json", *paths)
    assert as_json.returncode == 2, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["valid"] == []
    assert {p["path"] for p in report["problems"]} == set(paths)
    human = fault_stack.cli("workflows", "validate", *paths)
    assert human.returncode == 2
    assert human.stdout == ""
    lines = human.stderr.splitlines()
    assert len(lines) == sum(len(expectations(p)) for p in WORKFLOW_FILES)
    for path in WORKFLOW_FILES:
        check_problem_lines(path, [line for line in lines if line.startswith(f"error: {path}: ")])


def test_workflows_add_rejects_every_malformed_file_and_changes_nothing(
    fault_stack: FaultStack, r: redis.Redis
) -> None:
    builtin_named = CORPUS / "workflows" / "name_of_a_builtin_for_validate.yaml"
    files = [p for p in WORKFLOW_FILES if p != builtin_named]
    stored = [keys.workflows(), keys.workflows_version()]
    before = database(r, stored)
    for path in files:
        done = resoto("workflows", "add", str(path))
        assert done.returncode == 2, (path.name, done.stdout, done.stderr)
        assert done.stdout == "", path.name
        check_problem_lines(path, done.stderr.splitlines())
    assert database(r, stored) == before

    stack = fault_stack
    stack.add_workflow("already_there", [{"name": "tick"}])
    before = database(stack.r)
    sample = [p for p in files if p.stem in REAL_WORKFLOW_SAMPLE]
    assert len(sample) == len(REAL_WORKFLOW_SAMPLE)
    for path, proc in zip(sample, run_all(stack, [("workflows", "add", str(p)) for p in sample]), strict=True):
        assert proc.returncode == 2, (path.name, proc.stderr)
        assert proc.stdout == "", path.name
        check_problem_lines(path, proc.stderr.splitlines())
    assert database(stack.r) == before


def test_workflows_add_of_a_file_named_like_a_builtin_names_the_file_and_the_field(fault_stack: FaultStack) -> None:
    path = CORPUS / "workflows" / "name_of_a_builtin_for_validate.yaml"
    before = database(fault_stack.r)
    proc = fault_stack.cli("workflows", "add", str(path))
    assert proc.returncode == 2
    assert database(fault_stack.r) == before
    assert proc.stderr.startswith(f"error: {path}: name: "), proc.stderr


def test_metrics_validate_rejects_every_malformed_definitions_file_and_touches_no_redis(
    fault_stack: FaultStack,
) -> None:
    for path in METRIC_FILES:
        done = resoto("metrics", "validate", str(path))
        assert done.returncode == 2, (path.name, done.stdout, done.stderr)
        assert done.stdout == "", path.name
        check_problem_lines(path, done.stderr.splitlines())
    stack = fault_stack
    stack.add_workflow("already_there", [{"name": "tick"}])
    before = database(stack.r)
    sample = [p for p in METRIC_FILES if p.stem in REAL_METRICS_SAMPLE]
    assert len(sample) == len(REAL_METRICS_SAMPLE)
    for path, proc in zip(sample, run_all(stack, [("metrics", "validate", str(p)) for p in sample]), strict=True):
        assert proc.returncode == 2, (path.name, proc.stdout, proc.stderr)
        assert proc.stdout == "", path.name
        check_problem_lines(path, proc.stderr.splitlines())
    assert database(stack.r) == before


def test_a_good_file_passes_the_same_commands(fault_stack: FaultStack, tmp_path: Path) -> None:
    """The control: the checks above reject the corpus, not everything."""
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({"name": "good_one", "steps": [{"name": "tick", "timeout": "30s"}]}))
    metrics = tmp_path / "metrics.yaml"
    metrics.write_text(yaml.safe_dump({"metrics": [{"name": "volumes", "help": "Volumes", "kinds": ["volume"]}]}))
    done = run_all(
        fault_stack,
        [("workflows", "validate", str(good)), ("workflows", "add", str(good)), ("metrics", "validate", str(metrics))],
    )
    assert [p.returncode for p in done] == [0, 0, 0], [p.stderr for p in done]
