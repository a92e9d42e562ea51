"""Metric definitions: the built-ins load, user files merge, and every bad definition says where and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.metrics.definitions import (
    Aggregate,
    Label,
    MetricsFileErrors,
    MetricsSettings,
    MetricType,
    builtin_definitions,
    load_definitions,
    load_file,
    parse_text,
)
from worker.metrics.names import RESERVED


def _problems(text: str) -> list[str]:
    with pytest.raises(MetricsFileErrors) as info:
        parse_text(text, "m.yaml")
    return [str(p) for p in info.value.problems]


def test_the_builtins_cover_resources_expiry_marks_protection_and_attribute_sums() -> None:
    found = {d.name: d for d in builtin_definitions()}
    assert found["resources"].group_by == (Label.provider, Label.account, Label.region, Label.kind)
    assert found["instance_cores"].aggregate == Aggregate.sum
    assert found["instance_cores"].attribute == "instance_cores"
    assert found["volume_size_bytes"].scale == 2**30
    assert found["hourly_cost_estimate"].attribute == "hourly_cost"
    for name, aggregate in [("expired_resources", "expired"), ("marked_resources", "marked"),
                            ("protected_resources", "protected")]:  # fmt: skip
        assert found[name].aggregate == aggregate
        assert found[name].group_by == (Label.provider, Label.account)
    assert all(d.exposed_name.startswith("resoto_") for d in found.values())
    assert not {d.exposed_name for d in found.values()} & RESERVED


def test_a_user_file_adds_definitions_and_replaces_a_builtin_of_the_same_name(tmp_path: Path) -> None:
    path = tmp_path / "metrics.yaml"
    path.write_text(
        """
metrics:
  - name: big_instances
    help: Instances of 8 cores or more.
    kinds: [instance]
    labels: [account]
  - name: instances
    help: Instances by account only.
    kinds: [instance]
    labels: [account]
  - name: collected_resources_total
    help: Resources seen, summed over every run.
    type: counter
