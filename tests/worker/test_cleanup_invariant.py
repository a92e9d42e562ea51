"""The cleanup invariant over generated clouds and fault points, and the wave order.

Nothing protected, and nothing unexpired and unmarked, is ever deleted; everything deleted is in
the run's ledger; however deletes fail and wherever the cleaner dies between waves.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.redis_server import RedisServer

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
PROPERTY_DB = 15


class Died(Exception):
    """The cleaner's process dying between two waves."""


@pytest.fixture(scope="module")
def prop_redis(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url.rsplit("/", 1)[0] + f"/{PROPERTY_DB}", decode_responses=True)
    yield client
    client.flushdb()
    client.close()


resource_spec = st.fixed_dictionaries(
    {
        "expiry": st.sampled_from(["expired", "future", "none", "malformed", "expired_duration"]),
        "protected": st.booleans(),
        "marked": st.booleans(),
        "fails": st.booleans(),
        "deps": st.lists(st.integers(min_value=0, max_value=29), max_size=3),
    }
)


def _tags(expiry: str) -> dict[str, str]:
    return {
        "expired": {"resoto:expires": (NOW - timedelta(hours=1)).isoformat()},
        "future": {"resoto:expires": (NOW + timedelta(days=3)).isoformat()},
        "none": {},
        "malformed": {"expiration": "soon-ish"},
        "expired_duration": {"expiration": "2h"},
    }[expiry]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    specs=st.lists(resource_spec, min_size=1, max_size=30),
    die_after=st.integers(min_value=0, max_value=4),
    max_cap=st.one_of(st.none(), st.integers(min_value=0, max_value=30)),
)
def test_no_generated_cloud_loses_a_protected_or_unexpired_unmarked_resource(
    prop_redis: redis.Redis, specs: list[dict[str, object]], die_after: int, max_cap: int | None
) -> None:
    from resoto_tasks.store import ResourceStore
    from resoto_tasks.store.resources import Resource, ResourceRef
    from worker import ledger
    from worker.cleanup import CleanupRefused, DeletionsFailed, Limits, mark_expired, run_cleanup
    from worker.providers.base import Provider, ProviderError

    prop_redis.flushdb()
    store = ResourceStore(prop_redis)
    account, run_id = f"acct-{uuid.uuid4().hex[:8]}", f"prop-{uuid.uuid4().hex}"
    resources = [
        Resource(
            id=f"r{i}",
            kind="thing",
            name=f"r{i}",
            account=account,
            region="r",
            provider="prop",
            ctime=NOW - timedelta(days=1),
            tags=_tags(str(spec["expiry"])),
            protected=bool(spec["protected"]),
            depends_on=[f"r{d}" for d in spec["deps"] if d < len(specs) and d != i],  # type: ignore[attr-defined]
        )
        for i, spec in enumerate(specs)
    ]
    with store.snapshot_writer("prop", account, run_id) as writer:
        writer.add_many(resources)
        writer.commit()

    class Cloud(Provider):
        name = "prop"
        deleted: set[str] = set()

        def accounts(self) -> list[str]:
            return [account]

        def collect(self, account: str) -> Iterator[Resource]:
            return iter(resources)

        def delete(self, resource: Resource) -> None:
            if specs[int(resource.id[1:])]["fails"]:
                raise ProviderError("prop", account, "refused", resource.id)
            self.deleted.add(resource.id)

    cloud = Cloud()
    cloud.deleted = set()
    mark_expired(store, run_id, NOW)
    store.mark_many(
        [ResourceRef(provider="prop", account=account, id=f"r{i}") for i, spec in enumerate(specs) if spec["marked"]],
        "hook",
        run_id,
    )
    waves_done = 0

    def maybe_die() -> None:
        nonlocal waves_done
        if waves_done >= die_after:
            raise Died
        waves_done += 1

    limits = Limits(dry_run=False, max_count=max_cap, max_percent=None, pool_size=3)
    with contextlib.suppress(Died, CleanupRefused, DeletionsFailed):
        run_cleanup(store, run_id, limits, set(), lambda _: cloud, check_abort=maybe_die)
    recorded = {e.id for e in ledger.entries(run_id)}
    for i, spec in enumerate(specs):
        rid = f"r{i}"
        if rid not in cloud.deleted:
            continue
        assert not spec["protected"], f"{rid} was protected"
        assert spec["marked"] or str(spec["expiry"]).startswith("expired"), f"{rid} was neither expired nor marked"
        assert rid in recorded, f"{rid} deleted but not in the ledger"
        assert store.get("prop", account, rid) is None, f"{rid} deleted but still in the store"
    if max_cap is not None and len(cloud.deleted) > 0:
        assert len(cloud.deleted) <= max_cap


