"""The per-run cleanup ledger: every decision the cleaner made, one entry per resource.

Entries move from ``planned`` to ``deleted``, ``skipped`` (with the reason: protected, dry run,
cap, failed collect, dependent kept, gone) or ``failed`` (with the provider's error). Each entry is
written as the decision is taken, so a worker dying between waves leaves a ledger that still
accounts for every deletion it made. The ledger belongs to the run record (``runs show``).
"""

from __future__ import annotations

from collections import Counter
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from resoto_tasks import keys, runs
from resoto_tasks.redis_conn import client
from resoto_tasks.timeutil import iso, utcnow

WRITE_BATCH = 5_000


class Decision(StrEnum):
    planned = "planned"
    """Marked and considered for deletion in this run; nothing decided yet."""
    deleted = "deleted"
    skipped = "skipped"
    failed = "failed"


class Entry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str
    account: str
    id: str
    kind: str = ""
    name: str = ""
    decision: Decision
    reason: str = ""
    mark_reason: str = ""
    at: str = ""

    @property
    def key(self) -> str:
        return f"{self.provider}/{self.account}/{self.id}"


def record(run_id: str, entries: list[Entry]) -> None:
    """Write (or overwrite) entries, in batches, stamped with the time of the decision."""
    if not entries:
        return
    r = client()
    now = iso(utcnow()) or ""
    for start in range(0, len(entries), WRITE_BATCH):
        batch = entries[start : start + WRITE_BATCH]
        pipe = r.pipeline(transaction=False)
        pipe.hset(
            keys.run_ledger(run_id),
            mapping={e.key: e.model_copy(update={"at": e.at or now}).model_dump_json() for e in batch},
        )
        pipe.expire(keys.run_ledger(run_id), runs.retention_s())
        pipe.execute()


def entries(run_id: str) -> list[Entry]:
    """Every entry of the run's ledger (read with HSCAN: a large cleanup has many)."""
    found = [Entry.model_validate_json(v) for _, v in client().hscan_iter(keys.run_ledger(run_id), count=5_000)]
    return sorted(found, key=lambda e: (e.provider, e.account, e.id))


class Summary(BaseModel):
    """A run's ledger as ``runs show --json`` and ``GET /api/v1/runs/{id}`` show it: totals by
    decision and by skip reason, and (unless left out) every entry."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    totals: dict[str, int]
    skipped_by_reason: dict[str, int]
    entries: list[Entry] | None = None


def read_summary(run_id: str, with_entries: bool = True) -> Summary | None:
    """The run's ledger summary; ``None`` if the run cleaned nothing."""
    found = entries(run_id)
    if not found:
        return None
    totals = Counter(e.decision.value for e in found)
    skipped = Counter(e.reason for e in found if e.decision == Decision.skipped)
    return Summary(totals=dict(totals), skipped_by_reason=dict(skipped), entries=found if with_entries else None)


def summary(run_id: str, with_entries: bool = True) -> dict[str, Any] | None:
    """:func:`read_summary` as JSON (without ``entries`` when they are left out)."""
    found = read_summary(run_id, with_entries)
    return found.model_dump(mode="json", exclude_none=True) if found is not None else None
