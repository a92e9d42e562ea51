"""generate_metrics against a real Redis: values from the store's stats, the swap, failures, counters."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from resoto_tasks.store import ResourceRef, ResourceStore
from tests.metrics.support import PROVIDER, Samples, cloud, commit, samples, value
from worker.metrics import generate as generate_module
from worker.metrics import keys, live
from worker.metrics.definitions import MetricDefinition, builtin_definitions, parse_text
from worker.metrics.generate import FILE_ERROR_KEY, generate
from worker.metrics.server import WsgiApp, make_app, make_registry

GIB = 2**30


def scrape(r: redis.Redis, app: WsgiApp | None = None) -> str:
    """One scrape through the endpoint's WSGI app (the same code the HTTP server runs); a fresh
    app unless one is given (an app keeps the live set it read until the set changes)."""
    app = app or make_app(make_registry(r), r)
    status: list[str] = []
    body = app(
        {"PATH_INFO": "/metrics", "REQUEST_METHOD": "GET", "QUERY_STRING": ""},
        lambda s, headers: status.append(s),
    )
    assert status == ["200 OK"]
    return b"".join(body).decode()


def ours(r: redis.Redis, accounts: set[str]) -> Samples:
    return samples(scrape(r), accounts=accounts)


def define(text: str) -> list[MetricDefinition]:
    return parse_text(text, "test.yaml")


@pytest.fixture
def two_accounts(store: ResourceStore, new_account: Callable[[], str]) -> tuple[str, str]:
    first, second = new_account(), new_account()
    commit(store, first, cloud(first, instances=3, volumes=2))
    commit(store, second, cloud(second, instances=5, volumes=1))
    return first, second


def test_builtin_metrics_equal_the_store_counts_per_account_region_and_kind(
    r: redis.Redis, store: ResourceStore, two_accounts: tuple[str, str]
) -> None:
    first, second = two_accounts
    store.mark(ResourceRef(provider=PROVIDER, account=first, id="v-1"), "test", "run-1")
    generate(run_id="builtin")
    found = ours(r, {first, second})
    for account, instances, volumes in [(first, 3, 2), (second, 5, 1)]:
        where = {"provider": PROVIDER, "account": account}
        # i-0 is in eu-central-1, the others and i-old in us-east-1
        assert value(found, "resoto_instances", region="us-east-1", **where) == instances
        assert value(found, "resoto_instances", region="eu-central-1", **where) == 1
        assert value(found, "resoto_resources", region="us-east-1", kind="bucket", **where) == 1
        assert value(found, "resoto_instance_cores", region="us-east-1", **where) == 2 * (instances - 1) + 4
        assert value(found, "resoto_instance_memory_bytes", region="us-east-1", **where) == 8 * (instances - 1) * GIB
        assert value(found, "resoto_volume_size_bytes", region="us-east-1", **where) == 10 * volumes * GIB
        cost = value(found, "resoto_hourly_cost_estimate", region="us-east-1", kind="instance", **where)
        assert cost == pytest.approx(0.25 * (instances - 1))
        assert value(found, "resoto_hourly_cost_estimate", region="us-east-1", kind="bucket", **where) is None
        assert value(found, "resoto_expired_resources", **where) == 1
        assert value(found, "resoto_protected_resources", **where) == 1
        assert value(found, "resoto_resources_collected", **where) == instances + volumes + 2
        total = sum(v for (name, _), v in found.items() if name == "resoto_resources" and ("account", account) in _)
        assert total == store.counts().by_account[f"{PROVIDER}/{account}"]
    assert value(found, "resoto_marked_resources", provider=PROVIDER, account=first) == 1
    assert value(found, "resoto_marked_resources", provider=PROVIDER, account=second) == 0


def test_a_user_definition_from_the_metrics_file_is_served(
    r: redis.Redis, two_accounts: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = two_accounts
    path = tmp_path / "metrics.yaml"
    path.write_text(
        "metrics:\n"
        "  - name: compute_cores\n"
        "    help: Cores of instances per account.\n"
        "    aggregate: sum\n"
        "    attribute: instance_cores\n"
        "    kinds: [instance]\n"
        "    labels: [account]\n"
    )
    monkeypatch.setenv("RESOTO_METRICS_FILE", str(path))
    report = generate(run_id="user-def")
    assert report.generation.errors == {}
    found = ours(r, {first, second})
    assert value(found, "resoto_compute_cores", account=first) == 3 * 2 + 4
    assert value(found, "resoto_compute_cores", account=second) == 5 * 2 + 4
    assert "# HELP resoto_compute_cores Cores of instances per account." in scrape(r)


def test_a_broken_metrics_file_fails_the_run_but_the_builtins_are_published(
    r: redis.Redis, two_accounts: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "metrics.yaml"
    path.write_text("metrics:\n  - {name: x, help: h, aggregate: avg}\n")
    monkeypatch.setenv("RESOTO_METRICS_FILE", str(path))
    report = generate(run_id="broken-file")
    assert report.generation.errors == {
        FILE_ERROR_KEY: f"{path}: metrics[0:x].aggregate: must be one of 'count', 'sum', 'expired', 'marked', "
        "'protected' or 'malformed'"
    }
    found = ours(r, set(two_accounts))
    assert value(found, "resoto_volumes", provider=PROVIDER, account=two_accounts[0], region="us-east-1") == 2
    assert samples(scrape(r))[("resoto_metrics_definition_failed", (("metric", FILE_ERROR_KEY),))] == 1


@pytest.fixture
def failing(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Names of definitions whose computation raises while in the set."""
    broken: set[str] = set()
    real = generate_module.compute

    def compute(definition: MetricDefinition, rows: generate_module.Rows) -> live.Family:
        if definition.name in broken:
            raise RuntimeError(f"injected failure of {definition.name}")
        return real(definition, rows)

    monkeypatch.setattr(generate_module, "compute", compute)
    return broken


