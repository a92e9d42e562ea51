"""Slot arithmetic: when a time trigger is due, computed from the schedule alone.

A *slot* is one due time of a trigger. It is derived from the trigger and the clock only, never
from when a beat happened to wake up, so two beats, a restarted beat and a redelivered message
all name the same slot the same way; the engine's slot key (workflow + slot) then starts it once.

* ``cron``: the times the expression matches in the configured time zone (``RESOTO_TIMEZONE``,
  default UTC); croniter decides what a time that a DST change skips or repeats means.
* ``interval``: multiples of the interval since the Unix epoch (UTC), in whole milliseconds, so
  a ``5s`` trigger is due at :00, :05, :10, ... whichever process computes it.

:func:`decide` is the step function of one entry: given the last slot already handled and the
time now, which slot to start (at most one: the most recent), which to drop as too old, and when
to look again. Tests call it with any clock they like.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from croniter import croniter

from resoto_tasks.models import CronTrigger, IntervalTrigger

TimeTrigger = CronTrigger | IntervalTrigger

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MS = timedelta(milliseconds=1)
# Counting missed slots is only for the log line; a long downtime of a per-minute cron must not
# make the beat iterate over hundreds of thousands of them.
MISSED_COUNT_CAP = 1000


def interval_ms(trigger: IntervalTrigger) -> int:
    """The interval in whole milliseconds (at least 1), the unit the slot grid is built in."""
    return max(1, round(trigger.interval_s * 1000))


def _ms(at: datetime) -> int:
    return (at - EPOCH) // ONE_MS


def latest_slot(trigger: TimeTrigger, at: datetime, tz: tzinfo = UTC) -> datetime:
    """The most recent due time at or before ``at`` (UTC)."""
    if isinstance(trigger, IntervalTrigger):
        period = interval_ms(trigger)
        return EPOCH + (_ms(at) // period * period) * ONE_MS
    before = croniter(trigger.cron, at.astimezone(tz)).get_prev(datetime)
    # croniter's get_prev is strictly before ``at``; ``at`` itself may be a slot.
    after = croniter(trigger.cron, before).get_next(datetime)
    found: datetime = after if after <= at else before
    return found.astimezone(UTC)


def next_slot(trigger: TimeTrigger, after: datetime, tz: tzinfo = UTC) -> datetime:
    """The first due time strictly after ``after`` (UTC)."""
    if isinstance(trigger, IntervalTrigger):
        period = interval_ms(trigger)
        return EPOCH + ((_ms(after) // period + 1) * period) * ONE_MS
    found: datetime = croniter(trigger.cron, after.astimezone(tz)).get_next(datetime)
    if found <= after:  # defensive: sub-second ``after`` on a slot boundary
        found = croniter(trigger.cron, found).get_next(datetime)
    return found.astimezone(UTC)


def count_between(trigger: TimeTrigger, after: datetime, before: datetime, tz: tzinfo = UTC) -> int:
    """How many slots lie strictly between ``after`` and ``before`` (capped at MISSED_COUNT_CAP)."""
    if before <= after:
        return 0
    if isinstance(trigger, IntervalTrigger):
        period = interval_ms(trigger)
        first = _ms(after) // period + 1
        last = -(-_ms(before) // period) - 1  # the last grid point strictly before ``before``
        return max(0, min(MISSED_COUNT_CAP, last - first + 1))
    count = 0
    cursor = next_slot(trigger, after, tz)
    while cursor < before and count < MISSED_COUNT_CAP:
        count += 1
        cursor = next_slot(trigger, cursor, tz)
    return count


@dataclass(frozen=True, slots=True)
class Decision:
    """What one entry does at one instant."""

    fire: datetime | None
    """The slot to start now (the most recent one due), or None."""
    dropped: datetime | None
    """A due slot not started because it is older than the grace."""
    missed: int
    """Earlier due slots passed over (never replayed): only the most recent one counts."""
    handled_through: datetime
    """The new watermark: every slot up to here has been started or dropped."""
    next_due: datetime
    """When the next slot after the watermark falls due."""


def decide(
    trigger: TimeTrigger,
    handled_through: datetime | None,
    now: datetime,
    grace_s: float | None,
    tz: tzinfo = UTC,
) -> Decision:
    """Which slot (if any) to start at ``now``, given every slot up to ``handled_through`` is done.

    Only the most recent due slot is ever started: after a downtime the earlier ones are passed
    over (counted in ``missed``), so a stopped beat comes back with at most one catch-up run.
    That slot is dropped as well when it is older than ``grace_s`` (``None``: no limit).
    A missing watermark (an entry never handled) means "nothing before now is owed".
    """
    mark = handled_through if handled_through is not None else now
    latest = latest_slot(trigger, now, tz)
    if latest <= mark:
        return Decision(None, None, 0, mark, next_slot(trigger, mark, tz))
    missed = count_between(trigger, mark, latest, tz)
    upcoming = next_slot(trigger, latest, tz)
    if grace_s is not None and (now - latest).total_seconds() > grace_s:
        return Decision(None, latest, missed, latest, upcoming)
    return Decision(latest, None, missed, latest, upcoming)
