"""``resoto-tasks schedule list/pause/resume`` run as the real command (no beat running)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, timedelta

import pytest
import redis

from beat.entries import EntryStore, workflow_spec
from beat.slots import next_slot
from resoto_tasks import keys, runtime
from resoto_tasks.models import IntervalTrigger
from resoto_tasks.timeutil import utcnow
from tests.beat.helpers import parse_iso
from tests.support.cli import resoto

WIDE = {"COLUMNS": "200"}


def rows_of(name: str) -> list[dict[str, object]]:
    done = resoto("schedule", "list", "--json")
    assert done.returncode == 0, done.stderr
    return [row for row in json.loads(done.stdout) if row["workflow"] == name]


def test_list_shows_a_new_workflow_before_any_beat_created_its_entry(
    add_scheduled_workflow: Callable[[str], str],
) -> None:
    name = add_scheduled_workflow("1h")
    [row] = rows_of(name)
    assert row["trigger"] == {"interval": "1h"}
    assert (row["scheduled"], row["paused"], row["last_fired"], row["builtin"]) == (False, False, None, False)
    assert parse_iso(str(row["next_due"])) - utcnow() <= timedelta(hours=1)
    table = resoto("schedule", "list", env=WIDE)
    assert table.returncode == 0
    assert name in table.stdout and "no beat has picked it up yet" in table.stdout


def test_pause_and_resume_change_the_entry_at_once_and_resume_replays_nothing(
    add_scheduled_workflow: Callable[[str], str], r: redis.Redis
) -> None:
    name = add_scheduled_workflow("2s")
    store = EntryStore(runtime.app())
    spec = workflow_spec(name, IntervalTrigger(interval="2s"), enabled=True)
    long_ago = utcnow() - timedelta(hours=1)
    store.write(spec, long_ago, 7, UTC)  # as a beat would have left it
    key = store.key(spec.name)

    paused = resoto("schedule", "pause", name, "--note", "db migration")
    assert paused.returncode == 0, paused.stderr
    assert store.current_score(key) == -1
    assert json.loads(r.hget(keys.schedule_paused(), name) or "{}")["note"] == "db migration"
    [row] = rows_of(name)
    assert (row["paused"], row["paused_note"], row["next_due"]) == (True, "db migration", None)
    assert "paused: db migration" in resoto("schedule", "list", env=WIDE).stdout

    before_resume = utcnow()
    resumed = resoto("schedule", "resume", name)
    assert resumed.returncode == 0, resumed.stderr
    entry = store.load(key)
    assert entry is not None and entry.enabled
    assert entry.handled_through is not None
    assert before_resume <= entry.handled_through <= utcnow()  # the paused hour is not owed
    assert entry.total_run_count == 7
    assert store.current_score(key) == next_slot(spec.trigger, entry.handled_through).timestamp()
    assert not r.hexists(keys.schedule_paused(), name)
    again = resoto("schedule", "resume", name)
    assert again.returncode == 0
    assert "was not paused" in again.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("pause", "no_such_workflow"), "unknown workflow 'no_such_workflow'"),
        (("resume", "no_such_workflow"), "unknown workflow 'no_such_workflow'"),
        (("pause", "metrics"), "has no cron or interval trigger"),
    ],
)
def test_pausing_what_has_no_schedule_is_a_usage_error(args: tuple[str, ...], message: str) -> None:
    done = resoto("schedule", *args)
    assert done.returncode == 2
    assert message in done.stderr