def test_a_failing_definition_is_absent_and_the_others_are_fresh_without_duplicates(
    r: redis.Redis, store: ResourceStore, two_accounts: tuple[str, str], failing: set[str]
) -> None:
    first, second = two_accounts
    endpoint = make_app(make_registry(r), r)
    generate(run_id="before")
    before = samples(scrape(r, endpoint), accounts={first, second})
    assert value(before, "resoto_volumes", provider=PROVIDER, account=first, region="us-east-1") == 2
    commit(store, first, cloud(first, instances=7, volumes=4), run_id="r2")  # the cloud changed
    failing.add("volumes")
    report = generate(run_id="with-failure")
    assert set(report.generation.errors) == {"volumes"}
    after = samples(scrape(r, endpoint), accounts={first, second})  # asserts that no sample appears twice
    assert after == ours(r, {first, second})  # the endpoint's kept set was replaced, as a fresh one reads
    assert not [key for key in after if key[0] == "resoto_volumes"], "the failed definition left stale samples"
    assert value(after, "resoto_instances", provider=PROVIDER, account=first, region="us-east-1") == 7
    assert value(after, "resoto_volume_size_bytes", provider=PROVIDER, account=first, region="us-east-1") == 40 * GIB
    assert samples(scrape(r))[("resoto_metrics_definition_failed", (("metric", "volumes"),))] == 1
    failing.clear()
    generate(run_id="recovered")
    recovered = samples(scrape(r))
    assert value(recovered, "resoto_volumes", provider=PROVIDER, account=first, region="us-east-1") == 4
    assert not [key for key in recovered if key[0] == "resoto_metrics_definition_failed"]


def test_a_definition_dropped_from_the_set_leaves_no_stale_samples(
    r: redis.Redis, two_accounts: tuple[str, str]
) -> None:
    extra = define("metrics:\n  - {name: buckets_seen, help: h, kinds: [bucket]}\n")
    generate([*builtin_definitions(), *extra], run_id="with-extra")
    assert value(ours(r, set(two_accounts)), "resoto_buckets_seen", provider=PROVIDER, account=two_accounts[0],
                 region="us-east-1", kind="bucket") == 1  # fmt: skip
    generate(list(builtin_definitions()), run_id="without-extra")
    assert "resoto_buckets_seen" not in scrape(r)


