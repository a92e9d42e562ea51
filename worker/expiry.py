"""Expiry from tags, for the actors (the planner, hooks).

The implementation lives in :mod:`resoto_tasks.store.expiry` because the store indexes expiry when a
snapshot is written and the core never imports ``worker/`` (DESIGN §4); this module is the worker's
entry point to the same rules, so both sides always agree on what is expired.
"""

from __future__ import annotations

from resoto_tasks.store.expiry import (
    EXPIRATION_TAGS,
    EXPIRES_TAG,
    Expiry,
    expires_at,
    expiry_status,
    is_expired,
    parse_duration_s,
    parse_timestamp,
)

__all__ = [
    "EXPIRATION_TAGS",
    "EXPIRES_TAG",
    "Expiry",
    "expires_at",
    "expiry_status",
    "is_expired",
    "parse_duration_s",
    "parse_timestamp",
]