def test_waves_put_dependents_first_and_leave_cycles_alone() -> None:
    from resoto_tasks.store.resources import Mark, Resource
    from worker.cleanup import waves

    def res(rid: str, deps: list[str]) -> tuple[Mark, Resource]:
        r = Resource(
            id=rid, kind="k", name=rid, account="a", region="r", provider="p", ctime=NOW, tags={}, depends_on=deps
        )
        m = Mark(provider="p", account="a", id=rid, reason="x", run_id="run", marked_at=NOW)
        return m, r

    deletable = {
        f"p/a/{rid}": res(rid, deps)
        for rid, deps in {
            "vpc": [],
            "subnet": ["vpc"],
            "instance": ["subnet", "volume"],
            "volume": [],
            "c1": ["c2"],
            "c2": ["c1"],
            "lonely": ["not-marked"],
        }.items()
    }
    order, cycle = waves(deletable)
    position = {k: i for i, wave in enumerate(order) for k in wave}
    assert position["p/a/instance"] < position["p/a/subnet"] < position["p/a/vpc"]
    assert position["p/a/instance"] < position["p/a/volume"]
    assert position["p/a/lonely"] == 0
    assert cycle == ["p/a/c1", "p/a/c2"]


def test_what_a_kept_protected_resource_depends_on_is_not_deleted(prop_redis: redis.Redis) -> None:
    from resoto_tasks.store import ResourceStore
    from resoto_tasks.store.resources import Resource, ResourceRef
    from worker import ledger
    from worker.cleanup import Limits, run_cleanup
    from worker.providers.base import Provider

    prop_redis.flushdb()
    store = ResourceStore(prop_redis)
    account, run_id = f"acct-{uuid.uuid4().hex[:8]}", f"kept-{uuid.uuid4().hex}"
    layout = {"vpc": [], "subnet": ["vpc"], "volume": [], "instance": ["subnet", "volume"], "other": []}
    resources = [
        Resource(
            id=rid,
            kind=rid,
            name=rid,
            account=account,
            region="r",
            provider="prop",
            ctime=NOW,
            tags={},
            depends_on=deps,
            protected=rid == "instance",
        )
        for rid, deps in layout.items()
    ]
    with store.snapshot_writer("prop", account, run_id) as writer:
        writer.add_many(resources)
        writer.commit()
    store.mark_many([ResourceRef(provider="prop", account=account, id=rid) for rid in layout], "hook", run_id)

    class Cloud(Provider):
        name = "prop"
        deleted: set[str] = set()

        def accounts(self) -> list[str]:
            return [account]

        def collect(self, account: str) -> Iterator[Resource]:
            return iter(resources)

        def delete(self, resource: Resource) -> None:
            self.deleted.add(resource.id)

    cloud = Cloud()
    cloud.deleted = set()
    run_cleanup(store, run_id, Limits(False, None, None, 2), set(), lambda _: cloud)
    assert cloud.deleted == {"other"}
    reasons = {e.id: e.reason for e in ledger.entries(run_id)}
    assert reasons["instance"] == "protected"
    assert reasons["subnet"] == reasons["volume"] == reasons["vpc"] == "dependent not deleted"
