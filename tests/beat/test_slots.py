"""Slot arithmetic and the per-entry decision, at chosen instants (no Redis, no sleeping)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beat.slots import count_between, decide, latest_slot, next_slot
from resoto_tasks.models import CronTrigger, IntervalTrigger

T0 = datetime(2026, 1, 5, 10, 0, 0, tzinfo=UTC)
EVERY_5S = IntervalTrigger(interval="5s")
HOURLY = CronTrigger(cron="0 * * * *")

instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC))
triggers = st.sampled_from(
    [
        EVERY_5S,
        IntervalTrigger(interval="7s"),
        IntervalTrigger(interval=0.25),
        IntervalTrigger(interval="1h"),
        HOURLY,
        CronTrigger(cron="*/15 * * * *"),
        CronTrigger(cron="30 2 * * 1-5"),
    ]
)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_interval_slots_sit_on_a_grid_from_the_epoch_whoever_computes_them() -> None:
    assert latest_slot(EVERY_5S, at(3.7)) == at(0)
    assert latest_slot(EVERY_5S, at(5)) == at(5)
    assert next_slot(EVERY_5S, at(5)) == at(10)
    assert next_slot(EVERY_5S, at(4.999)) == at(5)


def test_cron_slots_include_the_instant_itself_when_it_matches() -> None:
    assert latest_slot(HOURLY, T0) == T0
    assert latest_slot(HOURLY, at(-0.001)) == at(-3600)
    assert next_slot(HOURLY, T0) == at(3600)


def test_cron_is_read_in_the_configured_time_zone_and_slots_are_utc() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    three_am = CronTrigger(cron="0 3 * * *")
    winter = next_slot(three_am, datetime(2026, 1, 5, 0, 0, tzinfo=UTC), berlin)
    summer = next_slot(three_am, datetime(2026, 7, 5, 0, 0, tzinfo=UTC), berlin)
    assert winter == datetime(2026, 1, 5, 2, 0, tzinfo=UTC)
    assert summer == datetime(2026, 7, 5, 1, 0, tzinfo=UTC)
    assert winter.tzinfo == UTC


def test_slots_between_are_counted_strictly_inside() -> None:
    assert count_between(EVERY_5S, at(0), at(30)) == 5
    assert count_between(EVERY_5S, at(0.1), at(29.9)) == 5
    assert count_between(HOURLY, T0, at(3 * 3600)) == 2
    assert count_between(HOURLY, at(10), at(5)) == 0


@settings(max_examples=300, deadline=None)
@given(trigger=triggers, now=instants)
def test_the_latest_slot_is_due_and_the_next_one_is_not(trigger: IntervalTrigger | CronTrigger, now: datetime) -> None:
    latest = latest_slot(trigger, now)
    upcoming = next_slot(trigger, now)
    assert latest <= now < upcoming
    assert next_slot(trigger, latest) == upcoming
    assert latest_slot(trigger, upcoming) == upcoming


def test_nothing_is_owed_for_the_time_before_a_watermark_exists() -> None:
    decision = decide(EVERY_5S, None, at(3), grace_s=3600)
    assert decision.fire is None
    assert decision.next_due == at(5)


def test_a_due_slot_is_named_by_its_due_time_not_by_when_the_tick_came() -> None:
    decision = decide(EVERY_5S, at(0), at(5.8), grace_s=3600)
    assert decision.fire == at(5)
    assert decision.handled_through == at(5)
    assert decision.next_due == at(10)
    again = decide(EVERY_5S, decision.handled_through, at(6.2), grace_s=3600)
    assert again.fire is None


def test_after_downtime_only_the_most_recent_missed_slot_is_started() -> None:
    decision = decide(EVERY_5S, at(5), at(62), grace_s=3600)
    assert decision.fire == at(60)
    assert decision.missed == 10  # 10, 15, ..., 55: never replayed
    assert decision.next_due == at(65)


def test_a_missed_slot_older_than_the_grace_is_dropped_and_the_schedule_goes_on() -> None:
    decision = decide(HOURLY, at(-3600), at(45 * 60), grace_s=1800)
    assert decision.fire is None
    assert decision.dropped == T0
    assert decision.handled_through == T0
    assert decision.next_due == at(3600)
    within = decide(HOURLY, at(-3600), at(20 * 60), grace_s=1800)
    assert within.fire == T0


def test_without_a_grace_the_latest_slot_always_runs() -> None:
    assert decide(HOURLY, at(-30 * 86400), at(59 * 60), grace_s=None).fire == T0


@settings(max_examples=100, deadline=None)
@given(
    trigger=st.sampled_from([EVERY_5S, IntervalTrigger(interval="3s"), CronTrigger(cron="* * * * *")]),
    gaps=st.lists(st.floats(min_value=0.01, max_value=1.5), min_size=1, max_size=200),
)
def test_ticks_faster_than_the_period_start_every_slot_exactly_once(
    trigger: IntervalTrigger | CronTrigger, gaps: list[float]
) -> None:
    """However irregular the ticks, as long as none is late by a whole period."""
    now, mark = T0, T0
    fired: list[datetime] = []
    for gap in gaps:
        now += timedelta(seconds=gap)
        decision = decide(trigger, mark, now, grace_s=3600)
        if decision.fire is not None:
            fired.append(decision.fire)
        mark = decision.handled_through
    expected, cursor = [], next_slot(trigger, T0)
    while cursor <= now:
        expected.append(cursor)
        cursor = next_slot(trigger, cursor)
    assert fired == expected


@pytest.mark.parametrize("skew_s", [0.5, 30.0])
def test_a_watermark_ahead_of_the_clock_fires_nothing_early(skew_s: float) -> None:
    """Another beat with a fast clock wrote the watermark: wait for the next slot after it."""
    decision = decide(EVERY_5S, at(5 + skew_s), at(5.1), grace_s=3600)
    assert decision.fire is None
    assert decision.next_due > at(5 + skew_s)
