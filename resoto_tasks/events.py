"""Events: a bounded Redis stream of what happened, and which workflows an event triggers.

Recording and matching only: starting what an event triggers is the engine's
(:meth:`resoto_tasks.engine.Engine.emit` for an event someone emits, a ``start`` task on the
``workflow`` queue for a finished action or run), so the engine never calls itself. An action is
an event too: when a step finishes, its action name is matched, so a workflow can start on
``post_collect``. The event's data must contain every key/value of the trigger's filter.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from resoto_tasks import keys
from resoto_tasks.models import EventTrigger, Workflow
from resoto_tasks.redis_conn import client
from resoto_tasks.settings import get_settings
from resoto_tasks.timeutil import iso, utcnow


def matching(name: str, data: Mapping[str, Any], workflows: Mapping[str, Workflow]) -> list[str]:
    """The workflows with an event trigger that matches, by name."""
    return sorted(
        wf.name
        for wf in workflows.values()
        if any(isinstance(t, EventTrigger) and t.matches(name, dict(data)) for t in wf.triggers)
    )


def record(name: str, data: Mapping[str, Any]) -> None:
    """Append an emitted event to the stream (transitions append their own entries)."""
    client().xadd(
        keys.events(),
        {"kind": "event", "name": name, "at": iso(utcnow()) or "", "data": json.dumps(dict(data), default=str)},
        maxlen=get_settings().events_maxlen,
        approximate=True,
    )


def recent(count: int = 100) -> list[dict[str, Any]]:
    """The newest ``count`` entries of the stream, oldest first."""
    entries = client().xrevrange(keys.events(), count=count)
    found = []
    for entry_id, fields in reversed(entries):
        item: dict[str, Any] = {"id": entry_id, **fields}
        if "data" in item:
            item["data"] = json.loads(item["data"])
        found.append(item)
    return found
