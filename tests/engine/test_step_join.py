"""A step's chord joins in one script (``resoto_tasks.result_backend``), on the session's Redis.

Parts are returned as the worker's trace returns them (``backend.on_chord_part_return``), and the
callback or errback is a real message on the broker: each test gives its chord a queue of its own
and reads what was sent from it, so no worker takes it away.
"""

from __future__ import annotations

import base64
import json
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from celery.exceptions import TimeLimitExceeded

from resoto_tasks import runtime
from resoto_tasks.result_backend import STEP_JOIN_PREFIX, step_join_id, step_join_size

CALLBACK = "tests.join.callback"
ERRBACK = "tests.join.errback"


class StepChord:
    """One step's chord of ``size`` parts, its callback and errback on a queue of its own."""

    def __init__(self, r: redis.Redis, size: int) -> None:
        self.r = r
        self.queue = f"join-{uuid.uuid4().hex[:8]}"
        self.group_id = step_join_id(f"run-{uuid.uuid4().hex[:6]}", 3, 1, size)
        app = runtime.app()
        errback = app.signature(ERRBACK, args=("run", 3, 1), queue=self.queue, immutable=True)
        callback = app.signature(CALLBACK, args=("run", 3, 1), queue=self.queue)
        callback.set(link_error=[errback])
        self.callback = dict(callback)
        self.backend = app.backend

    def part(self, task_id: str, answer: Any, state: str = "SUCCESS") -> None:
        request = SimpleNamespace(id=task_id, group=self.group_id, group_index=None, chord=self.callback)
        self.backend.on_chord_part_return(request, state, answer)

    def sent(self) -> list[tuple[str, list[Any]]]:
        """(task name, args) of every message on the chord's queue, oldest first."""
        found = []
        for raw in reversed(self.r.lrange(self.queue, 0, -1)):
            message = json.loads(raw)
            args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
            found.append((message["headers"]["task"], args))
        return found

    def stored_keys(self) -> list[str]:
        return sorted(self.r.keys(f"*{self.group_id}*"))

    def close(self) -> None:
        self.r.delete(self.queue, *self.stored_keys())


@pytest.fixture
def step_chord(r: redis.Redis) -> Any:
    made: list[StepChord] = []

    def make(size: int) -> StepChord:
        made.append(StepChord(r, size))
        return made[-1]

    yield make
    for chord in made:
        chord.close()


def test_the_last_part_sends_the_callback_with_every_answer_once(step_chord: Any) -> None:
    chord = step_chord(3)
    chord.part("t1", {"subscriber_id": "a"})
    chord.part("t2", {"subscriber_id": "b"})
    assert chord.sent() == []
    chord.part("t3", {"subscriber_id": "c"})
    [(task, args)] = chord.sent()
    assert task == CALLBACK
    assert args[0] == [{"subscriber_id": "a"}, {"subscriber_id": "b"}, {"subscriber_id": "c"}]
    assert args[1:] == ["run", 3, 1]
    assert [k for k in chord.stored_keys() if k.endswith(".j")] == []  # the parts are dropped


def test_a_redelivered_part_counts_once_and_a_late_duplicate_sends_nothing(step_chord: Any) -> None:
    chord = step_chord(2)
    chord.part("t1", {"subscriber_id": "a"})
    chord.part("t1", {"subscriber_id": "a", "again": True})  # the same task, run a second time
    assert chord.sent() == []
    chord.part("t2", {"subscriber_id": "b"})
    [(_, args)] = chord.sent()
    assert args[0] == [{"subscriber_id": "a"}, {"subscriber_id": "b"}]
    chord.part("t2", {"subscriber_id": "b"})  # redelivered after the join: nothing starts again
    chord.part("t1", {"subscriber_id": "a"})
    assert len(chord.sent()) == 1


def test_a_failed_part_calls_the_errback_instead_of_the_callback(step_chord: Any) -> None:
    chord = step_chord(2)
    chord.part("t1", {"subscriber_id": "a"})
    chord.part("t2", TimeLimitExceeded(5.0), state="FAILURE")
    assert [task for task, _ in chord.sent()] == [ERRBACK]


def test_only_a_step_chord_is_joined_by_the_script() -> None:
    assert step_join_size(step_join_id("20261202-abc", 4, 2, 7)) == 7
    assert step_join_size(str(uuid.uuid4())) is None  # a user's chord: Celery's own join
    assert step_join_size(None) is None
    assert step_join_size(f"{STEP_JOIN_PREFIX}not-a-step") is None  # never mistaken for one
    assert step_join_size(f"{STEP_JOIN_PREFIX}r:0:0:0") is None
    assert step_join_id("r", 0, 0, 2).startswith(STEP_JOIN_PREFIX)
