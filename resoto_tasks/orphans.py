"""Give a dead worker's messages back to its queue in about a minute, not after hours.

Redis has no real acks: kombu keeps every message a worker took (and has not acknowledged) in the
``unacked`` hash, and gives it back only once it is older than ``visibility_timeout`` (4 h here,
because it must exceed the longest task). A worker killed in the middle of a collect therefore left
its account waiting for hours. Our workers already say every few seconds that they live (the
heartbeat, :mod:`resoto_tasks.worker_boot`); it now also lists the tasks the worker holds
(reserved or running). A message that is unacknowledged, older than the subscriber TTL, and held by
no live worker belonged to a dead one: it goes back to the front of its queue, at once, through
kombu's own ``restore_by_tag`` (one transaction; a message restored once is not restored twice).
So the bound is the subscriber TTL (the dead worker's heartbeat expires) plus one supervisor
period, whatever the step's timeout or the visibility timeout; the task runs again at least once,
and an account keeps its last good snapshot until an attempt commits.

Only for a Redis broker: RabbitMQ gives a dead consumer's messages back by itself.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from typing import Any

import redis
from celery import Celery

from resoto_tasks import keys
from resoto_tasks.redis_conn import client

log = logging.getLogger(__name__)


def held_task_ids() -> list[str]:
    """The tasks this worker process holds: reserved (prefetched, or waiting for an ETA) or running.

    Read in the worker's main process, where Celery keeps both sets.
    """
    from celery.worker import state

    return sorted({r.id for r in list(state.reserved_requests)} | {r.id for r in list(state.active_requests)})


def live_holdings(workers: Iterable[str], r: redis.Redis | None = None) -> tuple[set[str], set[str]]:
    """(live worker names, task ids they hold) from the workers' heartbeat documents."""
    names = sorted(workers)
    if not names:
        return set(), set()
    raws = (r or client()).mget([keys.worker_alive(n) for n in names])
    alive: set[str] = set()
    held: set[str] = set()
    for name, raw in zip(names, raws, strict=True):
        if raw is None:
            continue
        alive.add(name)
        try:
            held.update(json.loads(raw).get("tasks", []))
        except (ValueError, AttributeError):
            continue
    return alive, held


class OrphanRestorer:
    """Restores the unacknowledged messages of dead workers (see the module docstring)."""

    def __init__(self, app: Celery, grace_s: float) -> None:
        self.app = app
        self.grace_s = grace_s

    def enabled(self) -> bool:
        url = str(self.app.conf.broker_url or "")
        return url.startswith(("redis://", "rediss://", "sentinel://"))

    def restore(self, now_s: float | None = None) -> list[str]:
        """Restore what dead workers held; the task ids restored."""
        if not self.enabled():
            return []
        now = time.time() if now_s is None else now_s
        r = client()
        with self.app.pool.acquire(block=True) as conn:  # the app's pool: no new connection per tick
            channel: Any = conn.default_channel
            broker = channel.client
            old = broker.zrangebyscore(channel.unacked_index_key, "-inf", now - self.grace_s)
            if not old:
                return []
            tags = [t.decode() if isinstance(t, bytes) else str(t) for t in old]
            payloads = broker.hmget(channel.unacked_key, tags)
            workers = r.smembers(keys.workers())
            alive, held = live_holdings(workers, r)
            dead = set(workers) - alive
            if dead:
                r.srem(keys.workers(), *dead)
            restored: list[str] = []
            for tag, raw in zip(tags, payloads, strict=True):
                task_id = _task_id(raw)
                if raw is None or task_id is None or task_id in held:
                    continue
                channel.qos.restore_by_tag(tag)
                restored.append(task_id)
        if restored:
            log.warning(
                "gave %d messages of dead workers back to their queues (held by no live worker for %.0fs): %s",
                len(restored), self.grace_s, ", ".join(restored[:10]),
            )  # fmt: skip
        return restored


def _task_id(raw: bytes | str | None) -> str | None:
    if raw is None:
        return None
    try:
        message = json.loads(raw)[0]
        return str(message["headers"]["id"])
    except (ValueError, KeyError, IndexError, TypeError):
        return None
