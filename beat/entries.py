"""Schedule entries: what the beat fires, and how each is kept in Redis in redbeat's format.

One entry per time trigger of a workflow (named ``wf:<workflow>:<digest of the trigger>``, so
changing a trigger replaces its entry and reordering triggers changes nothing), plus
``supervisor`` for the periodic supervisor task.

Each entry is a redbeat entry under ``redbeat_key_prefix`` (``{p}:beat:``), so redbeat's own
tools (``RedBeatSchedulerEntry.from_key``) read it:

=====================  ======  ===============================================================
key / field            type    meaning
=====================  ======  ===============================================================
``{p}:beat::schedule``  zset   entry key -> when it is next due (UNIX s); -1 while paused
``{p}:beat:<name>``     hash   ``definition``: redbeat JSON (task, kwargs, options, schedule,
                               enabled); ``meta``: ``last_run_at`` = every slot up to here was
                               started or dropped (the watermark), ``total_run_count``;
                               ``fired`` / ``dropped``: JSON of the last slot started / dropped
=====================  ======  ===============================================================

The ``schedule`` in the definition is informational (a crontab, or an interval for the rare cron
expression celery cannot express): the slots come from the trigger, in :mod:`beat.slots`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

from celery import Celery
from celery.schedules import crontab, schedule
from redbeat.decoder import RedBeatJSONDecoder, RedBeatJSONEncoder
from redbeat.schedulers import ensure_conf, get_redis

from beat import slots
from beat.slots import TimeTrigger
from resoto_tasks.models import CronTrigger, IntervalTrigger, TriggerKind
from resoto_tasks.routing import WORKFLOW
from resoto_tasks.timeutil import iso

START_TASK = "resoto.workflow.start"
SUPERVISE_TASK = "resoto.workflow.supervise"
SUPERVISOR_ENTRY = "supervisor"
WORKFLOW_ENTRY_PREFIX = "wf:"
PAUSED_SCORE = -1.0
"""redbeat skips entries with a negative score, and so does our due query."""


def entry_name(workflow: str, trigger: TimeTrigger) -> str:
    """``wf:<workflow>:<10 hex digits of the trigger>``: stable for as long as the trigger is."""
    canonical = json.dumps(trigger.model_dump(mode="json"), sort_keys=True)
    return f"{WORKFLOW_ENTRY_PREFIX}{workflow}:{hashlib.sha1(canonical.encode()).hexdigest()[:10]}"


def is_managed(name: str) -> bool:
    """Entries this package owns; any other redbeat entry is left to redbeat."""
    return name.startswith(WORKFLOW_ENTRY_PREFIX) or name == SUPERVISOR_ENTRY


def trigger_text(trigger: TimeTrigger) -> str:
    if isinstance(trigger, CronTrigger):
        return f"cron: {trigger.cron}"
    return f"interval: {trigger.interval}"


def celery_schedule(trigger: TimeTrigger) -> crontab | schedule:
    """The closest celery schedule, for redbeat's definition (the slots never come from it)."""
    if isinstance(trigger, IntervalTrigger):
        return schedule(run_every=timedelta(milliseconds=slots.interval_ms(trigger)))
    minute, hour, day_of_month, month_of_year, day_of_week = trigger.cron.split()
    try:
        return crontab(
            minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year, day_of_week=day_of_week
        )
    except ValueError:  # croniter accepts ``L``, ``#`` and ``7``; celery's crontab does not
        first = slots.next_slot(trigger, slots.EPOCH)
        return schedule(run_every=slots.next_slot(trigger, first) - first)


@dataclass(frozen=True, slots=True)
class EntrySpec:
    """One entry as the catalogue and the paused set say it should be."""

    name: str
    task: str
    trigger: TimeTrigger
    workflow: str | None = None
    """``None`` for the supervisor entry."""
    enabled: bool = True
    """False while the workflow's schedule is paused."""

    def base_kwargs(self) -> dict[str, Any]:
        if self.workflow is None:
            return {}
        details = {"trigger": self.trigger.model_dump(mode="json")}
        return {"name": self.workflow, "trigger": {"kind": TriggerKind.time.value, "details": details}}

    def message_kwargs(self, slot: datetime, missed: int) -> dict[str, Any]:
        """The keyword arguments of the start message for ``slot`` (a fresh dict every call)."""
        kwargs = self.base_kwargs()
        if self.workflow is None:
            return kwargs
        slot_iso = iso(slot)
        kwargs["trigger"]["details"].update({"slot": slot_iso, "missed_slots": missed})
        kwargs["slot"] = slot_iso
        return kwargs

    def definition(self) -> dict[str, Any]:
        """redbeat's ``definition`` document for this entry."""
        return {
            "name": self.name,
            "task": self.task,
            "args": [],
            "kwargs": self.base_kwargs(),
            "options": {"queue": WORKFLOW},
            "schedule": celery_schedule(self.trigger),
            "enabled": self.enabled,
        }

    def encoded_definition(self) -> str:
        return json.dumps(self.definition(), cls=RedBeatJSONEncoder)


def workflow_spec(workflow: str, trigger: TimeTrigger, enabled: bool) -> EntrySpec:
    return EntrySpec(entry_name(workflow, trigger), START_TASK, trigger, workflow, enabled)


