"""Celery's Redis result backend, minus what nobody here listens to.

Celery's Redis backend subscribes (``SUBSCRIBE celery-task-meta-<id>``) to every task a
non-worker process sends, and publishes every stored result on that channel, so that
``AsyncResult.get()`` can wait without polling. resoto-tasks never waits on an ``AsyncResult``
for its own tasks: the chord hands the subscribers' answers to the step callback, and views read
the stored results. So this backend neither subscribes on send nor publishes the results of
action tasks (``resoto_action``) and of the ``workflow`` tasks: one command fewer per subscriber
per step. Results of any other task (a user's own) are published as usual. Everything else
(chord counting, result storage, errbacks) is the stock backend: :class:`ResultBackend` for a
plain Redis, :class:`SentinelResultBackend` (Celery's sentinel backend) behind Redis Sentinel.
"""

from __future__ import annotations

import threading
from typing import Any

from celery.backends.redis import RedisBackend, SentinelBackend

SCHEME_PREFIX = "resoto_tasks.result_backend:ResultBackend+"
SENTINEL_SCHEME_PREFIX = "resoto_tasks.result_backend:SentinelResultBackend+"
QUIET_PREFIX = "resoto.workflow."

_quiet = threading.local()


class QuietResults(RedisBackend):  # type: ignore[misc]  # celery is untyped
    """What both backends change; before ``SentinelBackend`` in the sentinel class's bases, so
    ``super()`` reaches the sentinel backend there."""

    def on_task_call(self, producer: Any, task_id: str) -> None:
        """Do not subscribe to the result: nobody here waits on it."""

    def on_result_fulfilled(self, result: Any) -> None:
        """Nothing to unsubscribe from (called when an ``AsyncResult`` is garbage collected)."""

    def add_pending_result(self, result: Any, weak: bool = False, start_drainer: bool = True) -> Any:
        """Keep a result only for someone who waits on it (``AsyncResult.get``).

        Sending a group registers each member weakly for the group's barrier, which subscribes
        to its result channel; nobody ever waits on it here, so a long-running workflow worker
        kept one subscription per subscriber task it ever sent (seen: 144 after 6 workflows).
        """
        if weak:
            return result
        return super().add_pending_result(result, weak=weak, start_drainer=start_drainer)

    def store_result(
        self, task_id: str, result: Any, state: str, traceback: Any = None, request: Any = None, **kwargs: Any
    ) -> Any:
        _quiet.on = self._is_quiet(request)
        try:
            return super().store_result(task_id, result, state, traceback, request, **kwargs)
        finally:
            _quiet.on = False

    def _is_quiet(self, request: Any) -> bool:
        name = getattr(request, "task", None) or ""
        if name.startswith(QUIET_PREFIX):
            return True
        task = self.app.tasks.get(name) if name else None
        return bool(getattr(task, "resoto_action", False))

    def _set(self, key: str, value: Any, expires: int | None = None) -> None:
        if not getattr(_quiet, "on", False):
            super()._set(key, value, expires)
            return
        expires = self.expires if expires is None else expires
        if expires:
            self.client.setex(key, expires, value)
        else:
            self.client.set(key, value)


class ResultBackend(QuietResults):
    """Celery's Redis backend, quiet."""


class SentinelResultBackend(QuietResults, SentinelBackend):  # type: ignore[misc]
    """Celery's Redis Sentinel backend (``sentinel://...;sentinel://...`` + ``master_name``), quiet."""


def backend_url(url: str) -> str:
    """The ``result_backend`` setting that selects our class for a redis://, rediss:// or sentinel:// URL."""
    prefix = SENTINEL_SCHEME_PREFIX if url.startswith("sentinel://") else SCHEME_PREFIX
    return prefix + url
