"""The issue's acceptance: after one ``collect_and_cleanup`` run, ``/metrics`` over HTTP shows the
per-account resource counts of ``resoto-tasks resources count --json``, the run's duration and
outcome and the cleanup decisions, and the exposition passes ``promtool check metrics``."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.metrics.support import fetch, promtool_check, samples, value
from tests.support.redis_server import RedisServer, free_port
from tests.support.stack import Stack, isolated_stack


@pytest.fixture
def stack(redis_server: RedisServer) -> Iterator[Stack]:
    with isolated_stack(redis_server, RESOTO_EXAMPLE_ACCOUNTS="3", RESOTO_EXAMPLE_RESOURCES_PER_ACCOUNT="300") as s:
        yield s


def test_after_one_hourly_run_metrics_equal_the_resource_counts_and_show_the_run(stack: Stack) -> None:
    port = free_port()
    stack.worker("collect,workflow")
    stack.worker("cleanup", "--cleanup-expired", "--cleanup", "--cleanup-dry-run")
    stack.worker("metrics", "--metrics-port", str(port))
    record = stack.run()
    assert record["status"] == "succeeded", record
    generate = next(s for s in record["steps"] if s["action"] == "generate_metrics")
    assert [o["status"] for o in generate["outcomes"].values()] == ["done"]
    counts = json.loads(stack.cli("resources", "count", "--json").stdout)
    status, body = fetch(port)
    assert status == 200, body
    promtool_check(body)
    found = samples(body)
    served: dict[str, float] = {}
    for (name, labels), number in found.items():
        if name == "resoto_resources":
            where = dict(labels)
            member = f"{where['provider']}/{where['account']}"
            served[member] = served.get(member, 0) + number
    assert served == counts["by_account"]
    assert len(served) == 3
    for member, total in counts["by_account"].items():
        provider, account = member.split("/")
        assert value(found, "resoto_resources_collected", provider=provider, account=account) == total
    assert sum(v for (n, _), v in found.items() if n == "resoto_expired_resources") == counts["expired"]
    assert value(found, "resoto_runs_total", workflow="collect_and_cleanup", status="succeeded") == 1
    assert value(found, "resoto_run_duration_seconds_count", workflow="collect_and_cleanup") == 1
    duration = value(found, "resoto_run_duration_seconds_sum", workflow="collect_and_cleanup")
    assert duration is not None and 0 < duration < 120
    assert value(found, "resoto_step_duration_seconds_count", workflow="collect_and_cleanup", step="collect") == 1
    assert value(found, "resoto_last_success_timestamp_seconds", workflow="collect_and_cleanup")
    skipped = sum(
        v
        for (n, labels), v in found.items()
        if n == "resoto_cleanup_resources_total" and ("decision", "skipped") in labels
    )
    assert skipped == record["ledger"]["totals"]["skipped"] > 0
    assert value(found, "resoto_subscribers", action="generate_metrics") == 1