def supervisor_spec(interval_s: float) -> EntrySpec:
    return EntrySpec(SUPERVISOR_ENTRY, SUPERVISE_TASK, IntervalTrigger(interval=interval_s))


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """An entry as Redis has it."""

    key: str
    name: str
    definition: str
    enabled: bool
    handled_through: datetime | None
    total_run_count: int
    fired: dict[str, Any] | None
    dropped: dict[str, Any] | None


def _json_or_none(raw: str | None) -> dict[str, Any] | None:
    if not raw:
        return None
    value = json.loads(raw)
    return value if isinstance(value, dict) else None


# Passed to redis-py by redbeat. Set here when the app does not: without it redbeat 2.4.2 falls
# back to the broker's transport options and logs a deprecation warning in every process.
REDBEAT_REDIS_OPTIONS: dict[str, Any] = {"socket_connect_timeout": 5, "health_check_interval": 30}


def redbeat_conf(app: Celery) -> Any:
    """redbeat's configuration of ``app`` (created on first use, as redbeat itself does)."""
    if app.conf.get("redbeat_redis_options") is None:
        app.conf.redbeat_redis_options = dict(REDBEAT_REDIS_OPTIONS)
    return ensure_conf(app)


class EntryStore:
    """The one place that reads and writes schedule entries (through redbeat's Redis client)."""

    def __init__(self, app: Celery) -> None:
        conf = redbeat_conf(app)
        self.redis: Any = get_redis(app)
        self.prefix: str = conf.key_prefix
        self.schedule_key: str = conf.schedule_key

    def key(self, name: str) -> str:
        return self.prefix + name

    def name_of(self, key: str) -> str:
        return key[len(self.prefix) :] if key.startswith(self.prefix) else key

    def managed_keys(self) -> list[str]:
        """Every managed entry in the schedule (paused ones included), read with ZSCAN."""
        found = (k for k, _ in self.redis.zscan_iter(self.schedule_key))
        return sorted(k for k in found if is_managed(self.name_of(k)))

    def due_keys(self, now: datetime) -> list[str]:
        """Entries due at ``now`` (paused ones have a negative score and never are)."""
        return list(self.redis.zrangebyscore(self.schedule_key, 0, now.timestamp()))

    def next_score(self, now: datetime) -> float | None:
        """When the first entry not yet due falls due (UNIX s)."""
        found = self.redis.zrangebyscore(
            self.schedule_key, f"({now.timestamp()}", "+inf", start=0, num=1, withscores=True
        )
        return float(found[0][1]) if found else None

    def current_score(self, key: str) -> float | None:
        found = self.redis.zscore(self.schedule_key, key)
        return None if found is None else float(found)

    def load(self, key: str) -> StoredEntry | None:
        definition, meta, fired, dropped = self.redis.hmget(key, "definition", "meta", "fired", "dropped")
        if not definition:
            return None
        enabled = bool(json.loads(definition).get("enabled", True))
        decoded = json.loads(meta, cls=RedBeatJSONDecoder) if meta else {}
        last = decoded.get("last_run_at")
        return StoredEntry(
            key=key,
            name=self.name_of(key),
            definition=definition,
            enabled=enabled,
            handled_through=last if isinstance(last, datetime) else None,
            total_run_count=int(decoded.get("total_run_count") or 0),
            fired=_json_or_none(fired),
            dropped=_json_or_none(dropped),
        )

    @staticmethod
    def score(spec: EntrySpec, handled_through: datetime, tz: tzinfo) -> float:
        if not spec.enabled:
            return PAUSED_SCORE
        return slots.next_slot(spec.trigger, handled_through, tz).timestamp()

    def write(self, spec: EntrySpec, handled_through: datetime, total_run_count: int, tz: tzinfo) -> None:
        """Store the definition and the watermark, and file the entry under its next due time."""
        meta = {"last_run_at": handled_through, "total_run_count": total_run_count}
        key = self.key(spec.name)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                key,
                mapping={
                    "definition": spec.encoded_definition(),
                    "meta": json.dumps(meta, cls=RedBeatJSONEncoder),
                },
            )
            pipe.zadd(self.schedule_key, {key: self.score(spec, handled_through, tz)})
            pipe.execute()

    def advance(
        self,
        spec: EntrySpec,
        stored: StoredEntry,
        decision: slots.Decision,
        tz: tzinfo,
        note: dict[str, Any] | None = None,
    ) -> None:
        """Move the watermark to ``decision.handled_through`` and record what happened to the slot."""
        fired = decision.fire is not None
        meta = {
            "last_run_at": decision.handled_through,
            "total_run_count": stored.total_run_count + (1 if fired else 0),
        }
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(stored.key, "meta", json.dumps(meta, cls=RedBeatJSONEncoder))
            if note is not None:
                pipe.hset(stored.key, "fired" if fired else "dropped", json.dumps(note))
            pipe.zadd(self.schedule_key, {stored.key: self.score(spec, decision.handled_through, tz)})
            pipe.execute()

    def park(self, key: str) -> None:
        """Take an entry out of the due query (a paused entry that still had a due score)."""
        self.redis.zadd(self.schedule_key, {key: PAUSED_SCORE})

    def delete(self, key: str) -> None:
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self.schedule_key, key)
            pipe.delete(key)
            pipe.execute()
