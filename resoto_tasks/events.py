"""Events: a bounded Redis stream of everything that happened, and event-triggered workflows.

``emit(name, data)`` appends the event and starts every workflow with a matching event trigger
(the event's data must contain the trigger's filter). Actions are events too: when a step
finishes, its action name is emitted, so a workflow can start on ``post_collect``. A workflow is
never started by an event its own run emitted, which keeps a workflow from feeding itself.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from resoto_tasks import keys
from resoto_tasks.models import EventTrigger, StartResult, TriggerInfo, TriggerKind
from resoto_tasks.redis_conn import client
from resoto_tasks.settings import get_settings
from resoto_tasks.timeutil import iso, utcnow

log = logging.getLogger(__name__)


def matching_workflows(name: str, data: dict[str, Any], version: str | None = None) -> list[str]:
    """Workflows with an event trigger matching; ``version`` is the catalogue version if the
    caller already read it (saves a round trip per finished step)."""
    from resoto_tasks.workflows import catalogue

    return [
        wf.name
        for wf in catalogue.all(version).values()
        if any(isinstance(t, EventTrigger) and t.matches(name, data) for t in wf.triggers)
    ]


def emit(
    name: str,
    data: dict[str, Any] | None = None,
    source_workflow: str | None = None,
    record: bool = True,
    version: str | None = None,
) -> list[StartResult]:
    """Record the event (unless the caller already did) and start the workflows it triggers.

    Returns what each start did.
    """
    from resoto_tasks import engine

    payload = data or {}
    if record:
        client().xadd(
            keys.events(),
            {"kind": "event", "name": name, "at": iso(utcnow()) or "", "data": json.dumps(payload, default=str)},
            maxlen=get_settings().events_maxlen,
            approximate=True,
        )
    results = []
    for workflow in matching_workflows(name, payload, version):
        if workflow == source_workflow:
            continue
        trigger = TriggerInfo(kind=TriggerKind.event, details={"event": name, "data": payload})
        results.append(engine.start(workflow, trigger))
    return results


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
