"""Resources with malformed, huge or hostile tag values never crash collect or plan.

In-process, against a redis-server of this module's own: generated accounts go through the
snapshot writer (what the collect task does with a provider's resources) and the expiry planner
(``worker.cleanup.mark_expired``, what cleanup_plan runs). Tags are arbitrary unicode keys and
values, control characters, strings of up to 200,000 characters, numbers that overflow
datetimes and ``timedelta``, and odd ISO periods and timestamps in every expiry tag.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resoto_tasks.store import ResourceStore
from resoto_tasks.store.expiry import EXPIRATION_TAGS, EXPIRES_TAG, expiry_status, is_expired
from resoto_tasks.store.resources import Resource
from tests.support.redis_server import RedisServer
from worker.cleanup import EXPIRED_REASON, mark_expired

pytestmark = pytest.mark.faults

PROVIDER, ACCOUNT = "hostile", "acct-1"
EXPIRY_TAGS = (EXPIRES_TAG, *EXPIRATION_TAGS)


@pytest.fixture(scope="module")
def store_redis() -> Iterator[redis.Redis]:
    server = RedisServer().start()
    client = redis.Redis.from_url(server.url, decode_responses=True)
    yield client
    client.close()
    server.cleanup()


# No lone surrogates (category Cs) here: the model replaces them; the test below shows the account still collects.
_CHARS = st.characters(exclude_categories=["Cs"])
_ANY_TEXT = st.text(_CHARS, max_size=40)
_CONTROL = st.text(st.characters(min_codepoint=0, max_codepoint=31) | st.sampled_from("\x7f\u200b\u202e\ufeff"))
_HUGE = st.builds(lambda c, n: c * n, st.sampled_from(["1", "h", "P", "9d", "x", "\x00", "é"]), st.integers(1, 200_000))
_NUMBER = st.one_of(
    st.integers(min_value=-(10**400), max_value=10**400).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        ["1e309", "inf", "-inf", "nan", "NaN", "\u0661\u0662", "\uff11\uff12", "0x1f", "1_000", "+-1", ".", "..5"]
    ),
)
_DURATION = st.one_of(
    st.builds(lambda n, u: f"{n}{u}", _NUMBER, st.sampled_from(["y", "M", "w", "d", "h", "min", "m", "s", "ms", ""])),
    st.builds(lambda n, u: f"{n} {u}", st.integers(0, 10**30), st.sampled_from(["years", "days and", "weeks,"])),
    st.builds(lambda p: "P" + p, st.text(st.sampled_from("0123456789YMWDTHS.,-+"), max_size=30)),
    st.sampled_from(["P", "PT", "P1M2W", "p1d", "P1,5D", "P-1D", "PT1H0.5M", "P99999999999Y", "P1Y" * 100]),
)
_TIMESTAMP = st.one_of(
    st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat()),
    st.sampled_from(
        [
            "9999-12-31T23:59:59-23:59",
            "0001-01-01T00:00:00+23:59",
            "10000-01-01",
            "2026-02-30",
            "2026-11-26T25:00:00Z",
            "2026-11-26T12:00:00.999999999999Z",
            "+002026-11-26",
            "2026-W48-4",
            "--",
        ]
    ),
)
_VALUE = st.one_of(_ANY_TEXT, _CONTROL, _HUGE, _NUMBER, _DURATION, _TIMESTAMP)
_KEY = st.one_of(st.sampled_from(EXPIRY_TAGS), _ANY_TEXT, _CONTROL, _HUGE)
_TAGS = st.dictionaries(_KEY, _VALUE, max_size=6)
_CTIME = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2030, 1, 1)),  # naive: UTC
)
_NOW = st.one_of(
    st.just(datetime(2026, 11, 26, 12, 0, tzinfo=UTC)),
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)),
)

resources = st.lists(
    st.builds(
        lambda i, tags, ctime, protected, kind, name: Resource(
            id=f"r-{i}",
            kind=kind,
            name=name,
            account=ACCOUNT,
            region="r1",
            ctime=ctime,
            tags=tags,
            protected=protected,
            provider=PROVIDER,
        ),
        st.integers(0, 10**6),
        _TAGS,
        _CTIME,
        st.booleans(),
        st.sampled_from(["instance", "volume", "bucket"]),
        _ANY_TEXT | _CONTROL,
    ),
    max_size=25,
    unique_by=lambda r: r.id,
)


def collect(store: ResourceStore, found: list[Resource]) -> Any:
    """What the collect task does with one account's resources (batches of 7 to cross batches)."""
    with store.snapshot_writer(PROVIDER, ACCOUNT, "run-collect", batch_size=7) as writer:
        writer.add_many(iter(found))
        return writer.commit()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(found=resources, now=_NOW)