def test_a_scrape_during_swaps_sees_one_whole_set_never_a_mix(
    r: redis.Redis, two_accounts: tuple[str, str], failing: set[str]
) -> None:
    """Two sets alternate (A: x1 and first_set; B: x1 doubled and second_set, with a failing definition)
    while a thread scrapes: every scrape is exactly A or exactly B for our accounts."""
    first = two_accounts[0]
    common = "  - {name: x%s, help: h, kinds: [instance], labels: [account], scale: %d}\n"
    set_a = define("metrics:\n" + common % ("1", 1) + "  - {name: first_set, help: h, labels: [account]}\n")
    set_b = define("metrics:\n" + common % ("1", 2) + "  - {name: second_set, help: h, labels: [account]}\n"
                   "  - {name: flaky, help: h, labels: [account]}\n")  # fmt: skip
    failing.add("flaky")
    expected_a = {("resoto_x1", 4.0), ("resoto_first_set", 7.0)}
    expected_b = {("resoto_x1", 8.0), ("resoto_second_set", 7.0)}
    stop = threading.Event()
    seen: list[set[tuple[str, float]]] = []
    problems: list[BaseException] = []
    client = redis.Redis(connection_pool=r.connection_pool)
    app = make_app(make_registry(client), client)  # one endpoint, as a worker has: its kept set is checked too

    def scraper() -> None:
        try:
            while not stop.is_set():
                found = samples(scrape(client, app), accounts={first})
                seen.append({(name, v) for (name, labels), v in found.items() if name in (
                    "resoto_x1", "resoto_first_set", "resoto_second_set", "resoto_flaky")})  # fmt: skip
        except BaseException as exc:  # reported below
            problems.append(exc)

    generate(set_a, run_id="swap-0")
    thread = threading.Thread(target=scraper)
    thread.start()
    try:
        for n in range(60):
            generate(set_b if n % 2 == 0 else set_a, run_id=f"swap-{n + 1}")
    finally:
        stop.set()
        thread.join(10)
    assert not problems, problems
    assert len(seen) > 5
    assert {frozenset(s) for s in seen} <= {frozenset(expected_a), frozenset(expected_b)}
    generate(list(builtin_definitions()), run_id="swap-end")


def test_a_counter_definition_adds_every_run_once_and_only_goes_up(
    r: redis.Redis, store: ResourceStore, two_accounts: tuple[str, str], failing: set[str]
) -> None:
    first = two_accounts[0]
    name = f"seen_x{first.split('-')[1]}_total"  # a counter of this test only: totals persist
    definitions = define(f"metrics:\n  - {{name: {name}, help: h, type: counter, labels: [account]}}\n")

    def served() -> float | None:
        return value(ours(r, {first}), f"resoto_{name}", account=first)

    generate(definitions, run_id="c-1")
    assert served() == 7
    generate(definitions, run_id="c-1")  # the same run redelivered: counted once
    assert served() == 7
    commit(store, first, cloud(first, instances=1, volumes=0), run_id="r2")  # fewer resources now
    generate(definitions, run_id="c-2")
    assert served() == 7 + 3
    failing.add(name)
    generate(definitions, run_id="c-3")
    assert served() is None  # absent while failing: not reset to zero, not kept stale
    failing.clear()
    generate(definitions, run_id="c-4")
    assert served() == 7 + 3 + 3
    r.hdel(keys.totals(), *[f for f in r.hkeys(keys.totals()) if f.startswith(f"resoto_{name}|")])


def test_a_run_that_cannot_read_the_store_keeps_the_previous_live_set(
    r: redis.Redis, two_accounts: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    generate(run_id="good")
    before = r.hgetall(keys.live())

    def broken(self: ResourceStore, now: object = None) -> list[object]:
        raise redis.ConnectionError("injected")

    monkeypatch.setattr(ResourceStore, "all_stats", broken)
    with pytest.raises(redis.ConnectionError):
        generate(run_id="bad")
    assert r.hgetall(keys.live()) == before
    assert not r.keys(keys.stage("*"))


def test_a_run_leaves_exactly_the_live_set_and_the_counter_totals_in_redis(
    r: redis.Redis, two_accounts: tuple[str, str]
) -> None:
    counter = define("metrics:\n  - {name: footprint_probe_total, help: h, type: counter, labels: []}\n")
    generate([*builtin_definitions(), *counter], run_id="footprint")
    prefix = keys.live().removesuffix("live")
    assert set(r.keys(f"{prefix}*")) == {keys.live(), keys.totals()}
    assert r.ttl(keys.live()) == -1  # served until the next run replaces it, however late
    assert r.hget(keys.totals(), "resoto_footprint_probe_total|{}") is not None
    r.hdel(keys.totals(), "resoto_footprint_probe_total|{}")
