"""Acknowledged means durable: ``WAIT`` for replicas after the writes that must survive a failover.

Redis replicates asynchronously: the primary answers a write before any replica has it, so a run
transition or a snapshot swap acknowledged just before the primary dies can be missing on the
replica the sentinels promote. With ``RESOTO_REDIS_MIN_REPLICAS_ACK=N`` (N > 0) those writes are
followed, on the same connection and in the same round trip, by ``WAIT N timeout``: the caller is
told "done" only once N replicas have the write. Too few in time raises :class:`NotReplicated`
(the write is on the primary; it is not promised).

``WAIT`` counts the writes of its own connection, which is why it is pipelined behind the write
(:func:`durably`) and never sent on its own from the pool.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis

from resoto_tasks.errors import NotReplicated
from resoto_tasks.settings import get_settings


def required() -> int:
    """How many replicas must confirm a durable write (0: none, no ``WAIT`` is sent)."""
    return get_settings().redis_min_replicas_ack


def durably(r: redis.Redis, what: str, queue: Callable[[Any], None]) -> list[Any]:
    """Run what ``queue`` adds to a pipeline, then ``WAIT`` for the replicas, in one round trip.

    Returns the replies of the queued commands (exceptions in place, as ``raise_on_error=False``
    gives them, so the caller can retry a ``NOSCRIPT``).

    Raises:
        NotReplicated: fewer replicas than required confirmed within the timeout.
    """
    settings = get_settings()
    needed = settings.redis_min_replicas_ack
    pipe = r.pipeline(transaction=False)
    queue(pipe)
    if needed:
        pipe.execute_command("WAIT", needed, int(settings.redis_min_replicas_timeout_s * 1000))
    replies: list[Any] = pipe.execute(raise_on_error=False)
    if not needed:
        return replies
    *results, acked = replies
    if isinstance(acked, Exception):
        raise acked
    if any(isinstance(x, Exception) for x in results):
        return results  # nothing the caller can count on was written: it handles the error
    if int(acked) < needed:
        raise NotReplicated(what, int(acked), needed, settings.redis_min_replicas_timeout_s)
    return results
