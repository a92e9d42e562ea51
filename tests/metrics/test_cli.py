"""``resoto-tasks metrics validate FILE``: the real command, its lines and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import resoto


def test_validate_lists_the_valid_definitions_and_exits_0(tmp_path: Path) -> None:
    path = tmp_path / "metrics.yaml"
    path.write_text(
        "metrics:\n"
        "  - {name: instances, help: Mine, kinds: [instance], labels: [account]}\n"
        "  - {name: disk_bytes, help: Disks, aggregate: sum, attribute: volume_size_gb, scale: 1073741824}\n"
    )
    done = resoto("metrics", "validate", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "ok resoto_instances gauge: count by account  (replaces the built-in)",
        "ok resoto_disk_bytes gauge: sum of volume_size_gb by provider, account, region, kind",
        f"{path}: 2 definition(s) valid",
    ]
    listed = json.loads(resoto("metrics", "validate", str(path), "--json").stdout)
    assert [(d["served_as"], d["replaces_builtin"]) for d in listed] == [
        ("resoto_instances", True),
        ("resoto_disk_bytes", False),
    ]


def test_validate_prints_one_line_per_problem_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "metrics.yaml"
    path.write_text("metrics:\n  - {name: size_gb, help: h, labels: [zone]}\n  - {name: ok_one}\n")
    done = resoto("metrics", "validate", str(path))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"error: {path}: metrics[0:size_gb].name: abbreviated unit 'gb': use base units (bytes, seconds) and "
        "'scale' to convert",
        f"error: {path}: metrics[0:size_gb].labels[0]: must be one of 'provider', 'account', 'region' or 'kind'",
        f"error: {path}: metrics[1:ok_one].help: required but missing",
    ]
    missing = resoto("metrics", "validate", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2
    assert "nope.yaml: (file): cannot be read" in missing.stderr
