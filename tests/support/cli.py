"""The ``resoto-tasks`` command, run as users run it or inside the test process.

Most CLI tests check what a command prints and its exit code. Starting the real console script for
each costs about a second of CPU (an interpreter and its imports), and the suite runs some 130 of
them on 2 cores. So :func:`resoto` runs the same entry point (``resoto_tasks.cli.main.main``) in
this process: the environment the command would have inherited is set for the call, the process
composes anew from it (``runtime.reset``, the composition root's own switch), stdout, stderr and
stdin are the call's own, and whatever it configured (logging, failover listeners) is put back.

:func:`resoto_process` starts the real ``resoto-tasks`` executable. Tests use it where the process
is what they check (the installed entry point, calls from several threads at once, a command that
must not hang a test when Redis is away) and the fault tests, which drive stacks as users do.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, redirect_stderr, redirect_stdout

from resoto_tasks import failover
from resoto_tasks.cli import common
from resoto_tasks.cli.main import main
from tests.support.composition import composed_on
from tests.support.workers import ROOT, VENV_BIN

_in_process = threading.Lock()
"""One command at a time per test process: a call owns ``os.environ`` and the standard streams."""


def resoto(
    *args: str, env: Mapping[str, str] | None = None, input_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``resoto-tasks ARGS`` in this process with ``env`` added to the environment.

    Nothing can stop it from outside: a command that waits is bounded by its own options
    (``run --wait --timeout``), and every test by pytest-timeout.
    """
    out, err = io.StringIO(), io.StringIO()
    code: int
    with _in_process, composed_on(env or {}), _restored_logging(), _stdin(input_text):
        _size_consoles()
        try:
            with redirect_stdout(out), redirect_stderr(err):
                main(list(args))
            code = 0
        except SystemExit as exc:
            code = _exit_code(exc.code, err)
        finally:
            failover.clear_listeners()
    return subprocess.CompletedProcess(["resoto-tasks", *args], code, out.getvalue(), err.getvalue())


def resoto_process(
    *args: str, env: Mapping[str, str] | None = None, timeout_s: float = 60, input_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real ``resoto-tasks`` executable as a child process."""
    return subprocess.run(
        [str(VENV_BIN / "resoto-tasks"), *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        input=input_text,
        check=False,
    )


def _size_consoles() -> None:
    """Size the CLI's consoles as a new process would (``COLUMNS``/``LINES``, else 80x25): a
    console reads them once, when the module is imported."""
    width, height = os.environ.get("COLUMNS", ""), os.environ.get("LINES", "")
    for console in (common.console, common.err_console):
        console.size = (int(width) if width.isdigit() else 80, int(height) if height.isdigit() else 25)


def _exit_code(code: object, err: io.StringIO) -> int:
    """``SystemExit``'s code as the process would have exited with it (a string is printed, 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    err.write(f"{code}\n")
    return 1


@contextmanager
def _restored_logging() -> Iterator[None]:
    """The command configures the root logger for itself (``logs.configure_cli``, which closes
    the handlers it replaces): pytest's capture handlers are set aside for the call, then put
    back with the root logger's level."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    for handler in handlers:
        root.removeHandler(handler)
    try:
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


@contextmanager
def _stdin(text: str | None) -> Iterator[None]:
    saved = sys.stdin
    sys.stdin = io.StringIO(text or "")
    try:
        yield
    finally:
        sys.stdin = saved
