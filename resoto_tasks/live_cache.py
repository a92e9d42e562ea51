"""The live subscriptions a process read last, kept until the registry changes or ages out.

Every step transition needs the live subscriptions (whom to send the next step to), and they
change rarely: a worker starts or stops, while heartbeats only push their holders' expiry on. So
a process keeps what it read together with the registry's version (``keys.subscriptions_version``,
changed whenever a subscription is added or dropped) and reads the members again only when the
version moved or its copy is older than a quarter of the subscriber TTL. The version is read in
the same ``MGET`` as the run record, so a step transition reads with one command, not two.

Why a quarter of the TTL: a holder renews at least every quarter TTL (the worker's heartbeat), so
a copy read at time *f* holds expiries of at least *f* + ¾ TTL. Used until *f* + ¼ TTL it never
takes a live holder for dead, with half a TTL to spare for a late heartbeat; a dead holder's
entries expire from the copy by their own score, as they do in Redis.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import redis

from resoto_tasks.subscribers import Entry

__all__ = ["Copy", "LiveCache", "for_client"]


@dataclass(frozen=True)
class Copy:
    """The registry's members as one read saw them."""

    version: str | None
    read_ms: int
    entries: tuple[Entry, ...]


class LiveCache:
    """One process's copy of one registry (one Redis server, one key prefix)."""

    def __init__(self, max_age_ms: int) -> None:
        self.max_age_ms = max_age_ms
        self._copy: Copy | None = None

    def aged(self, at_ms: int) -> bool:
        """Whether the copy is too old to use at ``at_ms`` whatever the version (or missing)."""
        found = self._copy
        return found is None or not 0 <= at_ms - found.read_ms < self.max_age_ms

    def entries(self, version: str | None, at_ms: int) -> tuple[Entry, ...] | None:
        """The copy's entries if it may still be used at ``at_ms`` under ``version``."""
        found = self._copy
        if found is None or found.version != version or self.aged(at_ms):
            return None
        return found.entries

    def keep(self, version: str | None, read_ms: int, entries: list[Entry]) -> tuple[Entry, ...]:
        """Keep what a read under ``version`` found (its version read before its members)."""
        kept = tuple(entries)
        self._copy = Copy(version, read_ms, kept)
        return kept


_lock = threading.Lock()
_caches: dict[tuple[int, int, str], tuple[redis.ConnectionPool, LiveCache]] = {}


def for_client(r: redis.Redis, registry_key: str, max_age_ms: int) -> LiveCache:
    """This process's cache of the registry at ``registry_key`` on ``r``'s server.

    Keyed by process (a forked child reads for itself), connection pool (tests and ``up`` switch
    servers) and key (the key prefix); the pool is held so its identity is not reused.
    """
    pool = r.connection_pool
    key = (os.getpid(), id(pool), registry_key)
    with _lock:
        found = _caches.get(key)
        if found is None:
            found = (pool, LiveCache(max_age_ms))
            _caches[key] = found
        return found[1]


def forget() -> None:
    """Drop every copy (the composition root resets)."""
    with _lock:
        _caches.clear()
