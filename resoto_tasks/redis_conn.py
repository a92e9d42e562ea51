"""Redis connections for the store side of resoto-tasks (not the broker), and URL masking.

One pool per URL per process: redis-py pools are thread-safe, and prefork children get
their own after fork because the cache is keyed on the process id. With Redis Sentinel the default
client is the primary the sentinels name (:mod:`resoto_tasks.sentinel`), which retries through a
failover for up to ``RESOTO_REDIS_FAILOVER_WAIT_S``.
"""

from __future__ import annotations

import os
import threading

import redis

from resoto_tasks.errors import RedisUnavailable
from resoto_tasks.sentinel import SentinelTarget
from resoto_tasks.settings import get_settings
from resoto_tasks.urls import mask_url

__all__ = ["check", "client", "describe", "mask_url", "where"]

CLIENT_OPTIONS: dict[str, object] = {
    "decode_responses": True,
    "socket_connect_timeout": 5,
    "socket_timeout": 30,
    "health_check_interval": 30,
    "retry_on_timeout": True,
}

_lock = threading.Lock()
_clients: dict[tuple[int, str], redis.Redis] = {}


def client(url: str | None = None) -> redis.Redis:
    """A shared client for ``url`` (default: the store's Redis), decoding responses to ``str``."""
    sentinel = _store_sentinel() if url is None else None
    target = url or get_settings().store
    key = (os.getpid(), sentinel.where() if sentinel else target)
    with _lock:
        found = _clients.get(key)
        if found is None:
            if sentinel is not None:
                found = sentinel.master_client(**CLIENT_OPTIONS)
            else:
                found = redis.Redis.from_url(target, **CLIENT_OPTIONS)
            _clients[key] = found
        return found


def _store_sentinel() -> SentinelTarget | None:
    settings = get_settings()
    return SentinelTarget.of(settings) if settings.uses_sentinel(settings.store_url) else None


def where(url: str | None = None) -> str:
    """The store's Redis (or ``url``) as messages name it: password masked, sentinels named."""
    sentinel = _store_sentinel() if url is None else None
    return sentinel.where() if sentinel else mask_url(url or get_settings().store)


def reset_clients() -> None:
    """Forget every pooled client (tests restart Redis; settings may change between them)."""
    with _lock:
        for c in _clients.values():
            c.close()
        _clients.clear()


def check(url: str | None = None) -> None:
    """Ping Redis; raise :class:`RedisUnavailable` with a masked URL and the reason.

    Raises:
        RedisUnavailable: the server does not answer, refuses the password, or the URL is bad.
    """
    target = url or get_settings().store
    try:
        client(url).ping()
    except (redis.exceptions.RedisError, OSError, ValueError) as exc:
        raise RedisUnavailable(where(url), describe(exc, target)) from None


def describe(exc: BaseException, url: str | None = None) -> str:
    """A one-line reason for a Redis error, with no secrets in it.

    With ``url``: a ``rediss://`` server that does not answer the TLS handshake (a plain Redis)
    shows only as a timeout, so the reason says what to check.
    """
    if url is not None and url.startswith("rediss://") and isinstance(exc, redis.exceptions.TimeoutError):
        return f"{describe(exc)} (rediss:// needs a server with TLS enabled; is it a plain Redis?)"
    if isinstance(exc, redis.exceptions.AuthenticationError):
        return "authentication failed (wrong or missing password)"
    if isinstance(exc, redis.exceptions.ResponseError) and "NOAUTH" in str(exc):
        return "authentication required (no password in the URL)"
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]
