"""Reading, expiry index, counts, marks, deletes and listing of the resource store."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import redis

from resoto_tasks.store import Resource, ResourceRef, ResourceStore, keys
from resoto_tasks.store.expiry import expires_at, is_expired
from tests.store.support import CTIME, PROVIDER, res

NOW = CTIME + timedelta(days=1)


def _mixed(account: str) -> list[Resource]:
    return [
        res(account, "i-1", tags={"expiration": "2h"}, attrs={"instance_cores": 4, "hourly_cost": 0.2}),
        res(account, "i-2", tags={"resoto:expiration": "P2D"}, attrs={"instance_cores": 2, "hourly_cost": 0.1}),
        res(account, "i-3", region="eu-central-1", attrs={"instance_cores": 8, "type": "big"}),
        res(account, "v-1", kind="volume", tags={"resoto:expires": "2024-01-01T05:00:00Z"}, protected=True,
            attrs={"volume_size_gb": 100}),
        res(account, "v-2", kind="volume", tags={"expiration": "never"}, attrs={"volume_size_gb": 50}),
        res(account, "v-3", kind="volume", depends_on=["i-1"], attrs={"volume_size_gb": 20}),
        res(account, "vpc-1", kind="vpc", tags={"expiration": "1d"}),  # expires exactly at NOW
    ]  # fmt: skip


def _commit(store: ResourceStore, account: str, resources: list[Resource], run_id: str = "r1") -> None:
    with store.snapshot_writer(PROVIDER, account, run_id) as writer:
        writer.add_many(resources)
        writer.commit()


@pytest.fixture
def mixed(store: ResourceStore, account: str) -> str:
    _commit(store, account, _mixed(account))
    return account


def test_get_reads_back_exactly_what_was_written(store: ResourceStore, mixed: str) -> None:
    for resource in _mixed(mixed):
        assert store.get(PROVIDER, mixed, resource.id) == resource
    assert store.get(PROVIDER, mixed, "nope") is None
    assert store.get_many(PROVIDER, mixed, ["v-2", "nope", "i-1"]) == [
        _mixed(mixed)[4], None, _mixed(mixed)[0],
    ]  # fmt: skip


def test_a_stored_resource_is_small_json_without_defaults(r: redis.Redis, mixed: str) -> None:
    doc = r.hget(keys.live(PROVIDER, mixed).data, "v-3")
    assert doc is not None
    assert '"protected"' not in doc
    assert '"tags"' not in doc
    assert len(doc) < 300


def test_iter_resources_streams_an_account_and_filters_by_kind(store: ResourceStore, account: str) -> None:
    resources = [res(account, f"i-{n}") for n in range(300)] + [
        res(account, f"v-{n}", kind="volume", name="instance-like") for n in range(30)
    ]
    _commit(store, account, resources)
    assert sorted(x.id for x in store.iter_resources(PROVIDER, account, batch_size=50)) == sorted(
        x.id for x in resources
    )
    assert {x.id for x in store.iter_resources(PROVIDER, account, kind="volume")} == {f"v-{n}" for n in range(30)}
    assert list(store.iter_resources(PROVIDER, account, kind="inst")) == []


def test_expired_returns_exactly_the_resources_expired_before_now(store: ResourceStore, mixed: str) -> None:
    found = {e.ref.id: e for e in store.expired(NOW, account=mixed)}
    expected = {x.id for x in _mixed(mixed) if is_expired(expires_at(x.tags, x.ctime), NOW)}
    assert set(found) == expected == {"i-1", "v-1"}  # vpc-1 expires at NOW: not before it
    assert found["v-1"].protected and not found["i-1"].protected
    assert found["i-1"].expires_at == CTIME + timedelta(hours=2)
    assert {e.ref.id for e in store.expired(NOW, account=mixed, include_protected=False)} == {"i-1"}
    later = {e.ref.id for e in store.expired(NOW + timedelta(days=2), account=mixed)}
    assert later == {"i-1", "i-2", "v-1", "vpc-1"}
    assert list(store.expired(CTIME, account=mixed)) == []


def test_expired_pages_through_large_sets_even_while_they_are_deleted(store: ResourceStore, account: str) -> None:
    # 5,000 expired (more than one read batch), many sharing the same expiry time.
    _commit(store, account, [res(account, f"i-{n:05d}", tags={"expiration": f"{n % 3}h"}) for n in range(5000)])
    seen: list[str] = []
    for entry in store.expired(NOW, account=account):
        seen.append(entry.ref.id)
        if len(seen) % 2:
            store.delete_resource(PROVIDER, account, entry.ref.id)
    assert sorted(seen) == [f"i-{n:05d}" for n in range(5000)]
    assert len(seen) == len(set(seen))


def test_expired_pages_through_one_shared_expiry_while_every_entry_is_deleted(
    store: ResourceStore, account: str
) -> None:
    # a bulk-tagged fleet: 5,000 resources, one expiry time; each page's last id is gone when
    # the next page is read, so every page takes the by-score fallback
    _commit(store, account, [res(account, f"i-{n:05d}", tags={"expiration": "1h"}) for n in range(5000)])
    seen: list[str] = []
    for entry in store.expired(NOW, account=account):
        seen.append(entry.ref.id)
        store.delete_resource(PROVIDER, account, entry.ref.id)
    assert seen == [f"i-{n:05d}" for n in range(5000)]


def test_counts_are_correct_after_commit(store: ResourceStore, mixed: str) -> None:
    stats = store.account_stats(PROVIDER, mixed, NOW)
    assert (stats.total, stats.protected, stats.malformed, stats.marked, stats.expired) == (7, 1, 1, 0, 2)
    groups = {(g.kind, g.region): g for g in stats.groups}
    assert groups[("instance", "us-east-1")].count == 2
    assert groups[("instance", "us-east-1")].sums == pytest.approx({"instance_cores": 6, "hourly_cost": 0.3})
    assert groups[("instance", "eu-central-1")].sums == {"instance_cores": 8}  # strings are not summed
    assert groups[("volume", "us-east-1")].sums == {"volume_size_gb": 170}
    assert groups[("vpc", "us-east-1")].count == 1


def test_delete_resource_updates_data_indexes_counts_and_marks_at_once(store: ResourceStore, mixed: str) -> None:
    store.mark(ResourceRef(provider=PROVIDER, account=mixed, id="v-1"), "expired", "r1")
    for rid in ("v-1", "v-2", "i-1"):
        assert store.delete_resource(PROVIDER, mixed, rid)
    assert not store.delete_resource(PROVIDER, mixed, "v-1")  # already gone
    stats = store.account_stats(PROVIDER, mixed, NOW)
    assert (stats.total, stats.protected, stats.malformed, stats.marked, stats.expired) == (4, 0, 0, 0, 0)
    groups = {(g.kind, g.region): g for g in stats.groups}
    assert groups[("volume", "us-east-1")].count == 1
    assert groups[("volume", "us-east-1")].sums == {"volume_size_gb": 20}
    assert groups[("instance", "us-east-1")].sums == pytest.approx({"instance_cores": 2, "hourly_cost": 0.1})
    assert store.get(PROVIDER, mixed, "v-1") is None


def test_deleting_the_last_of_a_group_removes_its_count_fields(
    r: redis.Redis, store: ResourceStore, mixed: str
) -> None:
    store.delete_resource(PROVIDER, mixed, "i-3")
    fields = r.hgetall(keys.live(PROVIDER, mixed).counts)
    assert not [f for f in fields if "eu-central-1" in f]


def test_counts_after_deletes_equal_counts_of_a_fresh_commit(store: ResourceStore, account: str) -> None:
    resources = _mixed(account)
    _commit(store, account, resources)
    for rid in ("i-2", "v-2", "vpc-1"):
        store.delete_resource(PROVIDER, account, rid)
    after_deletes = store.account_stats(PROVIDER, account, NOW)
    _commit(store, account, [x for x in resources if x.id not in ("i-2", "v-2", "vpc-1")], "r2")
    fresh = store.account_stats(PROVIDER, account, NOW)
    assert after_deletes.model_dump(exclude={"groups"}) == fresh.model_dump(exclude={"groups"})
    assert {(g.kind, g.region, g.count) for g in after_deletes.groups} == {
        (g.kind, g.region, g.count) for g in fresh.groups
    }
    for mine, theirs in zip(after_deletes.groups, fresh.groups, strict=True):
        assert mine.sums == pytest.approx(theirs.sums)


def test_marks_record_resource_reason_run_and_time(store: ResourceStore, mixed: str) -> None:
    at = datetime(2024, 3, 1, 12, tzinfo=UTC)
    ref = ResourceRef(provider=PROVIDER, account=mixed, id="i-1")
    assert store.mark(ref, "expired", "run-7", at)
    assert not store.mark(ResourceRef(provider=PROVIDER, account=mixed, id="ghost"), "expired", "run-7")
    mark = store.mark_of(ref)
    assert mark is not None
    assert (mark.ref, mark.reason, mark.run_id, mark.marked_at) == (ref, "expired", "run-7", at)
    assert store.mark(ref, "untagged", "run-8")  # marking again replaces reason and run
    assert [(m.id, m.reason, m.run_id) for m in store.marks(account=mixed)] == [("i-1", "untagged", "run-8")]
    assert store.unmark(ref)
    assert not store.unmark(ref)
    assert list(store.marks(account=mixed)) == []


def test_protected_resources_can_be_marked(store: ResourceStore, mixed: str) -> None:
    ref = ResourceRef(provider=PROVIDER, account=mixed, id="v-1")
    assert store.is_protected(ref)
    assert store.mark(ref, "expired", "r")


def test_counts_sum_over_accounts(store: ResourceStore, new_account: Callable[[], str]) -> None:
    first, second = new_account(), new_account()
    _commit(store, first, _mixed(first))
    _commit(store, second, [res(second, "b-1", kind="bucket"), res(second, "i-9", tags={"expiration": "1h"})])
    store.mark(ResourceRef(provider=PROVIDER, account=second, id="i-9"), "expired", "r")
    mine = {f"{PROVIDER}/{first}", f"{PROVIDER}/{second}"}
    counts = store.counts(NOW)
    assert {k: v for k, v in counts.by_account.items() if k in mine} == {
        f"{PROVIDER}/{first}": 7, f"{PROVIDER}/{second}": 2,
    }  # fmt: skip
    # The Redis server is shared with other tests: compare our accounts' share through the stats.
    ours = [s for s in store.all_stats(NOW) if f"{s.provider}/{s.account}" in mine]
    assert sum(s.expired for s in ours) == 3
    assert sum(s.marked for s in ours) == 1
    assert sum(s.protected for s in ours) == 1
    assert counts.total >= 9
    assert counts.by_kind["bucket"] >= 1


def test_list_filters_by_kind_account_marked_expired_and_limit(store: ResourceStore, mixed: str) -> None:
    store.mark(ResourceRef(provider=PROVIDER, account=mixed, id="i-1"), "expired", "r1")
    store.mark(ResourceRef(provider=PROVIDER, account=mixed, id="v-2"), "manual", "r1")

    def ids(**filters: object) -> set[str]:
        return {v.resource.id for v in store.list_resources(account=mixed, now=NOW, limit=None, **filters)}  # type: ignore[arg-type]

    assert ids() == {x.id for x in _mixed(mixed)}
    assert ids(kind="volume") == {"v-1", "v-2", "v-3"}
    assert ids(marked=True) == {"i-1", "v-2"}
    assert ids(expired=True) == {"i-1", "v-1"}
    assert ids(expired=True, marked=True) == {"i-1"}
    assert ids(expired=True, kind="volume") == {"v-1"}
    assert len(store.list_resources(account=mixed, limit=3)) == 3
    assert store.list_resources(account=mixed, limit=0) == []
    view = next(v for v in store.list_resources(account=mixed, marked=True, now=NOW) if v.resource.id == "i-1")
    assert view.expires_at == CTIME + timedelta(hours=2)
    assert view.mark is not None and view.mark.reason == "expired"


def test_names_that_would_break_keys_are_refused(store: ResourceStore) -> None:
    with pytest.raises(ValueError, match="account"):
        store.snapshot_writer(PROVIDER, "has/slash", "r")
    with pytest.raises(ValueError, match="provider"):
        store.snapshot_writer("Bad Name", "acct", "r")
    with pytest.raises(ValueError, match="kind"):
        Resource(id="x", kind="a|b", name="x", account="a", region="r", ctime=CTIME, provider="p")


def test_non_ascii_names_and_kinds_round_trip_filter_and_delete(store: ResourceStore, account: str) -> None:
    odd = res(account, "ü-1", kind="größe", name='snow ☃ "quoted" \\ back', tags={"ключ": "значение"})
    _commit(store, account, [odd, res(account, "plain")])
    assert store.get(PROVIDER, account, "ü-1") == odd
    assert list(store.iter_resources(PROVIDER, account, kind="größe")) == [odd]
    assert store.delete_resource(PROVIDER, account, "ü-1")
    assert {g.kind for g in store.account_stats(PROVIDER, account).groups} == {"instance"}


def test_a_naive_now_means_utc(store: ResourceStore, mixed: str) -> None:
    naive_now = NOW.replace(tzinfo=None)
    assert {e.ref.id for e in store.expired(naive_now, account=mixed)} == {"i-1", "v-1"}
    assert store.account_stats(PROVIDER, mixed, naive_now).expired == 2
    ref = ResourceRef(provider=PROVIDER, account=mixed, id="i-1")
    store.mark(ref, "expired", "r", at=datetime(2024, 3, 1, 12))
    mark = store.mark_of(ref)
    assert mark is not None and mark.marked_at == datetime(2024, 3, 1, 12, tzinfo=UTC)


def test_expires_at_and_count_read_single_values(store: ResourceStore, mixed: str) -> None:
    assert store.expires_at(ResourceRef(provider=PROVIDER, account=mixed, id="i-1")) == CTIME + timedelta(hours=2)
    assert store.expires_at(ResourceRef(provider=PROVIDER, account=mixed, id="i-3")) is None
    assert store.count(PROVIDER, mixed) == 7
    assert store.snapshots(PROVIDER) == [s for s in store.snapshots() if s.provider == PROVIDER]
