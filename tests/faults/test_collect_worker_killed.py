"""A collect worker SIGKILLed in the middle of an account.

Either the task is redelivered (acks late + the broker's visibility timeout) and the run completes
with one fresh snapshot per account, or the step times out and the run says so within one
supervisor period of the deadline. In both cases the previous snapshot of the account stays
whole until a complete new one replaces it.
"""

from __future__ import annotations

import json
import time
from typing import Any

import psutil
import pytest

from resoto_tasks import keys
from resoto_tasks.models import OutcomeStatus, RunStatus, StepStatus
from resoto_tasks.store import keys as store_keys
from tests.faults.support import (
    SUBSCRIBER_TTL_S,
    SUPERVISOR_INTERVAL_S,
    VISIBILITY_TIMEOUT_S,
    FaultStack,
    parse_iso,
    wait_until,
)
from tests.support.workers import WorkerProcess

pytestmark = pytest.mark.faults

ACCOUNTS = ("example-1", "example-2")
PER_ACCOUNT = 20_000
PAGE_LATENCY_MS = 5
"""An account's collect lasts at least 500 pages x 5 ms = 2.5 s, long enough to be killed in the
middle, while the machine's CPU stays free for the rest of the suite (it waits as for an API)."""
CLOUD_ENV = {
    "RESOTO_EXAMPLE_ACCOUNTS": "2",
    "RESOTO_EXAMPLE_RESOURCES_PER_ACCOUNT": str(PER_ACCOUNT),
    "RESOTO_EXAMPLE_PAGE_LATENCY_MS": str(PAGE_LATENCY_MS),
}


def footprint(stack: FaultStack, account: str) -> dict[str, Any]:
    """What the live snapshot of one account is made of: metadata, sizes and every count."""
    live = store_keys.live("example", account)
    snapshot = stack.store().snapshot("example", account)
    assert snapshot is not None
    return {
        "run_id": snapshot.run_id,
        "resource_count": snapshot.resource_count,
        "data": stack.r.hlen(live.data),
        "expiry": stack.r.zcard(live.expiry),
        "protected": stack.r.scard(live.protected),
        "counts": stack.r.hgetall(live.counts),
    }


def staging_keys(stack: FaultStack, account: str) -> list[str]:
    return list(stack.r.scan_iter(match=store_keys.staging_pattern("example", account), count=1000))


