"""Snapshot writing: staging, atomic commit, abort, duplicates, footprint."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import pytest
import redis

from resoto_tasks.store import ResourceStore, SnapshotClosed, StagingLost, WrongAccount, keys
from tests.store.support import CTIME, PROVIDER, res


def _ids(store: ResourceStore, account: str) -> set[str]:
    return {r.id for r in store.iter_resources(PROVIDER, account)}


def _account_keys(r: redis.Redis, account: str) -> set[str]:
    return set(r.scan_iter(match=f"{keys.live(PROVIDER, account).data.rsplit(':', 1)[0]}*"))


def test_commit_makes_the_snapshot_live_with_its_metadata(store: ResourceStore, account: str) -> None:
    with store.snapshot_writer(PROVIDER, account, "run-1") as writer:
        assert writer.add_many(res(account, f"i-{n}") for n in range(10)) == 10
        assert store.count(PROVIDER, account) == 0  # nothing visible before commit
        snap = writer.commit()
    assert snap.resource_count == 10
    assert snap.run_id == "run-1"
    assert store.snapshot(PROVIDER, account) == snap
    assert (PROVIDER, account) in store.accounts()
    assert _ids(store, account) == {f"i-{n}" for n in range(10)}


def test_commit_replaces_the_previous_snapshot_whole(store: ResourceStore, account: str) -> None:
    with store.snapshot_writer(PROVIDER, account, "run-1") as writer:
        writer.add_many(
            [
                res(account, "old-1", tags={"expiration": "2h"}, protected=True),
                res(account, "both", kind="volume", attrs={"volume_size_gb": 10}),
            ]
        )
        writer.commit()
    with store.snapshot_writer(PROVIDER, account, "run-2", batch_size=2) as writer:
        writer.add_many(
            [res(account, "both", kind="volume", attrs={"volume_size_gb": 30})]
            + [res(account, f"new-{n}") for n in range(4)]
        )
        # While the new snapshot is being written, readers still see the old one, complete.
        assert _ids(store, account) == {"old-1", "both"}
        assert store.is_protected(store.get(PROVIDER, account, "old-1").ref)  # type: ignore[union-attr]
        writer.commit()
    assert _ids(store, account) == {"both", "new-0", "new-1", "new-2", "new-3"}
    assert store.get(PROVIDER, account, "both").attrs == {"volume_size_gb": 30}  # type: ignore[union-attr]
    stats = store.account_stats(PROVIDER, account, CTIME + timedelta(days=1))
    assert (stats.total, stats.protected, stats.expired) == (5, 0, 0)
    assert {(g.kind, g.count, g.sums.get("volume_size_gb")) for g in stats.groups} == {
        ("instance", 4, None),
        ("volume", 1, 30.0),
    }


def test_abort_keeps_the_previous_snapshot_and_leaves_no_staging(
    r: redis.Redis, store: ResourceStore, account: str
) -> None:
    with store.snapshot_writer(PROVIDER, account, "run-1") as writer:
        writer.add(res(account, "keep"))
        first = writer.commit()
    before = _account_keys(r, account)
    writer = store.snapshot_writer(PROVIDER, account, "run-2", batch_size=3)
    writer.add_many(res(account, f"new-{n}") for n in range(7))
    assert any(":stage:" in k for k in _account_keys(r, account))
    writer.abort()
    writer.abort()  # idempotent
    assert _account_keys(r, account) == before
    assert _ids(store, account) == {"keep"}
    assert store.snapshot(PROVIDER, account) == first


def test_an_exception_inside_the_with_block_aborts(store: ResourceStore, account: str) -> None:
    def failing_collect() -> object:
        yield res(account, "a")
        raise RuntimeError("cloud said no")

    def collect_into_store() -> None:
        with store.snapshot_writer(PROVIDER, account, "r") as writer:
            writer.add_many(failing_collect())  # type: ignore[arg-type]
            writer.commit()

    with pytest.raises(RuntimeError, match="cloud said no"):
        collect_into_store()
    assert store.snapshot(PROVIDER, account) is None
    assert store.count(PROVIDER, account) == 0


def test_a_closed_writer_refuses_more_work(store: ResourceStore, account: str) -> None:
    writer = store.snapshot_writer(PROVIDER, account, "r")
    writer.commit()
    with pytest.raises(SnapshotClosed):
        writer.add(res(account, "late"))
    with pytest.raises(SnapshotClosed):
        writer.commit()
    writer.abort()  # no-op after commit
    assert store.snapshot(PROVIDER, account) is not None


def test_a_resource_of_another_account_is_refused(store: ResourceStore, new_account: Callable[[], str]) -> None:
    mine, other = new_account(), new_account()
    with store.snapshot_writer(PROVIDER, mine, "r") as writer, pytest.raises(WrongAccount, match=other):
        writer.add(res(other, "x"))


def test_an_empty_commit_empties_the_account(store: ResourceStore, account: str) -> None:
    with store.snapshot_writer(PROVIDER, account, "r1") as writer:
        writer.add_many([res(account, "a", tags={"expiration": "1h"}, protected=True)])
        writer.commit()
    with store.snapshot_writer(PROVIDER, account, "r2") as writer:
        snap = writer.commit()
    assert snap.resource_count == 0
    assert store.account_stats(PROVIDER, account).model_dump(exclude={"provider", "account"}) == {
        "total": 0, "protected": 0, "malformed": 0, "marked": 0, "expired": 0, "groups": [],
    }  # fmt: skip


def test_duplicate_ids_count_once_and_the_last_one_wins(store: ResourceStore, account: str) -> None:
    with store.snapshot_writer(PROVIDER, account, "r", batch_size=2) as writer:
        writer.add(res(account, "dup", tags={"expiration": "1h"}, protected=True))
        writer.add(res(account, "dup", kind="volume"))  # same batch
        writer.add(res(account, "x"))
        writer.add(res(account, "x", tags={"expiration": "bogus"}))  # next batch
        snap = writer.commit()
    assert snap.resource_count == 2
    stats = store.account_stats(PROVIDER, account, CTIME + timedelta(days=1))
    assert (stats.total, stats.protected, stats.expired, stats.malformed) == (2, 0, 0, 1)
    assert {(g.kind, g.count) for g in stats.groups} == {("volume", 1), ("instance", 1)}


def test_a_collect_that_started_earlier_cannot_overwrite_a_newer_snapshot(store: ResourceStore, account: str) -> None:
    slow = store.snapshot_writer(PROVIDER, account, "slow")
    slow.add(res(account, "stale"))
    time.sleep(0.01)
    with store.snapshot_writer(PROVIDER, account, "fast") as fast:
        fast.add(res(account, "fresh"))
        fast.commit()
    live = slow.commit()
    assert slow.superseded
    assert live.run_id == "fast"
    assert _ids(store, account) == {"fresh"}


def test_lost_staging_is_detected_and_the_live_snapshot_kept(
    r: redis.Redis, store: ResourceStore, account: str
) -> None:
    with store.snapshot_writer(PROVIDER, account, "r1") as writer:
        writer.add(res(account, "keep"))
        writer.commit()
    writer = store.snapshot_writer(PROVIDER, account, "r2", batch_size=1)
    writer.add(res(account, "a"))
    for key in list(r.scan_iter(match=keys.staging_pattern(PROVIDER, account))):
        r.delete(key)  # as if the staging TTL had passed
    writer.add(res(account, "b"))
    with pytest.raises(StagingLost):
        writer.commit()
    assert _ids(store, account) == {"keep"}
    assert not list(r.scan_iter(match=keys.staging_pattern(PROVIDER, account)))


def test_staging_keys_expire_by_themselves_and_live_keys_do_not(
    r: redis.Redis, store: ResourceStore, account: str
) -> None:
    writer = store.snapshot_writer(PROVIDER, account, "r", batch_size=1)
    writer.add(res(account, "a", tags={"expiration": "1h"}, protected=True))
    staged = list(r.scan_iter(match=keys.staging_pattern(PROVIDER, account)))
    assert len(staged) == 3
    assert all(0 < r.ttl(k) <= 6 * 3600 for k in staged)
    writer.commit()
    live = keys.live(PROVIDER, account)
    assert [r.ttl(k) for k in (*live, keys.meta(PROVIDER, account))] == [-1] * 5


def test_the_footprint_of_a_committed_account_is_exactly_its_keys(
    r: redis.Redis, store: ResourceStore, account: str
) -> None:
    with store.snapshot_writer(PROVIDER, account, "r") as writer:
        writer.add(res(account, "a", tags={"expiration": "1h"}, protected=True))
        writer.commit()
    store.mark(store.get(PROVIDER, account, "a").ref, "test", "r")  # type: ignore[union-attr]
    assert _account_keys(r, account) == {
        *keys.live(PROVIDER, account),
        keys.meta(PROVIDER, account),
        keys.marks(PROVIDER, account),
    }
    store.forget_account(PROVIDER, account)
    assert _account_keys(r, account) == set()
    assert (PROVIDER, account) not in store.accounts()


def test_commit_drops_marks_of_resources_that_are_gone_and_keeps_the_others(store: ResourceStore, account: str) -> None:
    with store.snapshot_writer(PROVIDER, account, "r1") as writer:
        writer.add_many([res(account, "stays"), res(account, "goes")])
        writer.commit()
    assert store.mark_many(
        [res(account, "stays").ref, res(account, "goes").ref, res(account, "never-there").ref], "test", "r1"
    ) == 2  # fmt: skip
    with store.snapshot_writer(PROVIDER, account, "r2") as writer:
        writer.add(res(account, "stays"))
        writer.commit()
    assert [m.id for m in store.marks(account=account)] == ["stays"]


def test_a_batch_is_written_as_soon_as_it_is_full_so_memory_stays_bounded(store: ResourceStore, account: str) -> None:
    writer = store.snapshot_writer(PROVIDER, account, "r", batch_size=100)
    writer.add_many(res(account, f"i-{n}") for n in range(250))
    assert writer.count == 250
    assert len(writer._docs) == 50  # two batches already in Redis, one pending
    writer.abort()


def test_a_failed_batch_surfaces_at_the_next_flush_or_commit_and_abort_cleans_up(
    r: redis.Redis, store: ResourceStore, account: str
) -> None:
    with store.snapshot_writer(PROVIDER, account, "r1") as writer:
        writer.add(res(account, "keep"))
        writer.commit()
    writer = store.snapshot_writer(PROVIDER, account, "r2", batch_size=2)
    r.set(writer._stage.data, "not a hash")  # the next HSET fails with WRONGTYPE
    writer.add_many([res(account, "a"), res(account, "b")])  # sent; its reply is read later
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        writer.commit()
    writer.abort()
    assert not list(r.scan_iter(match=keys.staging_pattern(PROVIDER, account)))
    assert _ids(store, account) == {"keep"}
    # The broken connection was dropped, not handed back half-read: the client still works.
    assert r.ping()
    assert store.count(PROVIDER, account) == 1
