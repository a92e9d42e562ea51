"""One real beat and a real worker: runtime changes, pause/resume, removal, catch-up."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import timedelta

from beat.entries import EntryStore
from resoto_tasks import runtime
from resoto_tasks.timeutil import utcnow
from tests.beat.helpers import BeatProcess, evenly_spaced, parse_iso, slots_of, time_runs, wait_for_runs
from tests.support.cli import resoto

ONE_S = timedelta(seconds=1)


def schedule_row(name: str) -> dict[str, object] | None:
    done = resoto("schedule", "list", "--json")
    assert done.returncode == 0, done.stderr
    rows = [row for row in json.loads(done.stdout) if row["workflow"] == name]
    assert len(rows) <= 1
    return rows[0] if rows else None


def test_a_workflow_added_at_runtime_runs_every_interval_with_time_trigger_and_distinct_slots(
    start_beat: Callable[[], BeatProcess], add_scheduled_workflow: Callable[[str], str]
) -> None:
    beat = start_beat()
    beat.wait_for("beat: schedule synced")
    name = add_scheduled_workflow("1s")
    wait_for_runs(name, 3)
    listed = resoto("runs", "list", "--workflow", name, "--json")
    assert listed.returncode == 0, listed.stderr
    shown = json.loads(listed.stdout)
    assert {r["trigger"]["kind"] for r in shown} == {"time"}
    slots = sorted(parse_iso(r["trigger"]["details"]["slot"]) for r in shown)
    assert len(slots) == len(set(slots)) >= 3
    assert evenly_spaced(slots, ONE_S)
    assert beat.sent(name)  # the running beat picked it up: no restart
    row = schedule_row(name)
    assert row is not None and row["scheduled"] is True and row["paused"] is False
    assert row["last_fired"] is not None


def test_pausing_stops_the_runs_and_resuming_restarts_them_without_a_burst(
    start_beat: Callable[[], BeatProcess], add_scheduled_workflow: Callable[[str], str]
) -> None:
    start_beat().wait_for("beat: schedule synced")
    name = add_scheduled_workflow("1s")
    wait_for_runs(name, 2)
    paused = resoto("schedule", "pause", name, "--note", "maintenance window")
    paused_at = utcnow()
    assert paused.returncode == 0, paused.stderr
    row = schedule_row(name)
    assert row is not None
    assert (row["paused"], row["paused_note"], row["next_due"]) == (True, "maintenance window", None)
    time.sleep(2.5)
    assert [s for s in slots_of(time_runs(name)) if s > paused_at] == []
    resumed_at = utcnow()
    resumed = resoto("schedule", "resume", name)
    assert resumed.returncode == 0, resumed.stderr
    found = wait_for_runs(name, 2, after=resumed_at, timeout_s=10)
    later = [s for s in slots_of(found) if s > paused_at]
    assert later[0] > resumed_at  # nothing replayed for the paused time
    assert evenly_spaced(later, ONE_S)  # and no burst


def test_removing_a_workflow_removes_its_schedule(
    start_beat: Callable[[], BeatProcess], add_scheduled_workflow: Callable[[str], str]
) -> None:
    start_beat().wait_for("beat: schedule synced")
    name = add_scheduled_workflow("1s")
    wait_for_runs(name, 1)
    row = schedule_row(name)
    assert row is not None
    key = EntryStore(runtime.app()).key(str(row["entry"]))
    removed = resoto("workflows", "remove", name)
    removed_at = utcnow()
    assert removed.returncode == 0, removed.stderr
    deadline = time.monotonic() + 3
    while EntryStore(runtime.app()).load(key) is not None:
        assert time.monotonic() < deadline, "the entry of a removed workflow is still there"
        time.sleep(0.05)
    assert EntryStore(runtime.app()).current_score(key) is None
    time.sleep(2)
    assert [s for s in slots_of(time_runs(name)) if s > removed_at] == []
    assert schedule_row(name) is None


def test_a_stopped_beat_catches_up_once_without_replaying_the_missed_slots(
    start_beat: Callable[[], BeatProcess], add_scheduled_workflow: Callable[[str], str]
) -> None:
    first = start_beat()
    first.wait_for("beat: schedule synced")
    name = add_scheduled_workflow("1s")
    wait_for_runs(name, 2)
    first.stop()
    stopped_at = utcnow()
    last_before = max(slots_of(time_runs(name)))
    time.sleep(3.5)
    start_beat()
    found = wait_for_runs(name, 2, after=stopped_at + timedelta(seconds=3), timeout_s=15)
    after = [r for r in found if parse_iso(str(r.trigger.details["slot"])) > last_before]
    slots = slots_of(after)
    assert slots[0] - last_before >= timedelta(seconds=3)  # the downtime's slots were not replayed
    assert after[0].trigger.details["missed_slots"] >= 2  # one catch-up run stood for them
    assert evenly_spaced(slots, ONE_S)  # then on schedule
