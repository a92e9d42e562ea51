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
from typing import Self

import redis

VENV_BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]


def celery_bin() -> str:
    return str(VENV_BIN / "celery")


class GroupProcess:
    """A child started in its own process group (``start_new_session``), so it and anything it
    forks (a worker's pool children) are signalled together and nothing is left behind.

    A subclass sets ``args``, ``env`` and ``log_path``; :meth:`launch` starts ``args`` with the
    output appended to the log.
    """

    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def launch(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.args,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, size: int = 3000) -> str:
        return self.log()[-size:]

    def wait_for(self, text: str, timeout_s: float = 15) -> None:
        """Until ``text`` is in the log. Raises: RuntimeError (it exited), TimeoutError."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if text in self.log():
                return
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.tail()}")
            time.sleep(0.05)
        raise TimeoutError(f"{text!r} not in the log of {self.name} after {timeout_s}s: {self.tail()}")

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
        self,
        queues: str,
        *extra: str,
        pool: str = "prefork",
        concurrency: int = 2,
        env: dict[str, str] | None = None,
        name: str | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.name = name or f"w{uuid.uuid4().hex[:6]}@test"
        self.queues = queues
        self.log_path = log_path or Path(f"/tmp/resoto-test-{self.name.split('@')[0]}.log")
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
        self.proc = None

    def start(self, wait: bool = True, timeout_s: float = 30) -> Self:
        self.launch()
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


class BeatProcess(GroupProcess):
    """``celery -A resoto_tasks beat`` in its own process group, its schedule file beside its log."""

    def __init__(self, env: dict[str, str] | None = None, log_dir: Path = Path("/tmp")) -> None:
        self.name = f"beat{uuid.uuid4().hex[:6]}"
        self.log_path = log_dir / f"resoto-test-{self.name}.log"
        schedule = log_dir / f"resoto-test-{self.name}-schedule"
        self.args = [celery_bin(), "-A", "resoto_tasks", "beat", "-l", "info", "-s", str(schedule)]
        self.env = {**os.environ, **(env or {})}
        self.proc = None

    def start(self) -> Self:
        self.launch()
        return self
