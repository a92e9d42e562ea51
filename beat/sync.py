"""From workflow triggers to schedule entries: what should exist, and making Redis agree.

:func:`desired_entries` is pure: the catalogue, the paused set and the supervisor period in,
the entries out. :func:`reconcile` then adds, changes and deletes entries so Redis holds exactly
those, keeping each entry's watermark (the last slot handled) across changes so that a change
of an unrelated workflow never makes a schedule fire again or skip.

A new entry, and a paused entry that is resumed, start with the watermark *now*: a schedule
owes nothing for the time before it existed or while it was paused (no replay after resume).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from beat.entries import EntrySpec, EntryStore, StoredEntry, supervisor_spec, workflow_spec
from resoto_tasks.models import CronTrigger, IntervalTrigger, Workflow

# A score further off than this from what the watermark says is rewritten by reconcile.
SCORE_TOLERANCE_S = 0.001


def desired_entries(
    workflows: Mapping[str, Workflow], paused: Collection[str], supervisor_interval_s: float | None
) -> dict[str, EntrySpec]:
    """One entry per cron/interval trigger of every workflow, plus the supervisor's.

    ``supervisor_interval_s=None`` leaves the supervisor out (for callers that only look at
    workflow schedules).
    """
    found: dict[str, EntrySpec] = {}
    for name in sorted(workflows):
        for trigger in workflows[name].triggers:
            if isinstance(trigger, CronTrigger | IntervalTrigger):
                spec = workflow_spec(name, trigger, enabled=name not in paused)
                found[spec.name] = spec
    if supervisor_interval_s is not None:
        spec = supervisor_spec(supervisor_interval_s)
        found[spec.name] = spec
    return found


@dataclass
class SyncReport:
    """What one reconcile changed, by entry name."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    def summary(self) -> str:
        return f"added={len(self.added)} changed={len(self.changed)} removed={len(self.removed)}"


def _same_definition(stored: StoredEntry, spec: EntrySpec) -> bool:
    return bool(json.loads(stored.definition) == json.loads(spec.encoded_definition()))


def watermark_after_change(stored: StoredEntry, spec: EntrySpec, now: datetime) -> datetime:
    """The watermark an entry keeps when its definition is rewritten.

    Resuming (disabled -> enabled) moves it to ``now`` so the paused time is not replayed;
    anything else keeps it.
    """
    current = stored.handled_through or now
    if spec.enabled and not stored.enabled:
        return max(current, now)
    return current


def reconcile(store: EntryStore, desired: Mapping[str, EntrySpec], now: datetime, tz: tzinfo) -> SyncReport:
    """Make the managed entries in Redis exactly ``desired``; returns what changed."""
    report = SyncReport()
    existing = {store.name_of(k): k for k in store.managed_keys()}
    for name, spec in desired.items():
        stored = store.load(existing[name]) if name in existing else None
        if stored is None:
            store.write(spec, now, 0, tz)
            report.added.append(name)
            continue
        if not _same_definition(stored, spec):
            store.write(spec, watermark_after_change(stored, spec, now), stored.total_run_count, tz)
            report.changed.append(name)
            continue
        expected = store.score(spec, stored.handled_through or now, tz)
        actual = store.current_score(stored.key)
        if actual is None or abs(actual - expected) > SCORE_TOLERANCE_S:
            store.write(spec, stored.handled_through or now, stored.total_run_count, tz)
            report.changed.append(name)
    for name, key in existing.items():
        if name not in desired:
            store.delete(key)
            report.removed.append(name)
    return report