"""
    )
    definitions, problems = load_definitions(MetricsSettings(file=path))
    assert problems == []
    names = [d.name for d in definitions]
    builtins = [d.name for d in builtin_definitions()]
    assert names == [*builtins, "big_instances", "collected_resources_total"]
    replaced = definitions[builtins.index("instances")]
    assert replaced.help == "Instances by account only."
    assert replaced.group_by == (Label.account,)
    assert definitions[-1].type == MetricType.counter


def test_a_broken_user_file_leaves_the_builtins_and_reports_its_problems(tmp_path: Path) -> None:
    path = tmp_path / "metrics.yaml"
    path.write_text("metrics:\n  - name: x\n")
    definitions, problems = load_definitions(MetricsSettings(file=path))
    assert [d.name for d in definitions] == [d.name for d in builtin_definitions()]
    assert [str(p) for p in problems] == [f"{path}: metrics[0:x].help: required but missing"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "  - {name: a, help: h, colour: red}",
            "m.yaml: metrics[0:a].colour: unknown key (allowed: name, help, type, "
            "aggregate, attribute, scale, labels, kinds)",
        ),
        ("  - {name: a, help: h, type: histogram}", "m.yaml: metrics[0:a].type: must be one of 'gauge' or 'counter'"),
        (
            "  - {name: a, help: h, aggregate: sum}",
            "m.yaml: metrics[0:a].attribute: required with aggregate: sum (the numeric attribute to add up)",
        ),
        (
            "  - {name: a, help: h, attribute: x}",
            "m.yaml: metrics[0:a].attribute: only used with aggregate: sum, not count",
        ),
        (
            "  - {name: a, help: h, labels: [account, zone]}",
            "m.yaml: metrics[0:a].labels[1]: must be one of 'provider', 'account', 'region' or 'kind'",
        ),
        ("  - {name: a, help: h, labels: [account, account]}", "m.yaml: metrics[0:a].labels: a label is listed twice"),
        (
            "  - {name: a, help: h, aggregate: expired, labels: [account, region]}",
            "m.yaml: metrics[0:a].labels: expired is counted per account: only provider and account, not ['region']",
        ),
        (
            "  - {name: a, help: h, aggregate: marked, kinds: [volume]}",
            "m.yaml: metrics[0:a].kinds: marked is counted per account, not per kind",
        ),
        (
            "  - {name: volume_size_gb, help: h}",
            "m.yaml: metrics[0:volume_size_gb].name: abbreviated unit 'gb': use "
            "base units (bytes, seconds) and 'scale' to convert",
        ),
        (
            "  - {name: age_hours, help: h}",
            "m.yaml: metrics[0:age_hours].name: use the base unit 'seconds' instead of 'hours' (with 'scale')",
        ),
        (
            "  - {name: disk_kilobytes, help: h}",
            "m.yaml: metrics[0:disk_kilobytes].name: use the base unit 'bytes' instead of 'kilobytes' (with 'scale')",
        ),
        (
            "  - {name: seen, help: h, type: counter}",
            "m.yaml: metrics[0:seen].name: a counter's name ends with '_total' (seen_total)",
        ),
        (
            "  - {name: seen_total, help: h}",
            "m.yaml: metrics[0:seen_total].name: only counters end with '_total' "
            "(use type: counter, or drop the suffix)",
        ),
        (
            "  - {name: resoto_x, help: h}",
            "m.yaml: metrics[0:resoto_x].name: drop the 'resoto_' prefix: it is added ('x')",
        ),
        (
            "  - {name: runs_total, help: h, type: counter}",
            "m.yaml: metrics[0:runs_total].name: 'resoto_runs_total' is one of resoto-tasks' own metrics",
        ),
        (
            "  - {name: subscribers, help: h}",
            "m.yaml: metrics[0:subscribers].name: 'resoto_subscribers' is one of resoto-tasks' own metrics",
        ),
        (
            "  - {name: Bad-Name, help: h}",
            "m.yaml: metrics[0:Bad-Name].name: lowercase letters, digits and single "
            "underscores, starting with a letter (e.g. volume_bytes)",
        ),
        ("  - {name: a, help: h, scale: 0}", "m.yaml: metrics[0:a].scale: must be a positive finite number"),
        (
            "  - {name: a, help: h, kinds: ['a|b']}",
            "m.yaml: metrics[0:a].kinds[0]: String should match pattern '^[\\w.:@\\-]{1,100}$'",
        ),
        (
            "  - {name: a, help: h}\n  - {name: a, help: again}",
            "m.yaml: metrics[1:a].name: defined twice (first at metrics[0])",
        ),
    ],
)
def test_a_bad_definition_is_one_line_naming_file_field_and_problem(body: str, expected: str) -> None:
    assert _problems(f"metrics:\n{body}\n") == [expected]


def test_every_problem_of_a_file_is_reported_not_only_the_first() -> None:
    found = _problems("metrics:\n  - {name: a}\n  - {name: size_gb, help: h, type: nope}\nextra: 1\n")
    assert found == [
        "m.yaml: metrics[0:a].help: required but missing",
        "m.yaml: metrics[1:size_gb].name: abbreviated unit 'gb': use base units (bytes, seconds) and 'scale' to "
        "convert",
        "m.yaml: metrics[1:size_gb].type: must be one of 'gauge' or 'counter'",
        "m.yaml: extra: unknown key (allowed: metrics)",
    ]


def test_a_file_that_is_not_yaml_or_not_a_mapping_says_so(tmp_path: Path) -> None:
    assert _problems("metrics: [a, b") == ["m.yaml: line 1, column 15: not valid YAML: expected ',' or ']', "
                                           "but got '<stream end>'"]  # fmt: skip
    assert _problems("- a\n") == ["m.yaml: (document): must be a mapping with the key 'metrics', got a list"]
    missing = tmp_path / "nope.yaml"
    with pytest.raises(MetricsFileErrors) as info:
        load_file(missing)
    assert str(info.value).startswith(f"{missing}: (file): cannot be read:")


def test_an_empty_file_defines_nothing() -> None:
    assert parse_text("", "m.yaml") == []
    assert parse_text("metrics: []", "m.yaml") == []
