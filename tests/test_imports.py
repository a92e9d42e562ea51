"""The import contracts cover every core module; the CLI imports without psutil, the local stack's extra.

The contracts themselves run as ``lint-imports`` (``make lint``, see ``[tool.importlinter]`` in
pyproject.toml). A ``forbidden`` contract checks only the modules it lists, so a module added to
the core later would escape it unnoticed; the first test here notices.
"""

from __future__ import annotations

import importlib.util
import pkgutil
import subprocess
import sys
import tomllib
from importlib.machinery import ModuleSpec
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import resoto_tasks
from resoto_tasks.cli.common import EXIT_FAILED
from resoto_tasks.cli.main import app

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
FRONT_ENDS = {"resoto_tasks.cli", "resoto_tasks.local_stack", "resoto_tasks.web", "resoto_tasks.views"}


def _contract(contract_id: str) -> dict[str, Any]:
    config = tomllib.loads(PYPROJECT.read_text())
    contracts: list[dict[str, Any]] = config["tool"]["importlinter"]["contracts"]
    return next(c for c in contracts if c.get("id") == contract_id)


def test_the_core_contract_lists_every_module_of_resoto_tasks_but_the_front_ends() -> None:
    children = {f"resoto_tasks.{m.name}" for m in pkgutil.iter_modules(resoto_tasks.__path__)}
    listed = set(_contract("core-below-front-ends")["source_modules"])
    assert children - FRONT_ENDS - listed == set(), "add these to source_modules in pyproject.toml"
    assert listed - children == set(), "these modules are gone: remove them from source_modules"


def test_the_cli_imports_without_psutil() -> None:
    """psutil is the ``local`` extra; ``resoto-tasks runs list`` and the rest must not need it."""
    probe = "import sys, resoto_tasks.cli.main; print('psutil' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_up_says_in_one_line_which_extra_to_install_when_psutil_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> ModuleSpec | None:
        return None if name == "psutil" else real_find_spec(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    done = CliRunner().invoke(app, ["up", "--once", "--data-dir", str(tmp_path)])
    assert done.exit_code == EXIT_FAILED
    assert "resoto-tasks up needs psutil (not installed): pip install 'resoto-tasks[local]'" in done.output
    assert "Traceback" not in done.output
