"""The resource store: collected resources per (provider, account) in Redis.

* :class:`ResourceStore` reads, indexes, counts, marks and deletes resources; hooks use it too.
* :class:`SnapshotWriter` (from :meth:`ResourceStore.snapshot_writer`) writes an account's next
  snapshot beside the live one and swaps it in atomically.
* :mod:`resoto_tasks.store.expiry` derives expiry from tags (Resoto's rules).
* :mod:`resoto_tasks.store.keys` owns every Redis key of the store.
"""

from __future__ import annotations

from resoto_tasks.store.errors import SnapshotClosed, StagingLost, StoreConflict, StoreError, WrongAccount
from resoto_tasks.store.expiry import Expiry, expires_at, expiry_status, is_expired
from resoto_tasks.store.resources import (
    AccountSnapshot,
    AccountStats,
    ExpiredEntry,
    GroupStats,
    Mark,
    Resource,
    ResourceRef,
    ResourceView,
    StoreCounts,
)
from resoto_tasks.store.store import ResourceStore
from resoto_tasks.store.writer import SnapshotWriter

__all__ = [
    "AccountSnapshot",
    "AccountStats",
    "ExpiredEntry",
    "Expiry",
    "GroupStats",
    "Mark",
    "Resource",
    "ResourceRef",
    "ResourceStore",
    "ResourceView",
    "SnapshotClosed",
    "SnapshotWriter",
    "StagingLost",
    "StoreConflict",
    "StoreCounts",
    "StoreError",
    "WrongAccount",
    "expires_at",
    "expiry_status",
    "is_expired",
]
