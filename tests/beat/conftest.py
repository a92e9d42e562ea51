"""Fixtures for the beat tests: real beat processes and workflows scheduled through the CLI.

Nothing from ``resoto_tasks`` or ``beat`` is imported here at module level: pytest imports this
file before the session's ``pytest_configure`` exports the private redis-server's URL, and the
settings are read once per process.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from tests.support.cli import resoto
from tests.support.redis_server import RedisServer
from tests.support.workers import WorkerProcess

if TYPE_CHECKING:
    from tests.beat.helpers import BeatProcess


@pytest.fixture
def start_beat(redis_server: RedisServer, session_worker: WorkerProcess) -> Iterator[Callable[[], BeatProcess]]:
    """Factory: start a beat (a worker on every queue is running); all are stopped after the test."""
    started: list[BeatProcess] = []

    from resoto_tasks.settings import get_settings
    from tests.beat.helpers import BeatProcess

    assert get_settings().redis_url == redis_server.url, "resoto_tasks read its settings too early"

    def factory() -> BeatProcess:
        beat = BeatProcess().start()
        started.append(beat)
        return beat

    yield factory
    for beat in started:
        beat.stop()


@pytest.fixture
def add_scheduled_workflow(tmp_path: Path, redis_server: RedisServer) -> Iterator[Callable[[str], str]]:
    """Factory: add a one-step workflow with an interval trigger through the real CLI.

    Runs end at once (no subscribers), and ``on_surpass: parallel`` makes every slot a run,
    so a burst or a duplicate would show as extra runs. Removed (and unpaused) after the test.
    """
    from beat import pauses
    from resoto_tasks import workflows
    from resoto_tasks.errors import ResotoError
    from resoto_tasks.settings import get_settings

    assert get_settings().redis_url == redis_server.url, "resoto_tasks read its settings too early"
    added: list[str] = []

    def factory(interval: str) -> str:
        name = f"beat_{uuid.uuid4().hex[:8]}"
        path = tmp_path / f"{name}.yaml"
        doc = {
            "name": name,
            "on_surpass": "parallel",
            "steps": [{"name": "tick"}],
            "triggers": [{"interval": interval}],
        }
        path.write_text(yaml.safe_dump(doc))
        done = resoto("workflows", "add", str(path))
        assert done.returncode == 0, done.stderr
        added.append(name)
        return name

    yield factory
    for name in added:
        pauses.clear_paused(name)
        with contextlib.suppress(ResotoError):
            workflows.remove(name)
