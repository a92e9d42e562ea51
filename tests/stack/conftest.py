"""Fixtures for the stack tests (helpers live in :mod:`tests.stack.helpers`)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest


@pytest.fixture
def popen_up() -> Iterator[list[subprocess.Popen[str]]]:
    """``up`` processes a test starts; one still running afterwards gets SIGTERM (it stops its stack)."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()  # its children get SIGTERM from the kernel (PR_SET_PDEATHSIG)
                proc.wait(10)
