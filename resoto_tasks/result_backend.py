"""Celery's Redis result backend, minus what nobody here listens to, with one-round-trip step joins.

Celery's Redis backend subscribes (``SUBSCRIBE celery-task-meta-<id>``) to every task a
non-worker process sends, and publishes every stored result on that channel, so that
``AsyncResult.get()`` can wait without polling. resoto-tasks never waits on an ``AsyncResult``
for its own tasks: the chord hands the subscribers' answers to the step callback, and views read
the stored results. So this backend neither subscribes on send nor publishes the results of
action tasks (``resoto_action``) and of the ``workflow`` tasks: one command fewer per subscriber
per step. Results of any other task (a user's own) are published as usual.

A step's chord joins in one round trip. Celery's generic chord cannot know its size when a part
returns, nor whether two workers race to send the callback, so it costs a ``DEL`` and a ``SET``
before the last header task is sent and, on the last part, a ``GET`` (a saved group result), an
``LRANGE``, a claim script and a cleanup script around the callback: five round trips on the way
from the last answer to the next step. A step's chord has an id of the engine's
(:func:`step_join_id`) that carries its size, and its parts are counted by one script
(:data:`STEP_JOIN_LUA`) that records the part once per task id and hands every part to exactly the
part that completes the join: no claim is needed, and the callback is sent as Celery sends it
(``callback.delay(results)``; a failed part calls the chord's errback). Any other chord (a
user's own) is Celery's. Everything else (result storage, errbacks) is the stock backend:
:class:`ResultBackend` for a plain Redis, :class:`SentinelResultBackend` (Celery's sentinel
backend) behind Redis Sentinel.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from functools import cached_property
from typing import Any

from celery import maybe_signature
from celery.backends.redis import RedisBackend, SentinelBackend
from celery.exceptions import ChordError

SCHEME_PREFIX = "resoto_tasks.result_backend:ResultBackend+"
SENTINEL_SCHEME_PREFIX = "resoto_tasks.result_backend:SentinelResultBackend+"
QUIET_PREFIX = "resoto.workflow."

STEP_JOIN_PREFIX = "resoto-step:"

STEP_JOIN_LUA = """
local jkey, dkey = KEYS[1], KEYS[2]
local tid, part, size, expires = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
if redis.call('SADD', dkey, tid) == 0 then
    return false
end
local count = redis.call('RPUSH', jkey, part)
redis.call('EXPIRE', dkey, expires)
if count < size then
    redis.call('EXPIRE', jkey, expires)
    return false
end
local parts = redis.call('LRANGE', jkey, 0, -1)
redis.call('DEL', jkey)
return parts
"""
"""Record one part of a step's chord (once per task id: a redelivered task's second answer is
not counted); when it is the last, return every part and drop them. The set of task ids that
answered outlives the join, so a late duplicate cannot start it again."""
STEP_JOIN_SHA = hashlib.sha1(STEP_JOIN_LUA.encode()).hexdigest()
"""What Redis names the script by (``EVALSHA``)."""

log = logging.getLogger(__name__)
_quiet = threading.local()


def step_join_id(run_id: str, index: int, epoch: int, size: int) -> str:
    """The group id of a step's chord: unique per step attempt, and it says how many parts it has."""
    return f"{STEP_JOIN_PREFIX}{run_id}:{index}:{epoch}:{size}"


def step_join_size(group_id: str | None) -> int | None:
    """The number of parts of a step's chord, or None for any other group."""
    if not group_id or not group_id.startswith(STEP_JOIN_PREFIX):
        return None
    size = group_id.rsplit(":", 1)[1]
    return int(size) if size.isdigit() and int(size) > 0 else None


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

    def set_chord_size(self, group_id: str, chord_size: int) -> None:
        """A step's chord carries its size in its id: nothing to write before it is sent."""
        if step_join_size(group_id) is None:
            super().set_chord_size(group_id, chord_size)

    def on_chord_part_return(self, request: Any, state: str, result: Any, propagate: Any = None, **kwargs: Any) -> None:
        """Count a step's part in one round trip (see the module docstring); other chords are Celery's."""
        group_id, task_id = getattr(request, "group", None), getattr(request, "id", None)
        size = step_join_size(group_id)
        if size is None or not task_id:
            super().on_chord_part_return(request, state, result, propagate=propagate, **kwargs)
            return
        part = self.encode([1, task_id, state, self.encode_result(result, state)])
        expires = int(self.expires or 86_400)
        keys = [self.get_key_for_group(group_id, ".j"), self.get_key_for_group(group_id, ".d")]
        parts = self._step_join(keys=keys, args=[task_id, part, size, expires], client=self.client)
        if not parts:
            return
        callback = maybe_signature(request.chord, app=self.app)
        try:
            results = [self._unpack_chord_result(p, self.decode) for p in parts]
        except ChordError as exc:  # a part failed: the chord's errback, as Celery calls it
            self.chord_error_from_stack(callback, exc)
            return
        try:
            callback.delay(results)
        except Exception as exc:  # the supervisor completes a step whose callback never came
            log.warning("step chord %s: could not send its callback: %r", group_id, exc)
            self.chord_error_from_stack(callback, ChordError(f"Callback error: {exc!r}"))

    @cached_property
    def _step_join(self) -> Any:
        return self.client.register_script(STEP_JOIN_LUA)

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
