"""Helpers for ``resoto-tasks up`` tests: an isolated environment per test, the real command.

Each ``up`` gets its own key prefix, data directory and free metrics/Flower ports, so it never
meets the session worker's runs, the user's ``~/.local/share`` or anything listening on the
machine. Where it uses the session Redis it uses a database of its own, because Celery's queues
(``collect``, ``workflow``, ...) are not prefixed and the session worker consumes database 0.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

from tests.support.redis_server import free_port
from tests.support.workers import ROOT, VENV_BIN

UP_DB = 9
"""The session Redis database the "configured Redis answers" tests use."""


def up_env(base_url: str, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "RESOTO_REDIS_URL": base_url,
        "RESOTO_KEY_PREFIX": f"up{uuid.uuid4().hex[:6]}",
        "RESOTO_HOOK_MODULES": "",
        "COLUMNS": "200",
    }
    env.update(extra)
    return env


def up_args(data_dir: Path, *extra: str) -> list[str]:
    return [
        str(VENV_BIN / "resoto-tasks"),
        "up",
        "--data-dir",
        str(data_dir),
        "--metrics-port",
        str(free_port()),
        "--flower-port",
        str(free_port()),
        "--web-port",
        str(free_port()),
        "--stop-timeout",
        "10",
        *extra,
    ]


def closed_port_url() -> str:
    """A loopback URL nothing listens on (the port was free a moment ago)."""
    return f"redis://127.0.0.1:{free_port()}/0"


def run_up(args: list[str], env: dict[str, str], timeout_s: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
