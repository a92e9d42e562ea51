"""Child processes of the local stack: started in their own process group, stopped without leftovers.

Why process groups: a Celery prefork worker is a parent with pool children. Signalling only the
parent can leave a child behind when the parent dies hard; signalling the group reaches every
process that inherited it. Each child gets its own session (``start_new_session``), so a Ctrl-C in
the terminal reaches only ``resoto-tasks up``, which then stops the children in order (beat and
Flower first, workers next, Redis last) instead of everything dying at once mid-task.

Stopping is SIGTERM to the group leader (Celery's warm shutdown: finish running tasks), a bounded
wait, then SIGKILL to the whole group, including any pool child that outlived its parent.

On Linux each child also asks the kernel for SIGTERM when ``up`` itself dies (``PR_SET_PDEATHSIG``),
so even a SIGKILLed ``up`` does not leave a stack running in the background.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from resoto_tasks.local_stack.errors import MissingExtra

_PR_SET_PDEATHSIG = 1
LEFTOVER_GRACE_S = 1.0
"""After a leader exits, how long the rest of its group may take to follow before it is killed."""


def _child_setup() -> None:
    """Runs in the child between fork and exec: no signal blocked (a mask survives exec, and
    ``up`` blocks its stop signals while it restarts a child), SIGTERM when the parent dies."""
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    if not sys.platform.startswith("linux"):
        return
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(libc_name, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


@dataclass
class ManagedProcess:
    """One child of the stack: its command, its log file and, once started, its process."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str]
    cwd: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    started_at: float = 0.0

    def start(self) -> ManagedProcess:
        """Start the process in a new session, its output appended to ``log_path``.

        Raises:
            OSError: the executable cannot be started.
        """
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                list(self.argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(self.env),
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=_child_setup,  # noqa: PLW1509 - no threads run yet when the stack starts
            )
        self.started_at = time.monotonic()
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def tail(self, max_chars: int = 2000) -> str:
        """The end of the log, for error messages."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(0, os.SEEK_END)
                size = log.tell()
                log.seek(max(0, size - max_chars))
                return log.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def request_stop(self) -> None:
        """SIGTERM the group leader only: Celery's warm shutdown stops its own pool children."""
        if self.alive:
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)

    def kill_group(self) -> None:
        """SIGKILL every process still in the group, then reap the leader."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)

    def group_alive(self) -> bool:
        """True while any live process of the group exists (the leader may be gone, a child not).

        Zombies do not count: a killed orphan stays a zombie until init reaps it, and it holds
        no resources and runs no code.
        """
        if self.proc is None:
            return False
        self.proc.poll()  # reap the leader if it exited, so it is not a zombie member itself
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return bool(group_members(self.proc.pid))


def require_psutil() -> None:
    """``up`` calls this before it starts anything, so a missing psutil is one line at the start, not
    a traceback while stopping.

    psutil is the ``local`` extra: only the local stack needs it, so importing the rest of
    resoto_tasks (the CLI included) does not, and :func:`group_members` imports it when called.

    Raises:
        MissingExtra: psutil is not installed.
    """
    if importlib.util.find_spec("psutil") is None:
        raise MissingExtra("psutil", "local")


def group_members(pgid: int) -> list[int]:
    """Pids of the live (non-zombie) processes in process group ``pgid``."""
    import psutil  # the `local` extra, see require_psutil

    found: list[int] = []
    for proc in psutil.process_iter(["status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(proc.pid) == pgid:
                found.append(proc.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return found


def stop_all(
    processes: Iterable[ManagedProcess],
    timeout_s: float,
    force: Callable[[], bool] = lambda: False,
    poll_s: float = 0.05,
) -> dict[str, str]:
    """Stop ``processes`` together: SIGTERM each, wait up to ``timeout_s``, then SIGKILL the groups.

    A leader that exited is given :data:`LEFTOVER_GRACE_S` for the rest of its group (Celery's
    pool children follow their parent within a moment); what is still there then is killed.
    ``force()`` is polled while waiting: a second Ctrl-C cuts the wait short. Returns, per name,
    how it ended: ``exited <code>``, ``exited <code> (left children, killed)``, ``killed``
    (SIGKILL was needed) or ``not started``.
    """
    group = list(processes)
    how: dict[str, str] = {}
    for p in group:
        if p.proc is None:
            how[p.name] = "not started"
        elif not p.alive and p.group_alive():
            p.kill_group()
            how[p.name] = f"exited {p.returncode} (left children, killed)"
        elif not p.alive:
            how[p.name] = f"exited {p.returncode}"
        else:
            p.request_stop()
    deadline = time.monotonic() + timeout_s
    pending = [p for p in group if p.name not in how]
    leader_gone_at: dict[str, float] = {}
    while pending and time.monotonic() < deadline and not force():
        time.sleep(poll_s)
        now = time.monotonic()
        for p in list(pending):
            if p.alive:
                continue
            if not p.group_alive():
                how[p.name] = f"exited {p.returncode}"
                pending.remove(p)
            elif now - leader_gone_at.setdefault(p.name, now) > LEFTOVER_GRACE_S:
                p.kill_group()
                how[p.name] = f"exited {p.returncode} (left children, killed)"
                pending.remove(p)
    for p in pending:
        leader_exited = not p.alive
        p.kill_group()
        how[p.name] = f"exited {p.returncode} (left children, killed)" if leader_exited else "killed"
    for p in group:  # belt and braces: nothing of any group survives this function
        if p.group_alive():
            p.kill_group()
    return how
