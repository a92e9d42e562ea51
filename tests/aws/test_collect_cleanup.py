"""An hourly run against a seeded AWS estate (moto server, 2 accounts x 2 regions, plus an account
with nothing of its own), through separate ``celery worker`` processes as users start them.

One run is made per module and examined by several tests; what was deleted is read back from
AWS (plain boto3), never from the store.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.aws.support import (
    EMPTY_ACCOUNT,
    MotoServer,
    deleted_with,
    describe_estate,
    ledger_entries,
    mutating,
    worker_env,
)
from tests.support.redis_server import RedisServer
from tests.support.stack import Stack, isolated_stack
from tests.support.workers import WorkerProcess

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("aws")]
POLICY = Path(__file__).resolve().parents[2] / "deploy" / "aws-iam-policy.json"


@dataclass
class Outcome:
    manifest: Any
    before: dict[str, set[tuple[str, str]]]
    after: dict[str, set[tuple[str, str]]]
    first: dict[str, Any]
    entries: list[dict[str, Any]]
    second: dict[str, Any]
    second_entries: list[dict[str, Any]]
    calls: list[str]
    stack: Stack
    goes_with: dict[str, set[tuple[str, str]]]
    """What AWS deletes with what the run deletes (root volumes, a VPC's default group)."""


@pytest.fixture(scope="module")
def outcome(moto: MotoServer, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    """Seed, describe, run twice; the estate is described before and after the first run."""
    from worker.providers.aws import estate
    from worker.providers.aws.calls import read_actions

    moto.reset()
    manifest = estate.seed(moto.url)
    accounts = (*estate.ACCOUNTS, EMPTY_ACCOUNT)
    before = {a: describe_estate(moto.url, a) for a in accounts}
    goes_with = {}
    for a in accounts:
        doomed = {(r.kind, r.id) for r in manifest.resources if r.account == a and r.expected_deleted}
        instances = {rid for kind, rid in doomed if kind == "instance"}
        vpcs = {rid for kind, rid in doomed if kind == "vpc"}
        goes_with[a] = deleted_with(moto.url, a, instances, vpcs) - {("volume", r.id) for r in manifest.resources}
    call_log = tmp_path_factory.mktemp("aws") / "calls.log"
    with isolated_stack(redis_server, **worker_env(moto.url, accounts, call_log)) as stack:
        workers = [  # started side by side, as users start them: separate processes per queue
            WorkerProcess("collect,workflow", env=stack.env),
            WorkerProcess("cleanup", "--cleanup-expired", "--cleanup", "--cleanup-pool-size", "4", env=stack.env),
        ]
        for w in workers:
            stack.workers.append(w.start(wait=False))
        for w in workers:
            w.wait_ready()
        first = stack.run()
        after = {a: describe_estate(moto.url, a) for a in accounts}
        second = stack.run()
        yield Outcome(
            manifest, before, after, first, ledger_entries(first), second,
            ledger_entries(second), read_actions(str(call_log)), stack, goes_with,
        )  # fmt: skip


def test_the_run_deletes_exactly_the_expired_unprotected_resources_as_aws_describes_them(outcome: Outcome) -> None:
    assert outcome.first["status"] == "succeeded", json.dumps(outcome.first)[:3000]
    for account, before in outcome.before.items():
        gone = before - outcome.after[account]
        expected = {(r.kind, r.id) for r in outcome.manifest.resources if r.account == account and r.expected_deleted}
        collect = [s for s in outcome.first["steps"] if s["action"] == "collect"]
        assert gone == expected | outcome.goes_with[account], (account, json.dumps(collect)[:3000])
    kept = {(r.kind, r.id) for r in outcome.manifest.resources if not r.expected_deleted}
    assert kept, "the estate has resources that must survive"
    for account in outcome.after:
        mine = {(r.kind, r.id) for r in outcome.manifest.resources if r.account == account and not r.expected_deleted}
        assert mine <= outcome.after[account]


def test_the_ledger_lists_each_deletion_and_nothing_failed(outcome: Outcome) -> None:
    deleted = {(e["account"], e["id"]) for e in outcome.entries if e["decision"] == "deleted"}
    assert deleted == outcome.manifest.ids(deleted=True)
    assert not [e for e in outcome.entries if e["decision"] == "failed"]
    kinds = {e["kind"] for e in outcome.entries if e["decision"] == "deleted"}
    assert kinds == {
        "instance", "volume", "snapshot", "vpc", "subnet", "security_group", "internet_gateway", "elastic_ip",
        "load_balancer", "bucket",
    }  # fmt: skip


def test_expired_resources_that_are_protected_are_never_marked(outcome: Outcome) -> None:
    """Default VPCs with a default subnet and gateway, an instance protected by tag, one by
    termination protection: expired in every cell, protected in the store, absent from the ledger."""
    from datetime import UTC, datetime

    store = outcome.stack.store()
    protected = {(e.ref.account, e.ref.id) for e in store.expired(datetime.now(UTC)) if e.protected}
    expected = {(r.account, r.id) for r in outcome.manifest.resources if r.protected}
    assert len(expected) == 2 * 2 * 5
    assert protected == expected
    assert not {(e["account"], e["id"]) for e in outcome.entries} & protected


def test_every_dependent_is_deleted_in_an_earlier_wave_than_what_it_uses(outcome: Outcome) -> None:
    at = {(e["account"], e["id"]): e["at"] for e in outcome.entries if e["decision"] == "deleted"}
    checked = 0
    for r in outcome.manifest.resources:
        for dependency in r.depends_on:
            if (r.account, r.id) in at and (r.account, dependency) in at:
                assert at[(r.account, r.id)] < at[(r.account, dependency)], (r.kind, r.id, dependency)
                checked += 1
    assert checked >= 4 * 10  # per cell: instance 3, subnets 2, group, gateway, address, balancer 4


def test_an_account_with_nothing_of_its_own_is_collected_and_nothing_is_deleted_in_it(outcome: Outcome) -> None:
    collect = next(s for s in outcome.first["steps"] if s["action"] == "collect")
    assert collect["outcomes"][f"collect:aws:{EMPTY_ACCOUNT}"]["status"] == "done"
    snapshot = outcome.stack.store().snapshot("aws", EMPTY_ACCOUNT)
    assert snapshot is not None and snapshot.resource_count > 0  # the default VPCs AWS makes everywhere
    assert outcome.before[EMPTY_ACCOUNT] == outcome.after[EMPTY_ACCOUNT]
    assert not [e for e in outcome.entries if e["account"] == EMPTY_ACCOUNT]


def test_a_second_run_deletes_nothing(outcome: Outcome) -> None:
    assert outcome.second["status"] == "succeeded"
    assert not [e for e in outcome.second_entries if e["decision"] in ("deleted", "failed")]


def test_hostile_tags_are_stored_as_aws_returns_them(outcome: Outcome) -> None:
    from worker.providers.aws.estate import HOSTILE_TAGS

    store = outcome.stack.store()
    found = [
        r for account in outcome.manifest.ids(deleted=False)
        for r in [store.get("aws", account[0], account[1])]
        if r is not None and r.tags.get("owner") == HOSTILE_TAGS["owner"]
    ]  # fmt: skip
    assert len(found) == 4  # the kept instance of each cell
    for resource in found:
        assert {k: resource.tags[k] for k in HOSTILE_TAGS} == HOSTILE_TAGS
        assert resource.name == HOSTILE_TAGS["Name"]


def test_the_iam_policy_allows_every_call_the_provider_made_and_no_other(outcome: Outcome) -> None:
    policy = json.loads(POLICY.read_text())
    allowed = {a for s in policy["Statement"] for a in s["Action"]}
    made = set(outcome.calls)
    assert made, "the workers logged no AWS call"
    assert made <= allowed, f"calls the policy does not allow: {sorted(made - allowed)}"
    # Used only where this run's settings differ: no account list (the credentials' own account)
    # and no region list (every enabled region).
    other_configurations = {"sts:GetCallerIdentity", "ec2:DescribeRegions"}
    assert allowed - made <= other_configurations, (
        f"allowed but never needed: {sorted(allowed - made - other_configurations)}"
    )
    read_only = next(s for s in policy["Statement"] if s["Sid"] == "ResotoCollectReadOnly")["Action"]
    assert not mutating(read_only)
