"""Collect, cleanup_plan and cleanup with real workers started as users start them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support.redis_server import RedisServer
from tests.support.stack import Stack, isolated_stack

RUN_ENV = {
    "RESOTO_EXAMPLE_ACCOUNTS": "2",
    "RESOTO_EXAMPLE_RESOURCES_PER_ACCOUNT": "400",
    "RESOTO_EXAMPLE_ENFORCE_DEPENDENCIES": "true",
}


@pytest.fixture
def stack(redis_server: RedisServer) -> Iterator[Stack]:
    with isolated_stack(redis_server, **RUN_ENV) as s:
        yield s


def _expired_unprotected(s: Stack) -> list[Any]:
    store = s.store()
    return [e for e in store.expired(datetime.now(UTC)) if not e.protected and not store.is_protected(e.ref)]


def _protected_ids(s: Stack) -> set[str]:
    cloud = s.cloud()
    return {r.id for a in cloud.accounts() for r in cloud.collect(a) if r.protected}


def _step(record: dict[str, Any], action: str) -> dict[str, Any]:
    return next(st for st in record["steps"] if st["action"] == action)


def test_one_hourly_run_deletes_every_expired_unprotected_resource_and_a_second_deletes_nothing(
    stack: Stack,
) -> None:
    stack.worker("collect,workflow")
    stack.worker("cleanup", "--cleanup-expired", "--cleanup")
    cloud = stack.cloud()
    protected_before = _protected_ids(stack)
    assert protected_before
    first = stack.run()
    assert first["_exit"] == 0, first
    assert first["status"] == "succeeded"
    totals = first["ledger"]["totals"]
    deleted = {(e["account"], e["id"]) for e in first["ledger"]["entries"] if e["decision"] == "deleted"}
    assert totals["deleted"] == len(deleted) > 0
    # nothing expired and unprotected is left, in the store or in the cloud
    assert _expired_unprotected(stack) == []
    for account, rid in deleted:
        assert cloud.is_deleted(account, rid)
        assert stack.store().get("example", account, rid) is None
    assert _protected_ids(stack) == protected_before
    # every deletion in the cloud is accounted for in the ledger
    in_cloud = {(a, rid) for a in cloud.accounts() for rid in cloud.deleted_ids(a)}
    assert in_cloud == deleted
    second = stack.run()
    assert second["status"] == "succeeded"
    assert second["ledger"] is None
    assert {(a, rid) for a in cloud.accounts() for rid in cloud.deleted_ids(a)} == deleted


def test_dry_run_decides_and_records_everything_and_deletes_nothing(stack: Stack) -> None:
    stack.worker("collect,workflow")
    stack.worker("cleanup", "--cleanup-expired", "--cleanup", "--cleanup-dry-run")
    record = stack.run()
    assert record["status"] == "succeeded"
    ledger = record["ledger"]
    assert ledger["totals"] == {"skipped": len(ledger["entries"])}
    assert ledger["skipped_by_reason"]["dry run"] > 0
    cloud = stack.cloud()
    assert all(not cloud.deleted_ids(a) for a in cloud.accounts())
    assert _expired_unprotected(stack)


def test_the_count_cap_deletes_nothing_and_fails_the_step_saying_how_many(stack: Stack) -> None:
    stack.worker("collect,workflow")
    stack.worker("cleanup", "--cleanup-expired", "--cleanup", "--cleanup-max", "3")
    record = stack.run()
    step = _step(record, "cleanup")
    assert step["status"] == "failed"
    assert "more than --cleanup-max 3; deleted nothing" in step["error"]
    assert record["ledger"]["skipped_by_reason"]["cap"] > 3
    cloud = stack.cloud()
    assert all(not cloud.deleted_ids(a) for a in cloud.accounts())


def test_the_percent_cap_deletes_nothing(stack: Stack) -> None:
    stack.worker("collect,workflow")
    stack.worker("cleanup", "--cleanup-expired", "--cleanup", "--cleanup-max-percent", "0.5")
    record = stack.run()
    step = _step(record, "cleanup")
    assert step["status"] == "failed"
    assert "more than --cleanup-max-percent 0.5" in step["error"]
    cloud = stack.cloud()
    assert all(not cloud.deleted_ids(a) for a in cloud.accounts())


def test_a_failing_account_keeps_its_previous_snapshot_and_is_not_cleaned(redis_server: RedisServer) -> None:
    with isolated_stack(redis_server, **RUN_ENV) as stack:
        stack.worker("collect,workflow")
        first = stack.run("collect")
        assert first["status"] == "succeeded"
        before = {a: stack.store().snapshot("example", a) for a in ("example-1", "example-2")}
        for w in stack.workers:
            w.stop()
        stack.workers.clear()
        stack.worker("collect,workflow", RESOTO_EXAMPLE_FAIL_COLLECT="example-1")
        stack.worker("cleanup", "--cleanup-expired", "--cleanup")
        record = stack.run()
        collect = _step(record, "collect")
        assert collect["status"] == "failed"
        assert collect["outcomes"]["collect:example:example-1"]["status"] == "error"
        assert "injected collect failure" in collect["outcomes"]["collect:example:example-1"]["error"]
        after = {a: stack.store().snapshot("example", a) for a in ("example-1", "example-2")}
        assert after["example-1"] == before["example-1"]  # kept, untouched
        assert after["example-2"].run_id == record["id"]  # replaced by this run
        entries = record["ledger"]["entries"]
        assert {e["reason"] for e in entries if e["account"] == "example-1"} == {"failed collect"}
        assert all(e["decision"] == "deleted" for e in entries if e["account"] == "example-2")
        cloud = stack.cloud()
        assert not cloud.deleted_ids("example-1")
        assert cloud.deleted_ids("example-2")


def test_a_cleanup_plan_hook_that_marks_resources_gets_them_deleted_in_the_same_run(stack: Stack) -> None:
    stack.worker("collect,workflow")
    stack.worker("cleanup", "--cleanup", RESOTO_HOOK_MODULES="tests.support.hooks,tests.support.cleanup_hooks")
    record = stack.run()
    assert record["status"] == "succeeded", record
    entries = record["ledger"]["entries"]
    buckets = [e for e in entries if e["kind"] == "bucket"]
    assert buckets and all(e["mark_reason"] == "no buckets allowed" for e in buckets)
    assert all(e["decision"] == "deleted" for e in buckets if not _is_protected(stack, e))
    assert all(e["reason"] == "protected" for e in buckets if _is_protected(stack, e))
    assert not [e for e in entries if e["mark_reason"] == "expired"]  # no --cleanup-expired


def _is_protected(stack: Stack, entry: dict[str, Any]) -> bool:
    return any(r.id == entry["id"] and r.protected for r in stack.cloud().collect(entry["account"]))


def test_deletion_follows_dependencies_dependents_first(stack: Stack) -> None:
    # the cloud refuses to delete anything still in use, so a wrong order would fail deletions
    stack.worker("collect,workflow")
    stack.worker("cleanup", "--cleanup-expired", "--cleanup", "--cleanup-pool-size", "4")
    record = stack.run()
    entries = record["ledger"]["entries"]
    assert record["ledger"]["totals"].get("failed", 0) == 0, record["ledger"]
    deleted_at = {(e["account"], e["id"]): e["at"] for e in entries if e["decision"] == "deleted"}
    assert {"subnet", "instance", "volume"} <= {e["kind"] for e in entries if e["decision"] == "deleted"}
    from worker.providers.example import _Generator, resource_id

    cloud = stack.cloud()
    checked = 0
    for account in cloud.accounts():
        total = cloud.settings.resources_per_account
        generator = _Generator(cloud.settings.seed, account, total, cloud.epoch(account), set())
        for index in range(total):
            resource = generator.resource(index, resource_id(index))
            if (account, resource.id) not in deleted_at:
                continue
            for dependency in resource.depends_on:  # the resource must go before what it uses
                if (account, dependency) in deleted_at:
                    assert deleted_at[(account, resource.id)] <= deleted_at[(account, dependency)]
                    checked += 1
    assert checked > 0
