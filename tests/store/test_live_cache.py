"""A process's copy of the live subscriptions: a change is seen at once, a renewal costs no read.

Against a redis-server of this module's own: the commands it counts are the store's alone (the
session's server also serves a worker's heartbeats). Times are passed in (``at_ms``): nothing sleeps.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from resoto_tasks import keys, live_cache, subscribers
from resoto_tasks.models import Subscription
from resoto_tasks.runs import RunStore
from resoto_tasks.settings import get_settings
from resoto_tasks.timeutil import now_ms
from tests.support.flow import unique
from tests.support.redis_server import RedisServer


@pytest.fixture(scope="module")
def private() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.fixture
def r(private: RedisServer) -> Iterator[redis.Redis]:
    found = redis.Redis.from_url(private.url, decode_responses=True)
    yield found
    found.close()


@pytest.fixture(autouse=True)
def own_prefix(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("RESOTO_KEY_PREFIX", unique("livecache"))
    get_settings.cache_clear()
    live_cache.forget()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()
    live_cache.forget()


def sub(action: str) -> Subscription:
    return Subscription(action=action, subscriber_id=f"{action}-sub", task="tests.behave", queue="workflow")


def max_age_ms() -> int:
    return int(get_settings().subscriber_ttl_s * 250)


class Counting:
    """How many commands the store sends (redis-py's pipeline and plain calls both end here)."""

    def __init__(self, r: redis.Redis) -> None:
        self.before = self._calls(r)
        self.r = r

    @staticmethod
    def _calls(r: redis.Redis) -> dict[str, int]:
        stats = r.info("commandstats")
        return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}

    def since(self) -> dict[str, int]:
        now = self._calls(self.r)
        grown = {k: now[k] - self.before.get(k, 0) for k in now}
        grown["info"] -= 1  # the second INFO itself
        return {k: v for k, v in grown.items() if v}


def live(store: RunStore, at_ms: int) -> dict[str, list[Subscription]]:
    """The live subscriptions as a step transition reads them (beside a record, here none)."""
    return store.load_with_live("no-such-run", at_ms)[1]


def test_a_new_subscription_is_seen_at_once_and_a_renewal_costs_one_mget(r: redis.Redis) -> None:
    store = RunStore(r)
    first, second = sub(unique("a")), sub(unique("b"))
    subscribers.register([first], "worker-1", ttl_s=60, r=r)
    at = now_ms()
    assert live(store, at) == {first.action: [first]}

    subscribers.register([second], "worker-2", ttl_s=60, r=r)  # new: the version moves
    assert live(store, at + 1) == {first.action: [first], second.action: [second]}

    subscribers.register([first], "worker-1", ttl_s=60, r=r)  # heartbeats: renewals, the version stays
    subscribers.register([second], "worker-2", ttl_s=60, r=r)
    counting = Counting(r)
    assert live(store, at + 2) == {first.action: [first], second.action: [second]}
    assert counting.since() == {"mget": 1}


def test_a_copy_is_read_again_once_it_is_a_quarter_ttl_old(r: redis.Redis) -> None:
    """A member written behind the registry's back (no version change) shows once the copy ages."""
    store = RunStore(r)
    known, hidden = sub(unique("a")), sub(unique("b"))
    subscribers.register([known], "worker-1", ttl_s=60, r=r)
    at = now_ms()
    assert live(store, at) == {known.action: [known]}
    r.zadd(keys.subscriptions_live(), {f"worker-9|{hidden.model_dump_json()}": at + 60_000})

    assert live(store, at + max_age_ms() - 1) == {known.action: [known]}
    assert live(store, at + max_age_ms()) == {known.action: [known], hidden.action: [hidden]}


def test_a_dropped_subscription_is_gone_at_once_and_a_dead_holder_by_its_expiry(r: redis.Redis) -> None:
    store = RunStore(r)
    stopping, dying, staying = sub(unique("stop")), sub(unique("die")), sub(unique("stay"))
    subscribers.register([stopping], "stopping", ttl_s=60, r=r)
    subscribers.register([staying], "staying", ttl_s=60, r=r)
    ttl_ms = max_age_ms() // 2
    subscribers.register([dying], "dying", ttl_s=ttl_ms / 1000, r=r)
    at = now_ms()
    assert set(live(store, at)) == {stopping.action, dying.action, staying.action}

    subscribers.unregister("stopping", r=r)
    assert set(live(store, at + 1)) == {dying.action, staying.action}

    counting = Counting(r)
    assert set(live(store, at + ttl_ms + 1)) == {staying.action}  # expired in the copy, not read again
    assert counting.since() == {"mget": 1}


def copied(r: redis.Redis) -> tuple[RunStore, Subscription, int]:
    """A store whose process copy holds one live subscription, read at the returned time."""
    store = RunStore(r)
    action = sub(unique("a"))
    subscribers.register([action], "worker-1", ttl_s=60, r=r)
    at = now_ms()
    live(store, at)
    return store, action, at


def test_a_step_transition_reads_its_record_and_the_version_in_one_command(r: redis.Redis) -> None:
    store, action, at = copied(r)
    counting = Counting(r)
    found, subs, _ = store.load_with_live("no-such-run", at + 1)
    assert found is None
    assert subs == {action.action: [action]}
    assert counting.since() == {"mget": 1}


def test_a_dispatching_start_reads_admission_and_live_subscriptions_together(r: redis.Redis) -> None:
    store, action, at = copied(r)
    counting = Counting(r)
    state, guards, version, found = store.admission(unique("wf"), "slot-1", live_at_ms=at + 1)
    assert found == {action.action: [action]}
    assert (state.active, state.queued, state.slot_taken, version) == ((), None, None, "0")
    assert len(guards) == 3
    assert counting.since() == {"smembers": 1, "mget": 1}  # one pipeline: one round trip
    assert store.admission(unique("wf"), None)[3] == {}  # a start that does not dispatch reads no subscriptions
