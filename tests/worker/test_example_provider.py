"""The example cloud: deterministic, realistic, stateful in Redis, fault-injectable, and scalable."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import psutil
import pytest
import redis

from resoto_tasks.store import Resource, ResourceStore
from resoto_tasks.store.expiry import expiry_status, is_expired
from resoto_tasks.store.resources import serialize
from worker.providers.base import ProviderError
from worker.providers.example import ExampleProvider, ExampleSettings, index_of, resource_id

EPOCH = datetime(2024, 6, 1, tzinfo=UTC)

MakeCloud = Callable[..., ExampleProvider]


@pytest.fixture
def make_cloud(r: redis.Redis) -> Iterator[MakeCloud]:
    """Example clouds with unique account names (the Redis server is shared), reset afterwards."""
    made: list[ExampleProvider] = []

    def make(**settings: object) -> ExampleProvider:
        values: dict[str, object] = {"account_prefix": f"ex{uuid.uuid4().hex[:8]}-", "seed": 7}
        values.update(settings)
        cloud = ExampleProvider(ExampleSettings.model_validate(values), r=r, epoch=EPOCH)
        made.append(cloud)
        return cloud

    yield make
    store = ResourceStore(r)
    for cloud in made:
        cloud.reset()
        for account in cloud.accounts():
            store.forget_account("example", account)


def test_settings_come_from_resoto_example_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESOTO_EXAMPLE_ACCOUNTS", "4")
    monkeypatch.setenv("RESOTO_EXAMPLE_RESOURCES_PER_ACCOUNT", "1000")
    monkeypatch.setenv("RESOTO_EXAMPLE_SEED", "3")
    monkeypatch.setenv("RESOTO_EXAMPLE_FAIL_DELETE", "vol-*, i-00000001")
    settings = ExampleSettings()
    assert (settings.accounts, settings.resources_per_account, settings.seed) == (4, 1000, 3)
    assert settings.fail_delete == ["vol-*", "i-00000001"]
    assert ExampleProvider(settings).accounts() == [f"example-{n}" for n in range(1, 5)]


def test_defaults_are_two_accounts_of_500() -> None:
    settings = ExampleSettings(_env_file=None)
    assert (settings.accounts, settings.resources_per_account) == (2, 500)


def test_collect_is_deterministic_per_seed_and_account(make_cloud: MakeCloud) -> None:
    cloud = make_cloud(resources_per_account=400)
    same = make_cloud(resources_per_account=400, account_prefix=cloud.settings.account_prefix)
    other_seed = make_cloud(resources_per_account=400, account_prefix=cloud.settings.account_prefix, seed=8)
    account, second = cloud.accounts()
    first = list(cloud.collect(account))
    assert first == list(same.collect(account))
    assert first != list(other_seed.collect(account))
    assert [x.id for x in first] == [x.id for x in cloud.collect(second)]
    assert first != list(cloud.collect(second))


def test_generated_resources_are_exactly_what_validation_would_build(make_cloud: MakeCloud) -> None:
    """The generator skips validation for speed: every form it produces (all tag forms, deleted
    dependencies, a partial last block) must validate to the same resource and stored JSON."""
    cloud = make_cloud(resources_per_account=4_013)
    account = cloud.accounts()[0]
    cloud.delete(next(x for x in cloud.collect(account) if x.kind == "volume"))
    for generated in cloud.collect(account):
        validated = Resource.model_validate(generated.model_dump())
        assert validated == generated
        assert serialize(validated) == serialize(generated)
        assert generated.ctime.tzinfo is UTC


def test_ids_map_back_to_their_index() -> None:
    for index in (0, 1, 2, 4, 36, 38, 39, 40, 999_999):
        assert index_of(resource_id(index)) == index
    assert index_of("i-00000000") is None  # index 0 is the vpc
    assert index_of("vol-zz") is None


def test_resources_form_dependency_chains_inside_their_account(make_cloud: MakeCloud) -> None:
    cloud = make_cloud(resources_per_account=2000)
    resources = {x.id: x for x in cloud.collect(cloud.accounts()[0])}
    kinds = Counter(x.kind for x in resources.values())
    assert kinds == {"vpc": 50, "subnet": 250, "instance": 500, "volume": 1100, "bucket": 100}
    for x in resources.values():
        deps = [resources[d] for d in x.depends_on]
        if x.kind == "subnet":
            assert [d.kind for d in deps] == ["vpc"]
        elif x.kind == "instance":
            assert [d.kind for d in deps] == ["subnet", "volume", "volume"]
        else:
            assert deps == []
        assert {d.region for d in deps} <= {x.region}


def test_a_realistic_mix_of_expiry_and_protection(make_cloud: MakeCloud) -> None:
    cloud = make_cloud(resources_per_account=20_000)
    now = EPOCH + timedelta(minutes=5)
    resources = list(cloud.collect(cloud.accounts()[0]))
    status = {x.id: expiry_status(x.tags, x.ctime) for x in resources}
    expired = {x.id for x in resources if is_expired(status[x.id].expires_at, now)}
    future = {x.id for x in resources if status[x.id].expires_at is not None} - expired
    malformed = {i for i, s in status.items() if s.malformed}
    protected = {x.id for x in resources if x.protected}
    share = len(resources) / 100
    assert 3 < len(expired) / share < 9
    assert 3 < len(future) / share < 7  # 4.5-5.1 across 40 random account names (the share is ~4.8)
    assert 0.5 < len(malformed) / share < 2
    assert 1.5 < len(protected) / share < 4.5
    assert protected & expired  # some expired resources are protected
    # Every tag form appears among the expired resources.
    forms = Counter(
        "iso-period" if v.startswith("P") else k
        for x in resources if x.id in expired
        for k, v in x.tags.items() if k in ("resoto:expires", "resoto:expiration", "expiration")
    )  # fmt: skip
    assert set(forms) == {"resoto:expires", "resoto:expiration", "expiration", "iso-period"}
    assert all(n > 10 for n in forms.values())
    # Expiry is relative to the cloud's epoch: everything expired is already expired at the epoch.
    assert all(is_expired(status[i].expires_at, EPOCH) for i in expired)
    # Everything an expired, unprotected resource depends on... can go after it: what depends on an
    # expired resource is itself expired and unprotected, so cleanup can empty the expired set.
    by_id = {x.id: x for x in resources}
    for x in resources:
        for dep in x.depends_on:
            if dep in expired and not by_id[dep].protected:
                assert x.id in expired and not x.protected


def test_delete_removes_a_resource_from_the_next_collect(make_cloud: MakeCloud) -> None:
    cloud = make_cloud(resources_per_account=200)
    account = cloud.accounts()[0]
    resources = list(cloud.collect(account))
    volume = next(x for x in resources if x.kind == "volume" and x.id.endswith("04"))
    instance = next(x for x in resources if volume.id in x.depends_on)
    cloud.delete(instance)
    cloud.delete(instance)  # idempotent
    cloud.delete(volume)
    after = {x.id: x for x in cloud.collect(account)}
    assert len(after) == len(resources) - 2
    assert instance.id not in after and volume.id not in after
    assert cloud.is_deleted(account, volume.id)
    # A fresh provider object sees the same cloud: the state is in Redis.
    again = ExampleProvider(cloud.settings, epoch=EPOCH)
    assert {x.id for x in again.collect(account)} == set(after)


def test_depends_on_drops_deleted_dependencies(make_cloud: MakeCloud) -> None:
    cloud = make_cloud(resources_per_account=40)
    account = cloud.accounts()[0]
    volume = next(x for x in cloud.collect(account) if x.id == resource_id(4))
    cloud.delete(volume)
    instance = next(x for x in cloud.collect(account) if x.id == resource_id(2))
    assert volume.id not in instance.depends_on


def test_a_partial_last_block_never_depends_on_missing_resources(make_cloud: MakeCloud) -> None:
    cloud = make_cloud(resources_per_account=43)
    resources = {x.id: x for x in cloud.collect(cloud.accounts()[0])}
    assert len(resources) == 43
    assert all(d in resources for x in resources.values() for d in x.depends_on)


def test_delete_refuses_resources_that_are_not_in_the_cloud(make_cloud: MakeCloud) -> None:
    cloud = make_cloud(resources_per_account=10)
    account = cloud.accounts()[0]
    real = next(iter(cloud.collect(account)))
    with pytest.raises(ProviderError, match="no such resource"):
        cloud.delete(real.model_copy(update={"id": resource_id(50)}))
    with pytest.raises(ProviderError, match="unknown account"):
        cloud.delete(real.model_copy(update={"account": "elsewhere"}))
    with pytest.raises(ProviderError, match="belongs to provider"):
        cloud.delete(real.model_copy(update={"provider": "aws"}))


def test_injected_collect_failure_raises_halfway(make_cloud: MakeCloud) -> None:
    prefix = f"ex{uuid.uuid4().hex[:8]}-"
    cloud = make_cloud(resources_per_account=100, account_prefix=prefix, fail_collect=[f"{prefix}1"])
    bad, good = cloud.accounts()
    seen: list[Resource] = []
    with pytest.raises(ProviderError, match="injected collect failure"):
        seen.extend(cloud.collect(bad))
    assert len(seen) == 50
    assert len(list(cloud.collect(good))) == 100
    empty = make_cloud(resources_per_account=0, account_prefix=prefix, fail_collect=[bad])
    with pytest.raises(ProviderError, match="injected collect failure"):
        list(empty.collect(bad))


def test_page_latency_pauses_before_each_page_of_forty_and_changes_nothing_else(
    make_cloud: MakeCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    prompt = make_cloud(resources_per_account=100)
    slow = make_cloud(resources_per_account=100, account_prefix=prompt.settings.account_prefix, page_latency_ms=7)
    pauses: list[float] = []
    monkeypatch.setattr("worker.providers.example.time.sleep", pauses.append)
    account = prompt.accounts()[0]
    assert list(prompt.collect(account)) == list(slow.collect(account))
    assert pauses == [0.007] * 3  # pages at 0, 40 and 80


def test_a_failing_collect_keeps_the_previous_snapshot(make_cloud: MakeCloud, r: redis.Redis) -> None:
    store = ResourceStore(r)
    cloud = make_cloud(resources_per_account=120)
    account = cloud.accounts()[0]
    with store.snapshot_writer("example", account, "run-1") as writer:
        writer.add_many(cloud.collect(account))
        writer.commit()
    failing = ExampleProvider(cloud.settings.model_copy(update={"fail_collect": [account]}), r=r, epoch=EPOCH)

    def collect_into_store() -> None:
        with store.snapshot_writer("example", account, "run-2", batch_size=10) as writer:
            writer.add_many(failing.collect(account))
            writer.commit()

    with pytest.raises(ProviderError, match="injected collect failure"):
        collect_into_store()
    snapshot = store.snapshot("example", account)
    assert snapshot is not None and snapshot.run_id == "run-1"
    assert store.count("example", account) == 120


def test_injected_delete_failures_match_id_patterns(make_cloud: MakeCloud) -> None:
    cloud = make_cloud(resources_per_account=40, fail_delete=["vol-*"])
    account = cloud.accounts()[0]
    resources = list(cloud.collect(account))
    with pytest.raises(ProviderError, match="injected delete failure"):
        cloud.delete(next(x for x in resources if x.kind == "volume"))
    cloud.delete(next(x for x in resources if x.kind == "bucket"))


def test_enforced_dependencies_refuse_deleting_what_is_still_used(make_cloud: MakeCloud) -> None:
    cloud = make_cloud(resources_per_account=40, enforce_dependencies=True)
    account = cloud.accounts()[0]
    by_id = {x.id: x for x in cloud.collect(account)}
    vpc, subnet, inst_a, inst_b = (by_id[resource_id(i)] for i in (0, 1, 2, 3))
    with pytest.raises(ProviderError, match=f"DependencyViolation: still used by {inst_a.id}, {inst_b.id}"):
        cloud.delete(subnet)
    with pytest.raises(ProviderError, match="DependencyViolation"):
        cloud.delete(by_id[resource_id(4)])  # instance a's volume
    cloud.delete(inst_a)
    cloud.delete(by_id[resource_id(4)])
    cloud.delete(inst_b)
    cloud.delete(subnet)
    with pytest.raises(ProviderError, match="DependencyViolation"):
        cloud.delete(vpc)  # four more subnets use it


def test_the_epoch_is_stored_on_first_use_so_expiry_does_not_drift(make_cloud: MakeCloud, r: redis.Redis) -> None:
    pinned = make_cloud(resources_per_account=10)
    cloud = ExampleProvider(pinned.settings, r=r)  # no fixed epoch: the first use stores one
    account = cloud.accounts()[0]
    first = list(cloud.collect(account))
    time.sleep(1.1)
    assert list(ExampleProvider(pinned.settings, r=r).collect(account)) == first
    assert abs((cloud.epoch(account) - datetime.now(UTC)).total_seconds()) < 5


@pytest.mark.slow
def test_fifty_thousand_resources_collect_into_the_store_quickly_in_bounded_memory(
    make_cloud: MakeCloud, r: redis.Redis
) -> None:
    store = ResourceStore(r)
    cloud = make_cloud(resources_per_account=50_000, accounts=1)
    account = cloud.accounts()[0]
    rss_before = psutil.Process().memory_info().rss
    started = time.perf_counter()
    with store.snapshot_writer("example", account, "scale") as writer:
        writer.add_many(cloud.collect(account))
        snapshot = writer.commit()
    elapsed_s = time.perf_counter() - started
    grown_mb = (psutil.Process().memory_info().rss - rss_before) / 1e6
    assert snapshot.resource_count == 50_000
    assert elapsed_s < 15, f"50k resources took {elapsed_s:.1f} s"
    assert grown_mb < 60, f"the process grew by {grown_mb:.0f} MB"
    stats = store.account_stats("example", account, EPOCH)
    assert stats.total == 50_000
    assert sum(g.count for g in stats.groups) == 50_000
    assert 0 < stats.expired < 5_000
