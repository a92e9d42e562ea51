"""Shared helpers of the store benchmarks: is the store there, and the data they write.

The store benchmarks use only the committed store API (:class:`ResourceStore`,
:class:`SnapshotWriter`) and the example provider; they run the same code a collect or a
planner runs, without the actions around it.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

PROVIDER = "bench"
EXPIRED_TAG = "resoto:expires"


def store_unavailable() -> str | None:
    """Why the store benchmarks cannot run (a missing module or name), or ``None``."""
    wanted = {
        "resoto_tasks.store": ("ResourceStore", "SnapshotWriter", "Resource"),
        "worker.providers.example": ("ExampleProvider", "ExampleSettings"),
    }
    for module, names in wanted.items():
        try:
            found = importlib.import_module(module)
        except ImportError as exc:
            return f"{module} cannot be imported ({exc})"
        missing = [n for n in names if not hasattr(found, n)]
        if missing:
            return f"{module} has no {', '.join(missing)}"
    return None


def flush(r: Any) -> None:
    """Empty the private benchmark Redis between phases (never the shared one: see infra)."""
    r.flushdb()


def synthetic(account: str, n: int, expired_every: int, now: datetime) -> Iterator[Any]:
    """``n`` resources of one account; every ``expired_every``-th carries an expiry in the past,
    every 31st one in the future, the rest none (the planner must skip them cheaply).

    Built with ``model_construct`` (the values are valid by construction): generating a million
    validated models would take longer than what is measured.
    """
    from resoto_tasks.store import Resource

    past = (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    future = (now + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    ctime = now - timedelta(days=40)
    kinds = ("instance", "volume", "bucket", "subnet")
    regions = ("us-east-1", "eu-central-1")
    for i in range(n):
        tags = {"owner": "team-a", "stage": "prod"}
        if i % expired_every == 0:
            tags[EXPIRED_TAG] = past
        elif i % 31 == 0:
            tags[EXPIRED_TAG] = future
        yield Resource.model_construct(
            id=f"r-{i:08x}",
            kind=kinds[i % 4],
            name=f"res-{i}",
            account=account,
            region=regions[i % 2],
            ctime=ctime,
            tags=tags,
            provider=PROVIDER,
            attrs={"hourly_cost": 0.01},
            depends_on=[],
            protected=False,
        )


def utcnow() -> datetime:
    return datetime.now(UTC)
