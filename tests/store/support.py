"""Helpers for store tests: resources of a provider of their own."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from resoto_tasks.store import Resource
from tests.support.accounts import resource

PROVIDER = "test"
CTIME = datetime(2024, 1, 1, tzinfo=UTC)


def res(account: str, rid: str, **fields: Any) -> Resource:
    """A resource of the test provider with sensible defaults."""
    return resource(PROVIDER, CTIME, account, rid, **fields)
