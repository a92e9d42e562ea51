"""Fixtures of the fault tests: a private, breakable deployment per test.

Each fixture starts its own redis-server; the processes a test starts inherit its URL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from resoto_tasks.settings import Settings
from tests.faults.support import FaultStack


@pytest.fixture
def fault_stack(tmp_path: Path) -> Iterator[FaultStack]:
    """A private redis-server (append-only) for one test; every process started on it is killed after."""
    stack = FaultStack(tmp_path)
    try:
        yield stack
    finally:
        stack.close()


@pytest.fixture
def split_stack(tmp_path: Path) -> Iterator[FaultStack]:
    """Like ``fault_stack``, with the run state and store on a Redis of their own (``RESOTO_STORE_URL``
    split from the broker's), so the store can be broken while the broker stays up."""
    stack = FaultStack(tmp_path, split_store=True)
    try:
        yield stack
    finally:
        stack.close()


@pytest.fixture
def default_timeouts_stack(tmp_path: Path) -> Iterator[FaultStack]:
    """Like ``fault_stack`` with the production visibility timeout (4 h): only the heartbeat can
    notice a dead worker."""
    stack = FaultStack(
        tmp_path, env={"RESOTO_VISIBILITY_TIMEOUT_S": str(Settings.model_fields["visibility_timeout_s"].default)}
    )
    try:
        yield stack
    finally:
        stack.close()
