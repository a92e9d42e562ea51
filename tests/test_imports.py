"""The import contracts cover every core module, and the CLI imports without the local stack's extra.

The contracts themselves run as ``lint-imports`` (``make lint``, see ``[tool.importlinter]`` in
pyproject.toml). A ``forbidden`` contract checks only the modules it lists, so a module added to
the core later would escape it unnoticed; the first test here notices.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import resoto_tasks

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
FRONT_ENDS = {"resoto_tasks.cli", "resoto_tasks.local_stack"}


def _contract(contract_id: str) -> dict[str, Any]:
    config = tomllib.loads(PYPROJECT.read_text())
    contracts: list[dict[str, Any]] = config["tool"]["importlinter"]["contracts"]
    return next(c for c in contracts if c.get("id") == contract_id)


def test_the_core_contract_lists_every_module_of_resoto_tasks_but_the_cli_and_the_local_stack() -> None:
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
