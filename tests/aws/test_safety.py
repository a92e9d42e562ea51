"""The cleaner's safety against AWS: dry run and caps call no delete API at all (counted from the
provider's call log), and an account whose role cannot be assumed keeps its last snapshot and is
not cleaned while the other account is.

The workers reach moto through :class:`FailingProxy`, which refuses ``AssumeRole`` into the
accounts a test names, as AWS does when a trust policy changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.aws.support import (
    FailingProxy,
    MotoServer,
    describe_estate,
    ledger_entries,
    mutating,
    worker_env,
)
from tests.support.redis_server import RedisServer
from tests.support.stack import Stack, isolated_stack
from tests.support.workers import WorkerProcess

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("aws")]
REGION = ("us-east-1",)


@dataclass
class Estate:
    moto: MotoServer
    proxy: FailingProxy
    stack: Stack
    manifest: Any
    call_log: Path

    def calls(self) -> list[str]:
        from worker.providers.aws.calls import read_actions

        return read_actions(str(self.call_log))

    def describe(self) -> dict[str, set[tuple[str, str]]]:
        from worker.providers.aws import estate

        return {a: describe_estate(self.moto.url, a, REGION) for a in estate.ACCOUNTS}

    def run_with_cleaner(self, *flags: str, workflow: str = "collect_and_cleanup") -> dict[str, Any]:
        """One run with a cleanup worker started with ``flags``, stopped afterwards. A solo pool:
        it starts faster than prefork, and the cleaner deletes on its own threads either way."""
        cleaner = WorkerProcess(
            "cleanup", "--cleanup-expired", "--cleanup", *flags, pool="solo", concurrency=1, env=self.stack.env
        ).start()
        try:
            return self.stack.run(workflow)
        finally:
            cleaner.stop()


@pytest.fixture(scope="module")
def aws(moto: MotoServer, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estate]:
    from worker.providers.aws import estate

    moto.reset()
    manifest = estate.seed(moto.url, regions=REGION)
    proxy = FailingProxy(moto.url).start()
    call_log = tmp_path_factory.mktemp("aws-safety") / "calls.log"
    try:
        with isolated_stack(redis_server, **worker_env(proxy.url, estate.ACCOUNTS, call_log, REGION)) as stack:
            stack.worker("collect,workflow")
            assert stack.run("collect")["status"] == "succeeded"  # what dry runs and caps plan from
            yield Estate(moto, proxy, stack, manifest, call_log)
    finally:
        proxy.stop()


def _step(record: dict[str, Any], action: str) -> dict[str, Any]:
    return next(s for s in record["steps"] if s["action"] == action)


def test_a_dry_run_decides_everything_and_calls_no_delete_api(aws: Estate) -> None:
    before, logged = aws.describe(), len(aws.calls())
    record = aws.run_with_cleaner("--cleanup-dry-run", workflow="cleanup")
    assert record["status"] == "succeeded", record
    entries = ledger_entries(record)
    assert {(e["account"], e["id"]) for e in entries} == aws.manifest.ids(deleted=True)
    assert {(e["decision"], e["reason"]) for e in entries} == {("skipped", "dry run")}
    assert not mutating(aws.calls()[logged:])
    assert aws.describe() == before


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--cleanup-max", "3"), "more than --cleanup-max 3; deleted nothing"),
        (("--cleanup-max-percent", "5"), "more than --cleanup-max-percent 5; deleted nothing"),
    ],
)
def test_a_cap_stops_the_cleanup_before_the_first_delete(aws: Estate, flags: tuple[str, str], message: str) -> None:
    before, logged = aws.describe(), len(aws.calls())
    record = aws.run_with_cleaner(*flags, workflow="cleanup")
    cleanup = _step(record, "cleanup")
    assert cleanup["status"] == "failed"
    assert message in cleanup["error"]
    entries = ledger_entries(record)
    assert {(e["decision"], e["reason"]) for e in entries} == {("skipped", "cap")}
    assert not mutating(aws.calls()[logged:])
    assert aws.describe() == before


def test_an_account_whose_role_cannot_be_assumed_keeps_its_snapshot_and_is_not_cleaned(aws: Estate) -> None:
    """Besides, the healthy account's policy lacks ``ec2:DeleteSnapshot``: that refusal lands in the
    ledger with AWS's code, the snapshot stays, everything else expired in that account goes."""
    from worker.providers.aws import estate

    failing, healthy = estate.ACCOUNTS
    store = aws.stack.store()
    kept_snapshot = store.snapshot("aws", failing)  # from the module's first collect
    assert kept_snapshot is not None
    before, logged = aws.describe(), len(aws.calls())
    aws.proxy.fail_accounts, aws.proxy.deny_actions = {failing}, {"DeleteSnapshot"}
    try:
        record = aws.run_with_cleaner()
    finally:
        aws.proxy.fail_accounts, aws.proxy.deny_actions = set(), set()
    outcome = _step(record, "collect")["outcomes"][f"collect:aws:{failing}"]
    assert outcome["status"] == "error"
    assert "AccessDenied" in outcome["error"]
    assert store.snapshot("aws", failing) == kept_snapshot
    assert store.snapshot("aws", healthy).run_id == record["id"]
    entries = ledger_entries(record)
    assert {e["reason"] for e in entries if e["account"] == failing} == {"failed collect"}
    snapshots = {(r.account, r.id) for r in aws.manifest.resources if r.kind == "snapshot" and r.expected_deleted}
    refused = [e for e in entries if e["decision"] == "failed"]
    assert {(e["account"], e["id"]) for e in refused} == {s for s in snapshots if s[0] == healthy}
    assert all(": UnauthorizedOperation: You are not authorized" in e["reason"] for e in refused)
    assert _step(record, "cleanup")["status"] == "failed"
    deleted = {(e["account"], e["id"]) for e in entries if e["decision"] == "deleted"}
    assert deleted == aws.manifest.ids(deleted=True, account=healthy) - snapshots
    after = aws.describe()
    assert mutating(aws.calls()[logged:])  # the call log does see a cleaner's deletes
    assert after[failing] == before[failing]
    gone = {rid for _, rid in before[healthy] - after[healthy]}
    assert {rid for _, rid in deleted} <= gone
    assert not {rid for _, rid in snapshots} & gone
