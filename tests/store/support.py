"""Helpers for store tests (not in conftest.py: importing resoto_tasks there would read the settings
before ``tests/conftest.py`` points them at the private Redis, when pytest is given this directory)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from resoto_tasks.store import Resource

PROVIDER = "test"
CTIME = datetime(2024, 1, 1, tzinfo=UTC)


def res(account: str, rid: str, **fields: Any) -> Resource:
    """A resource of the test provider with sensible defaults."""
    values: dict[str, Any] = {
        "id": rid,
        "kind": "instance",
        "name": rid,
        "account": account,
        "region": "us-east-1",
        "ctime": CTIME,
        "provider": PROVIDER,
    }
    values.update(fields)
    return Resource(**values)
