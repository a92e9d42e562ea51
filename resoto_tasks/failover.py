"""Waiting out a failover: bounded retries everywhere, and one line for whoever waits.

When the primary dies, the sentinels promote a replica within a few seconds (measured here: about
3.3 s with ``down-after-milliseconds 2000``; a publish succeeds again after about 6 s). A producer
that gives up at the first refused connection loses the run it was starting, so every client that
writes (our redis-py clients, Celery's publishes) retries for up to ``RESOTO_REDIS_FAILOVER_WAIT_S``,
through the libraries' own retry mechanisms, never a loop of ours:

* redis-py: a :class:`redis.retry.Retry` whose backoff (:class:`AnnouncingBackoff`) tells the
  listeners on each failure;
* kombu: Celery's ``task_publish_retry_policy`` (:func:`publish_retry_policy`), whose ``errback``
  does the same.

A listener (the CLI registers one) hears ``waiting for a new primary`` while it is waiting, so a
person sees a line instead of a frozen prompt, and never a traceback.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from typing import Any

from redis.backoff import AbstractBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

log = logging.getLogger(__name__)

RETRY_STEP_S = 0.5
"""Between two attempts while waiting: short against a failover of a few seconds."""

Listener = Callable[[str], None]
"""Called with what failed: one line, no secrets."""

_lock = threading.Lock()
_listeners: list[Listener] = []


def on_waiting(listener: Listener) -> None:
    """Call ``listener`` whenever a client of this process waits for the primary (or the broker)."""
    with _lock:
        _listeners.append(listener)


def clear_listeners() -> None:
    with _lock:
        _listeners.clear()


def _announce(reason: str) -> None:
    with _lock:
        listeners = list(_listeners)
    if not listeners:
        log.warning("waiting for a new Redis primary: %s", reason)
    for listener in listeners:
        listener(reason)


class AnnouncingBackoff(AbstractBackoff):  # type: ignore[misc]  # redis-py is not followed by mypy
    """A constant step between attempts, telling the listeners about every failure."""

    def __init__(self, step_s: float, wait_s: float) -> None:
        self.step_s = step_s
        self.wait_s = wait_s

    def reset(self) -> None:
        """Nothing to reset: the step is constant."""

    def compute(self, failures: int) -> float:
        _announce(f"the primary does not answer (attempt {failures}, waiting up to {self.wait_s:g}s in all)")
        return self.step_s


def redis_retry(wait_s: float) -> Retry:
    """Retries of a redis-py client: connection errors and timeouts, ``wait_s / 0.5`` of them.

    Counted, not timed (redis-py's ``Retry`` counts): about ``wait_s`` while connections are refused,
    as they are during a failover; against an address that does not answer at all each attempt may
    also spend the client's connect timeout (5 s).
    """
    retries = max(1, math.ceil(wait_s / RETRY_STEP_S))
    return Retry(AnnouncingBackoff(RETRY_STEP_S, wait_s), retries, (RedisConnectionError, RedisTimeoutError, OSError))


def publish_retry_policy(wait_s: float) -> dict[str, Any]:
    """Celery's ``task_publish_retry_policy`` for about ``wait_s`` of retries (kombu's ``ensure``).

    Intervals 0, 0.5, 1, 1, ... s: a publish that failed on a connection to the dead primary is
    tried again at once, then every second until ``wait_s`` is spent.
    """
    interval_max = 1.0
    return {
        "max_retries": max(3, math.ceil(wait_s / interval_max) + 1),
        "interval_start": 0,
        "interval_step": RETRY_STEP_S,
        "interval_max": interval_max,
        "errback": _publish_failed,
    }


def _publish_failed(exc: BaseException, interval: float) -> None:
    text = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    _announce(f"a publish failed ({text}); retrying in {interval:.1f}s")
