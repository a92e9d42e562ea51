"""Redis connections for the store side of resoto-tasks (not the broker), and URL masking.

One pool per URL per process: redis-py pools are thread-safe, and prefork children get
their own after fork because the cache is keyed on the process id.
"""

from __future__ import annotations

import os
import threading

import redis

from resoto_tasks.errors import RedisUnavailable
from resoto_tasks.settings import get_settings
from resoto_tasks.urls import mask_url

__all__ = ["check", "client", "describe", "mask_url"]

_lock = threading.Lock()
_clients: dict[tuple[int, str], redis.Redis] = {}


def client(url: str | None = None) -> redis.Redis:
    """A shared client for ``url`` (default: the store URL), decoding responses to ``str``."""
    target = url or get_settings().store
    key = (os.getpid(), target)
    with _lock:
        found = _clients.get(key)
        if found is None:
            found = redis.Redis.from_url(
                target,
                decode_responses=True,
                socket_connect_timeout=5,
                socket_timeout=30,
                health_check_interval=30,
                retry_on_timeout=True,
            )
            _clients[key] = found
        return found


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
        client(target).ping()
    except (redis.exceptions.RedisError, OSError, ValueError) as exc:
        raise RedisUnavailable(mask_url(target), describe(exc, target)) from None


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
