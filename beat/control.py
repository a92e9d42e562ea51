"""Schedule control for people: pause, resume and list, as ``resoto-tasks schedule`` offers them.

Pause and resume write the paused hash *and* the workflow's entries, so they take effect at
once, not only at the beat's next sync; the beat arrives at the same state by itself when it
sees the paused hash change (and re-checks it right before firing a slot).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from beat import pauses, slots
from beat.entries import EntryStore, StoredEntry, trigger_text
from beat.sync import desired_entries, watermark_after_change
from resoto_tasks import runtime
from resoto_tasks.errors import ResotoError
from resoto_tasks.models import Workflow
from resoto_tasks.settings import get_settings
from resoto_tasks.timeutil import iso, utcnow
from resoto_tasks.workflows import catalogue


class NoTimeTrigger(ResotoError):
    """Pausing a workflow that has no cron or interval trigger would do nothing."""

    def __init__(self, name: str) -> None:
        super().__init__(f"workflow {name!r} has no cron or interval trigger: there is no schedule to pause")
        self.name = name


class ScheduleRow(BaseModel):
    """One time trigger of one workflow: what ``schedule list --json`` prints and the HTTP API returns."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    workflow: str
    entry: str
    trigger: dict[str, Any]
    trigger_text: str = Field(exclude=True)
    """The trigger for the table (``cron 0 * * * *``); not part of the JSON."""
    builtin: bool
    scheduled: bool
    """The beat has created its entry (False until a beat syncs a new workflow)."""
    next_due: str | None
    """The next slot not yet started (in the past when no beat is running); None while paused."""
    last_fired: dict[str, Any] | None
    last_dropped: dict[str, Any] | None
    paused: bool
    paused_note: str | None
    paused_at: str | None

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _store() -> EntryStore:
    return EntryStore(runtime.app())


def _tz() -> ZoneInfo:
    return ZoneInfo(get_settings().timezone)


def _rewrite_entries(workflow: Workflow, enabled: bool, now: datetime) -> None:
    """Write the workflow's existing entries as (dis)abled; entries not yet created are the beat's."""
    store, tz = _store(), _tz()
    paused = set() if enabled else {workflow.name}
    for spec in desired_entries({workflow.name: workflow}, paused, None).values():
        stored = store.load(store.key(spec.name))
        if stored is not None:
            store.write(spec, watermark_after_change(stored, spec, now), stored.total_run_count, tz)


def pause(name: str, note: str | None = None, now: datetime | None = None) -> pauses.PauseInfo:
    """Pause every time trigger of ``name``; nothing fires until it is resumed.

    Raises:
        UnknownWorkflow: no such workflow.
        NoTimeTrigger: it has no cron or interval trigger.
    """
    workflow = catalogue.get(name)
    if not desired_entries({name: workflow}, (), None):
        raise NoTimeTrigger(name)
    at = now or utcnow()
    info = pauses.set_paused(name, note, at)
    _rewrite_entries(workflow, enabled=False, now=at)
    return info


def resume(name: str, now: datetime | None = None) -> bool:
    """Resume ``name``'s schedule from the next slot on (the missed ones are not replayed).

    Returns False if it was not paused.

    Raises:
        UnknownWorkflow: no such workflow.
    """
    workflow = catalogue.get(name)
    was_paused = pauses.clear_paused(name)
    _rewrite_entries(workflow, enabled=True, now=now or utcnow())
    return was_paused


def _next_due(row_trigger: slots.TimeTrigger, stored: StoredEntry | None, paused: bool, now: datetime) -> str | None:
    if paused:
        return None
    mark = stored.handled_through if stored is not None and stored.enabled else None
    return iso(slots.next_slot(row_trigger, mark or now, _tz()))


def schedule_rows(now: datetime | None = None) -> list[ScheduleRow]:
    """Every time trigger of every workflow, with its entry's state."""
    at = now or utcnow()
    workflows = catalogue.all()
    paused = pauses.paused()
    store = _store()
    rows: list[ScheduleRow] = []
    for spec in desired_entries(workflows, paused.keys(), None).values():
        assert spec.workflow is not None
        stored = store.load(store.key(spec.name))
        pause_info = paused.get(spec.workflow)
        rows.append(
            ScheduleRow(
                workflow=spec.workflow,
                entry=spec.name,
                trigger=spec.trigger.model_dump(mode="json"),
                trigger_text=trigger_text(spec.trigger),
                builtin=workflows[spec.workflow].builtin,
                scheduled=stored is not None,
                next_due=_next_due(spec.trigger, stored, pause_info is not None, at),
                last_fired=stored.fired if stored else None,
                last_dropped=stored.dropped if stored else None,
                paused=pause_info is not None,
                paused_note=pause_info.note if pause_info else None,
                paused_at=pause_info.at if pause_info else None,
            )
        )
    return rows
