"""Two real beats on one schedule: one fires, the other stands by and takes over when it dies."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from resoto_tasks import runtime
from resoto_tasks.models import StartStatus, TriggerInfo, TriggerKind
from resoto_tasks.timeutil import utcnow
from tests.beat.helpers import (
    LOCK_TIMEOUT_S,
    BeatProcess,
    evenly_spaced,
    parse_iso,
    slots_of,
    time_runs,
    wait_for_runs,
)


def leader_and_standby(first: BeatProcess, second: BeatProcess) -> tuple[BeatProcess, BeatProcess]:
    """Whichever logged that it took redbeat's lock leads; the other must not have it."""
    deadline = time.monotonic() + 15
    while not (first.holds_lock or second.holds_lock):
        assert time.monotonic() < deadline, "no beat acquired the lock"
        time.sleep(0.05)
    time.sleep(1.5)  # the standby polls the lock every second: it had its chance to misbehave
    assert first.holds_lock != second.holds_lock
    return (first, second) if first.holds_lock else (second, first)


def test_two_beats_start_each_slot_once(
    start_beat: Callable[[], BeatProcess], add_scheduled_workflow: Callable[[str], str]
) -> None:
    leader, standby = leader_and_standby(start_beat(), start_beat())
    leader.wait_for("beat: schedule synced")
    name = add_scheduled_workflow("1s")
    found = wait_for_runs(name, 5, timeout_s=15)
    slots = slots_of(found)
    assert len(slots) == len(set(slots))
    assert evenly_spaced(slots, timedelta(seconds=1))
    assert standby.sent(name) == []
    assert len(leader.sent(name)) >= len(slots)
    # A second start of a slot that ran (a redelivered message, another beat) starts nothing.
    again = runtime.engine().start(name, TriggerInfo(kind=TriggerKind.time), slot=str(found[0].trigger.details["slot"]))
    assert again.status == StartStatus.duplicate
    assert again.run_id == found[0].id


def test_killing_the_active_beat_hands_over_within_the_lock_timeout_and_runs_no_slot_twice(
    start_beat: Callable[[], BeatProcess], add_scheduled_workflow: Callable[[str], str]
) -> None:
    leader, standby = leader_and_standby(start_beat(), start_beat())
    leader.wait_for("beat: schedule synced")
    name = add_scheduled_workflow("1s")
    wait_for_runs(name, 2)
    leader.kill()
    killed_at = utcnow()
    found = wait_for_runs(name, 3, after=killed_at, timeout_s=LOCK_TIMEOUT_S + 10)
    assert standby.holds_lock
    first_after = next(r for r in found if parse_iso(str(r.trigger.details["slot"])) > killed_at)
    handover_s = (first_after.created_at - killed_at).total_seconds()
    assert handover_s <= LOCK_TIMEOUT_S + 2, f"handover took {handover_s:.1f}s"
    slots = slots_of(time_runs(name))
    assert len(slots) == len(set(slots)), "a slot ran twice"
    after = [s for s in slots if s > killed_at]
    assert evenly_spaced(after, timedelta(seconds=1))  # one catch-up, then on schedule: no burst
