"""The web console as users run it: ``resoto-tasks web`` (uvicorn) in its own process group."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from tests.support.redis_server import free_port
from tests.support.workers import ROOT, VENV_BIN, GroupProcess

ARTIFACTS = ROOT / "build" / "test-artifacts" / "web"
"""Screenshots of the browser tests (build/ is git-ignored)."""
CHROMIUM = "/usr/bin/chromium"
"""Debian's chromium (``make test`` installs it): Playwright cannot download its own browser here."""


class WebServer(GroupProcess):
    """``resoto-tasks web --port P`` with ``RESOTO_WEB_*`` from ``env``."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(f"/tmp/resoto-test-web-{uuid.uuid4().hex[:6]}.log")
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30) -> WebServer:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(VENV_BIN / "resoto-tasks"), "web", "--port", str(self.port)],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"resoto-tasks web exited with {self.proc.returncode}: {self.tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise TimeoutError(f"resoto-tasks web not answering after {timeout_s}s: {self.tail()}")

    def tail(self, size: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except FileNotFoundError:
            return ""
