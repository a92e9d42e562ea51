"""The paused schedules: ``{p}:schedule:paused`` (hash, workflow -> JSON ``{note, at}``).

Kept in the store (not in redbeat's entries) so a pause outlives the entries: a workflow removed
and added again, or a trigger changed, stays paused until someone resumes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from resoto_tasks import keys
from resoto_tasks.redis_conn import client
from resoto_tasks.timeutil import iso


@dataclass(frozen=True, slots=True)
class PauseInfo:
    """Why and since when a workflow's schedule is paused."""

    note: str | None
    at: str | None

    def as_json(self) -> dict[str, str | None]:
        return {"note": self.note, "at": self.at}


def _decode(raw: str) -> PauseInfo:
    try:
        value = json.loads(raw)
    except ValueError:  # written by hand: still paused, the text is the note
        return PauseInfo(note=raw or None, at=None)
    if not isinstance(value, dict):
        return PauseInfo(note=str(value), at=None)
    note, at = value.get("note"), value.get("at")
    return PauseInfo(note=str(note) if note is not None else None, at=str(at) if at is not None else None)


def paused() -> dict[str, PauseInfo]:
    """Every paused workflow (the hash holds one field per paused workflow: small)."""
    return {name: _decode(raw) for name, raw in client().hgetall(keys.schedule_paused()).items()}


def is_paused(name: str) -> bool:
    return bool(client().hexists(keys.schedule_paused(), name))


def set_paused(name: str, note: str | None, at: datetime) -> PauseInfo:
    info = PauseInfo(note=note, at=iso(at))
    client().hset(keys.schedule_paused(), name, json.dumps(info.as_json()))
    return info


def clear_paused(name: str) -> bool:
    """True if the workflow was paused."""
    return bool(client().hdel(keys.schedule_paused(), name))
