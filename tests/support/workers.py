"""Celery workers and other resoto-tasks processes as separate OS processes, as users run them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import redis

VENV_BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]


def celery_bin() -> str:
    return str(VENV_BIN / "celery")


class GroupProcess:
    """A child started in its own process group (``start_new_session``), so it and anything it
    forks (a worker's pool children) are signalled together and nothing is left behind."""

    proc: subprocess.Popen[bytes] | None = None

    def kill(self) -> None:
        """SIGKILL the whole process group: the process and its children die at once."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout_s: float = 15) -> None:
        """SIGTERM (a clean shutdown), then SIGKILL after ``timeout_s``."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()


class WorkerProcess(GroupProcess):
    """``celery -A resoto_tasks worker -Q <queues>`` in its own process group."""

    def __init__(
        self, queues: str, *extra: str, pool: str = "prefork", concurrency: int = 2, env: dict[str, str] | None = None
    ) -> None:
        self.name = f"w{uuid.uuid4().hex[:6]}@test"
        self.queues = queues
        self.log_path = Path(f"/tmp/resoto-test-{self.name.split('@')[0]}.log")
        self.args = [
            celery_bin(),
            "-A",
            "resoto_tasks",
            "worker",
            "-Q",
            queues,
            "-n",
            self.name,
            "-P",
            pool,
            "-c",
            str(concurrency),
            "-l",
            "info",
            "--without-gossip",
            "--without-mingle",
            *extra,
        ]
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True, timeout_s: float = 30) -> WorkerProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.args,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        if wait:
            self.wait_ready(timeout_s)
        return self

    def wait_ready(self, timeout_s: float = 30) -> None:
        """Ready once its heartbeat key exists (written by the worker bootstep) and it consumes."""
        r = redis.Redis.from_url(self.env["RESOTO_REDIS_URL"], decode_responses=True)
        prefix = self.env.get("RESOTO_KEY_PREFIX", "rt")
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(f"worker exited with {self.proc.returncode}: {self.tail()}")
                raw = r.get(f"{prefix}:worker:{self.name}")
                if raw and "ready" in self.tail(4000):
                    json.loads(raw)
                    return
                time.sleep(0.1)
        finally:
            r.close()
        raise TimeoutError(f"worker {self.name} not ready in {timeout_s}s: {self.tail()}")

    def tail(self, size: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except FileNotFoundError:
            return ""