def collect_in_the_middle(stack: FaultStack, run_id: str) -> dict[str, int]:
    """Wait until every account of the run's collect is well under way but not done."""

    def midway() -> dict[str, int] | None:
        found = {k: v for k, v in stack.progress(run_id).items() if k.startswith("1/collect:")}
        if len(found) == len(ACCOUNTS) and all(PER_ACCOUNT // 5 <= v < PER_ACCOUNT for v in found.values()):
            return found
        return None

    found: dict[str, int] = wait_until(midway, 60, "both accounts half collected", every_s=0.02)
    return found


def collector_after_a_good_collect(stack: FaultStack) -> tuple[WorkerProcess, dict[str, dict[str, Any]]]:
    """A workflow worker and a collect worker on the test cloud, after one collect that succeeded:
    the collect worker and each account's footprint of that good collect."""
    stack.env.update(CLOUD_ENV)
    flow = stack.worker("workflow", wait=False)
    collector = stack.worker("collect", wait=False)
    stack.workers_ready(flow, collector)
    return collector, good_first_collect(stack)


def good_first_collect(stack: FaultStack) -> dict[str, dict[str, Any]]:
    first = stack.run_and_wait("collect")
    assert first["status"] == "succeeded", first
    before = {a: footprint(stack, a) for a in ACCOUNTS}
    for account in ACCOUNTS:
        assert before[account]["run_id"] == first["id"]
        assert before[account]["data"] == before[account]["resource_count"] == PER_ACCOUNT
    return before


def test_a_collect_worker_killed_mid_account_is_redelivered_and_the_run_completes_with_one_snapshot_per_account(
    fault_stack: FaultStack,
) -> None:
    stack = fault_stack
    collector, before = collector_after_a_good_collect(stack)

    run_id = stack.start("collect")
    collect_in_the_middle(stack, run_id)
    collector.kill()
    dispatched_at = parse_iso(stack.run(run_id).steps[1].started_at or "")
    # Nothing of the half-written snapshots shows: the previous ones are whole.
    assert {a: footprint(stack, a) for a in ACCOUNTS} == before
    assert stack.run(run_id).status == RunStatus.running
    abandoned = {a: staging_keys(stack, a) for a in ACCOUNTS}
    assert all(abandoned.values()), "the killed collect had written no staging keys"

    # A collect worker that starts once the visibility timeout has passed restores the messages.
    time.sleep(max(0.0, dispatched_at.timestamp() + VISIBILITY_TIMEOUT_S + 0.5 - time.time()))
    back_at = time.time()
    stack.worker("collect")
    run = stack.wait_finished(run_id, 60)

    assert run.status == RunStatus.succeeded, run.reason
    step = run.steps[1]
    assert step.action == "collect" and step.status == StepStatus.done
    outcomes = stack.outcomes(run_id)
    for account in ACCOUNTS:
        outcome = outcomes[f"1/collect:example:{account}"]
        assert outcome["status"] == OutcomeStatus.done
        assert outcome["result"]["resources"] == PER_ACCOUNT
        assert parse_iso(outcome["started_at"]).timestamp() >= back_at - 0.5  # run again, by the new worker
        after = footprint(stack, account)
        assert after["run_id"] == run_id
        assert {k: v for k, v in after.items() if k != "run_id"} == {
            k: v for k, v in before[account].items() if k != "run_id"
        }
        # The dead writer's staging is not a second snapshot: never live, and it expires by itself.
        for key in abandoned[account]:
            assert 0 < stack.r.ttl(key) <= 6 * 3600
    assert sorted(stack.store().accounts()) == [("example", a) for a in ACCOUNTS]


def test_a_collect_pool_process_killed_mid_account_is_requeued_at_once_and_the_run_completes(
    fault_stack: FaultStack,
) -> None:
    """The OOM killer's way: only the pool process running the account dies; the worker rejects
    the message back to the queue (reject_on_worker_lost) and runs it again, without waiting
    for the visibility timeout."""
    stack = fault_stack
    collector, before = collector_after_a_good_collect(stack)

    run_id = stack.start("collect")
    collect_in_the_middle(stack, run_id)
    assert collector.proc is not None
    children = psutil.Process(collector.proc.pid).children()
    assert len(children) == 2  # -c 2: one pool process per account
    children[0].kill()
    killed_at = time.time()
    assert {a: footprint(stack, a) for a in ACCOUNTS} == before
    run = stack.wait_finished(run_id, 40)

    assert run.status == RunStatus.succeeded, run.reason
    assert run.steps[1].status == StepStatus.done
    restarted = 0
    for account in ACCOUNTS:
        outcome = stack.outcomes(run_id)[f"1/collect:example:{account}"]
        assert outcome["status"] == OutcomeStatus.done
        restarted += parse_iso(outcome["started_at"]).timestamp() > killed_at
        after = footprint(stack, account)
        assert after["run_id"] == run_id
        assert {k: v for k, v in after.items() if k != "run_id"} == {
            k: v for k, v in before[account].items() if k != "run_id"
        }
    assert restarted == 1  # the killed account ran again; the other one was not disturbed
    # Requeued at once: the new attempt began before the visibility timeout could have restored it
    # (how long the attempt then takes depends on the machine, not on what is tested here).
    again = max(parse_iso(stack.outcomes(run_id)[f"1/collect:example:{a}"]["started_at"]).timestamp() for a in ACCOUNTS)
    assert again - killed_at < VISIBILITY_TIMEOUT_S
    assert sorted(stack.store().accounts()) == [("example", a) for a in ACCOUNTS]


def test_a_collect_worker_killed_mid_account_times_the_step_out_within_one_supervisor_period_keeping_the_snapshot(
    fault_stack: FaultStack,
) -> None:
    stack = fault_stack
    collector, before = collector_after_a_good_collect(stack)
    # From now on collects may take 3 s, and a workflow whose collect step allows 3 s.
    collector.stop()
    collector = stack.worker("collect", RESOTO_COLLECT_TIMEOUT_S="3")
    step_timeout_s = 3.0
    stack.add_workflow("quick_collect", [{"name": "collect", "timeout": step_timeout_s, "on_error": "continue"}])

    run_id = stack.start("quick_collect")
    collect_in_the_middle(stack, run_id)
    collector.kill()
    run = stack.wait_finished(run_id, step_timeout_s + 10)

    step = run.steps[1]
    assert step.action == "collect" and step.status == StepStatus.timed_out
    assert step.deadline_ms is not None
    assert step.deadline_ms - parse_iso(step.started_at or "").timestamp() * 1000 == pytest.approx(
        step_timeout_s * 1000, abs=5
    )
    for account in ACCOUNTS:
        outcome = step.outcomes[f"collect:example:{account}"]
        assert outcome.status == OutcomeStatus.timed_out
        assert outcome.error == "no answer before the step's deadline"
    assert run.status == RunStatus.succeeded and run.has_errors  # on_error: continue tolerates it
    assert run.reason == "steps with errors: collect"
    assert run.steps[2].status == StepStatus.done  # on_error: continue, post_collect still ran
    ended_after_deadline_s = parse_iso(step.finished_at or "").timestamp() - step.deadline_ms / 1000
    assert 0 <= ended_after_deadline_s <= SUPERVISOR_INTERVAL_S + 0.5, ended_after_deadline_s
    assert {a: footprint(stack, a) for a in ACCOUNTS} == before

    # The killed tasks' messages come back once the visibility timeout has passed. They arrive
    # after their step's deadline, so they are not run: the answer saying so is stored, shown as
    # late, and changes neither the run nor the snapshots.
    record = stack.r.get(keys.run(run_id))
    time.sleep(max(0.0, step.deadline_ms / 1000 - step_timeout_s + VISIBILITY_TIMEOUT_S + 0.5 - time.time()))
    stack.worker("collect")
    late_collects = [f"1/collect:example:{a}" for a in ACCOUNTS]
    wait_until(
        lambda: all(stack.outcomes(run_id)[sub]["status"] != OutcomeStatus.timed_out for sub in late_collects),
        30,
        "the returned messages' answers",
    )
    assert stack.r.get(keys.run(run_id)) == record
    shown = json.loads(stack.cli("runs", "show", run_id, "--json").stdout)["steps"][1]
    for account in ACCOUNTS:
        sub = f"collect:example:{account}"
        assert shown["outcomes"][sub]["status"] == "timed_out"
        late = shown["late_answers"][sub]
        assert late["late"] is True and late["status"] == "error"
        assert late["error"] == "aborted: the task arrived after its step's deadline; not run"
    assert {a: footprint(stack, a) for a in ACCOUNTS} == before


def test_a_dead_collect_worker_is_noticed_within_the_subscriber_ttl_and_a_supervisor_period_with_the_default_timeouts(
    default_timeouts_stack: FaultStack,
) -> None:
    """As a user meets it: the default collect timeout (1 h) and visibility timeout (4 h); the
    collect worker's whole process group is SIGKILLed mid-account and a new one starts 2 s later.
    The dead worker's heartbeat expires within the subscriber TTL, the next supervisor tick gives
    its messages back, and the new worker collects the accounts again."""
    stack = default_timeouts_stack
    collector, before = collector_after_a_good_collect(stack)
    (first,) = json.loads(stack.cli("runs", "list", "--workflow", "collect", "--limit", "1", "--json").stdout)
    collect = first["steps"][1]
    collect_s = (parse_iso(collect["finished_at"]) - parse_iso(collect["started_at"])).total_seconds()

    run_id = stack.start("collect")
    collect_in_the_middle(stack, run_id)
    collector.kill()
    killed_at = time.time()
    time.sleep(2)
    stack.worker("collect")
    run = stack.wait_finished(run_id, SUBSCRIBER_TTL_S + SUPERVISOR_INTERVAL_S + 4 * collect_s + 30)

    assert run.status == RunStatus.succeeded and not run.has_errors, run.reason
    for account in ACCOUNTS:
        outcome = stack.outcomes(run_id)[f"1/collect:example:{account}"]
        assert outcome["status"] == OutcomeStatus.done
        assert parse_iso(outcome["started_at"]).timestamp() > killed_at  # ran again after the kill
        after = footprint(stack, account)
        assert after["run_id"] == run_id
        assert {k: v for k, v in after.items() if k != "run_id"} == {
            k: v for k, v in before[account].items() if k != "run_id"
        }
    restarted_by = min(
        parse_iso(stack.outcomes(run_id)[f"1/collect:example:{a}"]["started_at"]).timestamp() for a in ACCOUNTS
    )
    # the heartbeat period is a quarter of the TTL at most; one tick more to act on it
    assert restarted_by - killed_at <= SUBSCRIBER_TTL_S + 2 * SUPERVISOR_INTERVAL_S + 3, restarted_by - killed_at
