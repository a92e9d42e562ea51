"""The web console as users run it: ``resoto-tasks web`` (uvicorn) in its own process group."""

from __future__ import annotations

import os
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
        self.name = f"web-{uuid.uuid4().hex[:6]}"
        self.log_path = Path(f"/tmp/resoto-test-{self.name}.log")
        self.args = [str(VENV_BIN / "resoto-tasks"), "web", "--port", str(self.port)]
        self.env = {**os.environ, **(env or {})}
        self.proc = None

    def start(self, timeout_s: float = 30) -> WebServer:
        self.launch()
        assert self.proc is not None
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
