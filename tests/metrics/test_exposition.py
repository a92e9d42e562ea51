"""The endpoint: Prometheus format (promtool), the orchestrator's metrics, counters only go up, /health."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from resoto_tasks import stats, subscribers
from resoto_tasks.models import Subscription
from resoto_tasks.runs import RunStore
from resoto_tasks.store import ResourceStore
from resoto_tasks.transitions import Count, Decision, SetStat
from tests.metrics.support import PROVIDER, Samples, cloud, commit, fetch, promtool_check, samples, value
from tests.metrics.test_generate import scrape
from tests.support.redis_server import free_port
from worker.metrics.generate import generate
from worker.metrics.server import serve


def _finish_run(r: redis.Redis, workflow: str, status: str, seconds: int) -> None:
    """What the engine writes when a run ends: the same typed writes, applied by the run store."""
    writes = (
        Count("runs", (workflow, status)),
        Count("run_seconds", (workflow, "sum"), seconds),
        Count("run_seconds", (workflow, "count")),
        Count("step_seconds", (workflow, "collect", "sum"), 2),
        Count("step_seconds", (workflow, "collect", "count")),
        Count("schedule_delay", (workflow, "sum"), 0.5),
        Count("schedule_delay", (workflow, "count")),
        *((SetStat("last_success", (workflow,), "1767261630.000"),) if status == "succeeded" else ()),
    )
    assert RunStore(r).apply(Decision(writes=writes), []).ok
    pipe = r.pipeline(transaction=True)
    stats.on_cleanup_decision(pipe, "skipped", f"protected-{workflow}")
    pipe.execute()


def _not_started(r: redis.Redis, workflow: str, reason: str) -> None:
    assert RunStore(r).apply(Decision(writes=(Count("not_started", (workflow, reason)),)), []).ok


def _counters(found: Samples) -> Samples:
    """Every sample that must never go down: counters and summary sums/counts."""
    return {k: v for k, v in found.items() if k[0].endswith(("_total", "_count", "_sum"))}


def test_the_whole_exposition_passes_promtool_and_prometheus_clients_parser(
    r: redis.Redis, store: ResourceStore, new_account: Callable[[], str]
) -> None:
    account = new_account()
    commit(store, account, cloud(account))
    workflow = f"wf_{uuid.uuid4().hex[:8]}"
    _finish_run(r, workflow, "succeeded", 30)
    _not_started(r, workflow, "skipped")
    generate(run_id="format")
    text = scrape(r)
    promtool_check(text)
    found = samples(text)  # prometheus_client's parser, and no sample twice
    assert value(found, "resoto_instances", provider=PROVIDER, account=account, region="us-east-1") == 3


def test_the_orchestrators_metrics_show_runs_durations_delays_overlap_cleanup_and_subscribers(
    r: redis.Redis, store: ResourceStore, new_account: Callable[[], str]
) -> None:
    account = new_account()
    commit(store, account, cloud(account, instances=2, volumes=1))
    workflow = f"wf_{uuid.uuid4().hex[:8]}"
    action = f"act_{uuid.uuid4().hex[:8]}"
    _finish_run(r, workflow, "succeeded", 30)
    _finish_run(r, workflow, "failed", 10)
    _not_started(r, workflow, "skipped")
    holder = f"pytest-{uuid.uuid4().hex[:8]}"
    subs = [Subscription(action=action, subscriber_id=s, task="tests.behave", queue="workflow") for s in "ab"]
    subscribers.register(subs, holder, ttl_s=60)
    try:
        found = samples(scrape(r))
    finally:
        subscribers.unregister(holder)
    assert value(found, "resoto_runs_total", workflow=workflow, status="succeeded") == 1
    assert value(found, "resoto_runs_total", workflow=workflow, status="failed") == 1
    assert value(found, "resoto_run_duration_seconds_count", workflow=workflow) == 2
    assert value(found, "resoto_run_duration_seconds_sum", workflow=workflow) == 40
    assert value(found, "resoto_step_duration_seconds_sum", workflow=workflow, step="collect") == 4
    assert value(found, "resoto_schedule_delay_seconds_sum", workflow=workflow) == pytest.approx(1.0)
    assert value(found, "resoto_schedule_delay_seconds_count", workflow=workflow) == 2
    assert value(found, "resoto_runs_not_started_total", workflow=workflow, reason="skipped") == 1
    assert value(found, "resoto_cleanup_resources_total", decision="skipped", reason=f"protected-{workflow}") == 2
    assert value(found, "resoto_last_success_timestamp_seconds", workflow=workflow) == 1767261630.0
    assert value(found, "resoto_subscribers", action=action) == 2
    assert value(found, "resoto_resources_collected", provider=PROVIDER, account=account) == 5
    assert value(found, "resoto_last_collect_timestamp_seconds", provider=PROVIDER, account=account)


def test_counters_only_go_up_across_runs_and_generations(
    r: redis.Redis, store: ResourceStore, new_account: Callable[[], str]
) -> None:
    account = new_account()
    commit(store, account, cloud(account, instances=4))
    workflow = f"wf_{uuid.uuid4().hex[:8]}"
    _finish_run(r, workflow, "succeeded", 5)
    generate(run_id="up-1")
    before = _counters(samples(scrape(r)))
    commit(store, account, cloud(account, instances=1), run_id="r2")  # gauges go down ...
    for seconds in (3, 4):
        _finish_run(r, workflow, "succeeded", seconds)
    generate(run_id="up-2")
    after = _counters(samples(scrape(r)))
    assert before, "no counters served"
    went_down = {k: (v, after.get(k)) for k, v in before.items() if after.get(k, -1.0) < v}
    assert not went_down, f"counters went down or vanished: {went_down}"  # ... counters never
    assert value(after, "resoto_runs_total", workflow=workflow, status="succeeded") == 3


def test_the_http_endpoint_serves_metrics_and_health_and_404_elsewhere(r: redis.Redis) -> None:
    generate(run_id="http")
    server = serve(free_port(), "127.0.0.1", r)
    try:
        status, body = fetch(server.port, "/metrics")
        assert status == 200
        assert "resoto_metrics_generated_timestamp_seconds" in body
        assert fetch(server.port, "/health") == (200, "ok\n")
        assert fetch(server.port, "/nope")[0] == 404
    finally:
        server.shutdown()


def test_without_redis_health_and_metrics_answer_503_not_a_partial_page() -> None:
    dead = redis.Redis(port=free_port(), decode_responses=True, retry=Retry(NoBackoff(), 0))
    server = serve(free_port(), "127.0.0.1", dead)
    try:
        status, body = fetch(server.port, "/metrics")
        assert status == 503
        assert body.startswith("redis unavailable")
        assert fetch(server.port, "/health")[0] == 503
    finally:
        server.shutdown()
        dead.close()
