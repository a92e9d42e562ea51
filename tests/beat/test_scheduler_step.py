"""``ResotoScheduler.step(now)`` against the real Redis, one tick at a chosen instant.

Each test gets its own Celery app with its own redbeat key prefix, so its entries are its own;
workflows and the paused set are handed in, and sends are captured instead of published.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from celery import Celery
from celery.schedules import schedule as celery_schedule
from redbeat.schedulers import RedBeatSchedulerEntry

from beat.entries import SUPERVISE_TASK, SUPERVISOR_ENTRY, EntrySpec, entry_name
from beat.scheduler import ResotoScheduler
from beat.slots import Decision
from beat.sync import desired_entries
from resoto_tasks import workflows as workflows_module
from resoto_tasks.celery_app import create_app
from resoto_tasks.models import CronTrigger, IntervalTrigger, StepDefinition, Workflow, WorkflowDefinition
from resoto_tasks.settings import Settings, get_settings
from resoto_tasks.timeutil import utcnow
from tests.support.redis_server import RedisServer

T0 = datetime(2026, 1, 5, 10, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def workflow(name: str, *triggers: dict[str, Any]) -> Workflow:
    definition = WorkflowDefinition.model_validate(
        {"name": name, "steps": [StepDefinition(name="a").model_dump()], "triggers": list(triggers)}
    )
    return definition.build()


class SteppedScheduler(ResotoScheduler):
    """The real scheduler with the catalogue, the paused set and the broker replaced."""

    def __init__(self, app: Celery, **kwargs: Any) -> None:
        self.flows: dict[str, Workflow] = {}
        self.paused_names: set[str] = set()
        self.supervisor_every: float | None = None
        self.sent: list[tuple[str, datetime, int, dict[str, Any]]] = []
        super().__init__(app, **kwargs)

    def workflows(self) -> Mapping[str, Workflow]:
        return self.flows

    def paused(self) -> set[str]:
        return self.paused_names

    def supervisor_interval_s(self) -> float | None:
        return self.supervisor_every

    def publish(self, spec: EntrySpec, decision: Decision, now: datetime) -> str:
        assert decision.fire is not None
        self.sent.append((spec.name, decision.fire, decision.missed, spec.message_kwargs(decision.fire, 0)))
        return f"task-{len(self.sent)}"

    def slots_sent(self) -> list[datetime]:
        return [slot for _, slot, _, _ in self.sent]


@pytest.fixture
def scheduler(redis_server: RedisServer) -> Iterator[SteppedScheduler]:
    prefix = f"rtstep{uuid.uuid4().hex[:6]}"
    app = create_app(get_settings().model_copy(update={"key_prefix": prefix}))
    sched = SteppedScheduler(app, lock_key=None)
    yield sched
    client = redis.Redis.from_url(redis_server.url)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    client.close()


def with_grace(sched: SteppedScheduler, grace_s: float) -> None:
    sched.settings = sched.settings.model_copy(update={"missed_slot_grace_s": grace_s})


def test_a_new_workflow_starts_at_its_next_slot_and_owes_nothing_before(scheduler: SteppedScheduler) -> None:
    scheduler.flows = {"wf": workflow("wf", {"interval": "5s"})}
    scheduler.step(at(0.5))
    assert scheduler.sent == []
    scheduler.step(at(5.02))
    assert scheduler.slots_sent() == [at(5)]


def test_each_slot_is_sent_once_with_its_due_time_as_the_slot(scheduler: SteppedScheduler) -> None:
    scheduler.flows = {"wf": workflow("wf", {"interval": "5s"})}
    scheduler.step(at(0.5))
    for tick in (5.3, 5.9, 9.99, 10.7, 12.0, 15.0):
        scheduler.step(at(tick))
    assert scheduler.slots_sent() == [at(5), at(10), at(15)]
    name, _, _, kwargs = scheduler.sent[0]
    assert name == entry_name("wf", IntervalTrigger(interval="5s"))
    assert kwargs == {
        "name": "wf",
        "trigger": {
            "kind": "time",
            "details": {"trigger": {"interval": "5s"}, "slot": "2026-01-05T10:00:05.000Z", "missed_slots": 0},
        },
        "slot": "2026-01-05T10:00:05.000Z",
    }


def test_the_sleep_until_the_next_slot_is_what_step_returns(scheduler: SteppedScheduler) -> None:
    scheduler.flows = {"wf": workflow("wf", {"interval": "5s"})}
    scheduler.max_interval = 30
    assert scheduler.step(at(0.5)) == pytest.approx(4.5)
    assert scheduler.step(at(5.25)) == pytest.approx(4.75)


def test_a_stopped_beat_comes_back_with_one_catch_up_run_for_the_latest_missed_slot(
    scheduler: SteppedScheduler,
) -> None:
    scheduler.flows = {"wf": workflow("wf", {"interval": "5s"})}
    scheduler.step(at(0.5))
    scheduler.step(at(5.1))
    scheduler.step(at(62))  # the beat was down from 5.1 to 62
    scheduler.step(at(62.5))
    assert scheduler.slots_sent() == [at(5), at(60)]
    assert scheduler.sent[1][2] == 10
    scheduler.step(at(65.01))
    assert scheduler.slots_sent()[-1] == at(65)


def test_a_missed_slot_older_than_the_grace_starts_nothing(scheduler: SteppedScheduler) -> None:
    with_grace(scheduler, 1800)
    scheduler.flows = {"wf": workflow("wf", {"cron": "0 * * * *"})}
    scheduler.step(at(-50 * 60))
    scheduler.step(at(45 * 60))  # 10:00 is 45 minutes old: more than the grace
    assert scheduler.sent == []
    entry = scheduler.store.load(scheduler.store.key(entry_name("wf", CronTrigger(cron="0 * * * *"))))
    assert entry is not None
    assert entry.dropped is not None
    assert entry.dropped["slot"] == "2026-01-05T10:00:00.000Z"
    scheduler.step(at(3600.5))
    assert scheduler.slots_sent() == [at(3600)]


def test_a_missed_slot_within_the_grace_runs_once(scheduler: SteppedScheduler) -> None:
    with_grace(scheduler, 1800)
    scheduler.flows = {"wf": workflow("wf", {"cron": "0 * * * *"})}
    scheduler.step(at(-3 * 3600 - 60))
    scheduler.step(at(20 * 60))
    assert scheduler.slots_sent() == [T0]
    assert scheduler.sent[0][2] == 3  # 07:00, 08:00 and 09:00 are not replayed


def test_a_paused_schedule_fires_nothing_and_resuming_does_not_replay(scheduler: SteppedScheduler) -> None:
    scheduler.flows = {"wf": workflow("wf", {"interval": "5s"})}
    scheduler.step(at(0.5))
    scheduler.step(at(5.1))
    scheduler.paused_names = {"wf"}
    for tick in range(6, 40):
        scheduler.step(at(tick))
    assert scheduler.slots_sent() == [at(5)]
    key = scheduler.store.key(entry_name("wf", IntervalTrigger(interval="5s")))
    assert scheduler.store.current_score(key) == -1
    scheduler.paused_names = set()
    scheduler.step(at(41))  # resumed at 41: 10 .. 40 are not replayed
    scheduler.step(at(44.9))
    scheduler.step(at(45.1))
    assert scheduler.slots_sent() == [at(5), at(45)]


def test_removing_a_workflow_deletes_its_entry(scheduler: SteppedScheduler, r: redis.Redis) -> None:
    scheduler.flows = {"wf": workflow("wf", {"interval": "5s"}), "other": workflow("other", {"interval": "1h"})}
    scheduler.step(at(0.5))
    key = scheduler.store.key(entry_name("wf", IntervalTrigger(interval="5s")))
    assert r.exists(key)
    del scheduler.flows["wf"]
    scheduler.step(at(1))
    assert not r.exists(key)
    assert r.zscore(scheduler.store.schedule_key, key) is None
    assert [scheduler.store.name_of(k) for k in scheduler.store.managed_keys()] == [
        entry_name("other", IntervalTrigger(interval="1h"))
    ]
    scheduler.step(at(5.5))
    assert scheduler.sent == []


def test_changing_another_workflow_keeps_every_watermark(scheduler: SteppedScheduler) -> None:
    scheduler.flows = {"wf": workflow("wf", {"interval": "5s"})}
    scheduler.step(at(0.5))
    scheduler.step(at(5.1))
    scheduler.flows["new"] = workflow("new", {"interval": "1h"})
    scheduler.step(at(5.2))
    scheduler.step(at(10.1))
    assert scheduler.slots_sent() == [at(5), at(10)]


def test_entries_are_plain_redbeat_entries(scheduler: SteppedScheduler) -> None:
    scheduler.flows = {"wf": workflow("wf", {"interval": "5s"}, {"cron": "0 0 L * *"})}
    scheduler.step(at(0.5))
    for key in scheduler.store.managed_keys():
        entry = RedBeatSchedulerEntry.from_key(key, app=scheduler.app)
        assert entry.task == "resoto.workflow.start"
        assert entry.kwargs["name"] == "wf"
        assert entry.options == {"queue": "workflow"}
        assert entry.last_run_at == at(0.5)


def test_the_supervisor_is_scheduled_by_the_same_beat_without_a_grace(scheduler: SteppedScheduler) -> None:
    with_grace(scheduler, 1)
    scheduler.supervisor_every = 2
    scheduler.step(at(0.5))
    scheduler.step(at(2.1))
    scheduler.step(at(600.3))  # long down: the supervisor still runs once, at once
    assert [(name, slot) for name, slot, _, _ in scheduler.sent] == [
        (SUPERVISOR_ENTRY, at(2)),
        (SUPERVISOR_ENTRY, at(600)),
    ]
    assert scheduler.sent[0][3] == {}
    assert scheduler.store.load(scheduler.store.key(SUPERVISOR_ENTRY)) is not None


def test_builtin_schedules_follow_the_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    overridden = Settings(schedule_overrides={"collect_and_cleanup": "*/30 * * * *", "metrics": "5m"})
    monkeypatch.setattr(workflows_module, "get_settings", lambda: overridden)
    specs = desired_entries(workflows_module.builtin_workflows(), (), None)
    assert sorted((s.workflow, s.trigger.model_dump(mode="json")) for s in specs.values()) == [
        ("collect_and_cleanup", {"cron": "*/30 * * * *"}),
        ("metrics", {"interval": "5m"}),
    ]
    assert SUPERVISE_TASK not in {s.task for s in specs.values()}


def test_the_schedule_leaves_exactly_one_zset_and_one_hash_per_entry(
    scheduler: SteppedScheduler, r: redis.Redis
) -> None:
    scheduler.flows = {"wf": workflow("wf", {"interval": "5s"}, {"cron": "0 * * * *"})}
    scheduler.supervisor_every = 1
    scheduler.step(at(0.5))
    scheduler.step(at(5.5))
    prefix = scheduler.store.prefix
    entries = {entry_name("wf", IntervalTrigger(interval="5s")), entry_name("wf", CronTrigger(cron="0 * * * *"))}
    assert set(r.scan_iter(f"{prefix}*")) == {f"{prefix}:schedule"} | {prefix + e for e in entries | {SUPERVISOR_ENTRY}}
    fired = r.hgetall(prefix + entry_name("wf", IntervalTrigger(interval="5s")))
    assert set(fired) == {"definition", "meta", "fired"}
    assert json.loads(fired["fired"]) == {
        "slot": "2026-01-05T10:00:05.000Z",
        "at": "2026-01-05T10:00:05.500Z",
        "missed_slots": 0,
        "task_id": "task-2",
    }


def test_entries_added_with_redbeat_directly_keep_redbeat_semantics(scheduler: SteppedScheduler) -> None:
    applied: list[str] = []

    def apply_async(entry: RedBeatSchedulerEntry, **_: Any) -> None:
        applied.append(entry.name)
        scheduler.reserve(entry)  # what redbeat's apply_async does before sending

    scheduler.apply_async = apply_async
    custom = RedBeatSchedulerEntry("custom", "tests.nothing", celery_schedule(5), app=scheduler.app)
    custom.last_run_at = utcnow() - timedelta(seconds=10)
    custom.save()
    scheduler.step(utcnow())
    scheduler.step(utcnow())
    assert applied == ["custom"]
    assert scheduler.store.load(scheduler.store.key("custom")) is not None  # not ours to delete
