"""Where the local stack keeps its files: a data directory, and one run directory per ``up``.

The data directory (``$XDG_DATA_HOME/resoto-tasks``, usually ``~/.local/share/resoto-tasks``) holds
the Redis data of a Redis that ``up`` started itself, so run history survives a restart of the
stack, and a ``runs/`` directory with one subdirectory per ``up`` holding every child's log. Old run
directories are pruned so a laptop does not fill up with logs. Where the data directory cannot be
written (read-only home, sandbox), a temporary directory takes its place, and ``up`` says so.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

KEEP_RUN_DIRS = 20
"""Run directories older than the newest this many are deleted when a new one is made."""


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "resoto-tasks"


@dataclass(frozen=True)
class StackPaths:
    """The directories of one ``up``: ``data_dir`` is shared across runs, ``run_dir`` is this one's."""

    data_dir: Path
    run_dir: Path
    temporary: bool
    """True when the data directory could not be used and everything lives in a temp dir."""

    def log(self, name: str) -> Path:
        return self.run_dir / f"{name}.log"


def make_paths(data_dir: Path | None = None) -> StackPaths:
    """Create this run's directory under ``data_dir`` (or a temp dir if that is not writable)."""
    base = data_dir or default_data_dir()
    stamp = f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(2)}"
    try:
        runs = base / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        run_dir = runs / stamp
        run_dir.mkdir()
        _prune(runs, keep=KEEP_RUN_DIRS)
        return StackPaths(data_dir=base, run_dir=run_dir, temporary=False)
    except OSError:
        tmp = Path(tempfile.mkdtemp(prefix="resoto-tasks-"))
        run_dir = tmp / "runs" / stamp
        run_dir.mkdir(parents=True)
        return StackPaths(data_dir=tmp, run_dir=run_dir, temporary=True)


def _prune(runs: Path, keep: int) -> None:
    found = sorted((p for p in runs.iterdir() if p.is_dir()), key=lambda p: p.name)
    for old in found[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


class DirLock:
    """An exclusive ``flock`` on a directory, held while the file stays open.

    Two ``up`` processes starting their own Redis must not share one data directory: two
    servers appending to one AOF corrupt it. The lock dies with the process, so it never
    needs clearing after a crash.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._file: IO[str] | None = None

    def acquire(self) -> bool:
        """True if this process now holds the lock; False if another process does."""
        self.directory.mkdir(parents=True, exist_ok=True)
        handle = (self.directory / ".lock").open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._file = handle
        return True

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