def test_hostile_tags_never_crash_collect_or_plan_and_are_stored_as_given(
    store_redis: redis.Redis, found: list[Resource], now: datetime
) -> None:
    store_redis.flushdb()
    store = ResourceStore(store_redis)

    snapshot = collect(store, found)

    assert snapshot.resource_count == len(found) == store.count(PROVIDER, ACCOUNT)
    assert store.get_many(PROVIDER, ACCOUNT, [r.id for r in found]) == found  # every tag byte for byte
    status = {r.id: expiry_status(r.tags, r.ctime) for r in found}
    assert snapshot.malformed_count == sum(s.malformed for s in status.values())
    for r in found:
        expires = status[r.id].expires_at
        indexed = store.expires_at(r.ref)
        if expires is None:
            assert indexed is None
        else:
            assert indexed is not None and math.isclose(indexed.timestamp(), expires.timestamp(), abs_tol=1e-3)

    result = mark_expired(store, "run-plan", now)

    expected = {r.id for r in found if not r.protected and is_expired(status[r.id].expires_at, now)}
    marks = {m.id: m for m in store.marks()}
    # The index keeps expiry to the microsecond a float holds; a resource within a millisecond of
    # ``now`` may land either side, so it is left out of the comparison.
    close = {
        r.id
        for r in found
        if (expires := status[r.id].expires_at) is not None and abs(expires - now) < timedelta(0, 0, 1000)
    }
    assert set(marks) - close == expected - close
    assert result["marked"] == len(marks)
    assert all(m.reason == EXPIRED_REASON and m.run_id == "run-plan" for m in marks.values())
    assert not any(r.protected and r.id in marks for r in found)
    counts = store.counts(now)
    assert counts.total == len(found) and counts.marked == len(marks)


def test_a_tag_value_with_a_lone_surrogate_does_not_fail_the_account(store_redis: redis.Redis) -> None:
    store_redis.flushdb()
    store = ResourceStore(store_redis)
    tags = {"owner": "caf\ud800"}
    found = [
        Resource(id="r-1", kind="bucket", name="b", account=ACCOUNT, region="r1", ctime=datetime.now(UTC),
                 tags=tags, provider=PROVIDER),
        Resource(id="r-2", kind="bucket", name="c", account=ACCOUNT, region="r1", ctime=datetime.now(UTC),
                 provider=PROVIDER),
    ]  # fmt: skip
    assert collect(store, found).resource_count == 2


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_a_non_finite_attribute_reads_back(store_redis: redis.Redis, value: float) -> None:
    store_redis.flushdb()
    store = ResourceStore(store_redis)
    found = [
        Resource(id="r-1", kind="volume", name="v", account=ACCOUNT, region="r1", ctime=datetime.now(UTC),
                 attrs={"hourly_cost": value}, provider=PROVIDER),
    ]  # fmt: skip
    collect(store, found)
    assert [r.id for r in store.iter_resources(PROVIDER, ACCOUNT)] == ["r-1"]
    assert "hourly_cost" not in next(iter(store.iter_resources(PROVIDER, ACCOUNT))).attrs  # dropped, not null
