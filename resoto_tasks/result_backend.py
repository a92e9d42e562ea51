"""Celery's Redis result backend, minus the result subscription on every send.

Celery's Redis backend subscribes (``SUBSCRIBE celery-task-meta-<id>``) to every task a
non-worker process sends, so that ``AsyncResult.get()`` can wait without polling. resoto-tasks
never waits on an ``AsyncResult``: subscribers record their outcomes in the run record and the
chord's counting happens in the backend's Lua script. The subscriptions only cost round trips
and, at interpreter exit, print ``Exception ignored in AsyncResult.__del__`` noise. Everything
else (chord counting, result storage, errbacks) is the stock backend.
"""

from __future__ import annotations

from typing import Any

from celery.backends.redis import RedisBackend

SCHEME_PREFIX = "resoto_tasks.result_backend:ResultBackend+"


class ResultBackend(RedisBackend):  # type: ignore[misc]  # celery is untyped
    def on_task_call(self, producer: Any, task_id: str) -> None:
        """Do not subscribe to the result: nobody here waits on it."""

    def on_result_fulfilled(self, result: Any) -> None:
        """Nothing to unsubscribe from (called when an ``AsyncResult`` is garbage collected)."""


def backend_url(url: str) -> str:
    """The ``result_backend`` setting that selects this class for a redis:// or rediss:// URL."""
    return SCHEME_PREFIX + url
