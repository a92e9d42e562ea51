"""Metrics workers as users run them: ``celery -A resoto_tasks worker -Q metrics --metrics-port N``."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

from resoto_tasks import runtime, subscribers
from resoto_tasks.models import RunStatus, Subscription
from resoto_tasks.store import ResourceStore
from resoto_tasks.worker_options import WorkerOptions
from tests.metrics.support import PROVIDER, cloud, commit, fetch, promtool_check, samples, value, worker_env
from tests.support.flow import add_workflow, subscribed, wait_finished, wait_until
from tests.support.redis_server import free_port
from tests.support.workers import WorkerProcess
from worker.metrics import server, task
from worker.metrics.generate import generate

StartWorker = Callable[..., WorkerProcess]


def _metrics_worker(start_worker: StartWorker, port: int, queues: str = "metrics") -> WorkerProcess:
    return start_worker(queues, "--metrics-port", str(port), concurrency=1, env=worker_env())


def _ours(port: int, accounts: set[str]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, body = fetch(port)
    assert status == 200, body
    return samples(body, accounts=accounts)


def test_a_metrics_worker_subscribes_to_generate_metrics_and_serves_metrics_and_health(
    start_worker: StartWorker,
) -> None:
    port = free_port()
    worker = _metrics_worker(start_worker, port)
    key = f"{task.ACTION}/{task.SUBSCRIBER_ID}"
    assert worker.name in subscribers.holders().get(key, [])
    live = {s.key: s for s in subscribers.live(task.ACTION)}
    assert live[key] == Subscription(
        action="generate_metrics", subscriber_id="metrics", task="resoto.generate_metrics", queue="metrics",
        timeout_s=300,
    )  # fmt: skip
    assert fetch(port, "/health") == (200, "ok\n")
    status, body = fetch(port)
    assert status == 200
    promtool_check(body)
    worker.stop()  # clean shutdown: its subscription goes at once
    assert worker.name not in subscribers.holders().get(key, [])


def test_a_restarted_metrics_worker_serves_the_last_values_at_once(
    start_worker: StartWorker, store: ResourceStore, new_account: Callable[[], str]
) -> None:
    account = new_account()
    commit(store, account, cloud(account, instances=3))
    generate(run_id="restart-1")
    port = free_port()
    first = _metrics_worker(start_worker, port)
    where = {"provider": PROVIDER, "account": account, "region": "us-east-1"}
    assert value(_ours(port, {account}), "resoto_instances", **where) == 3
    first.kill()  # SIGKILL: no goodbye
    commit(store, account, cloud(account, instances=6), run_id="r2")
    generate(run_id="restart-2")  # published while no metrics worker runs
    second = _metrics_worker(start_worker, port)
    assert value(_ours(port, {account}), "resoto_instances", **where) == 6  # before any run of its own
    other_port = free_port()
    third = _metrics_worker(start_worker, other_port)
    assert _ours(other_port, {account}) == _ours(port, {account})  # every metrics worker: the same values
    second.stop()
    third.stop()


def test_a_run_through_a_worker_publishes_counts_equal_to_the_store_and_the_runs_outcome(
    start_worker: StartWorker, store: ResourceStore, new_account: Callable[[], str], r: redis.Redis
) -> None:
    """A workflow whose step is answered by ``resoto.generate_metrics`` in a real worker; then one
    HTTP scrape shows per-account counts equal to the store's and the run's duration and outcome.
    (Its own action and queue, so no other worker of the session can take the message.)"""
    accounts = {new_account(), new_account()}
    for n, account in enumerate(sorted(accounts)):
        commit(store, account, cloud(account, instances=2 + n, volumes=3))
    name = f"mrun_{uuid.uuid4().hex[:8]}"
    action = f"{name}_generate_metrics"
    queue = f"q_{name}"
    add_workflow(name, [{"name": action, "action": action}])
    port = free_port()
    worker = _metrics_worker(start_worker, port, queues=f"{queue},workflow")
    held = Subscription(action=action, subscriber_id="metrics", task=task.TASK_NAME, queue=queue, timeout_s=60)
    with subscribed(held):
        run = wait_finished(runtime.engine().start(name).run_id or "", 60)
    assert run.status == RunStatus.succeeded, run
    found = _ours(port, accounts)
    counts = store.counts().by_account
    for account in accounts:
        served = sum(
            v for (n, labels), v in found.items() if n == "resoto_resources" and ("account", account) in labels
        )
        assert served == counts[f"{PROVIDER}/{account}"]
        assert value(found, "resoto_resources_collected", provider=PROVIDER, account=account) == served
    everything = samples(fetch(port)[1])
    assert value(everything, "resoto_runs_total", workflow=name, status="succeeded") == 1
    assert value(everything, "resoto_run_duration_seconds_count", workflow=name) == 1
    duration = value(everything, "resoto_run_duration_seconds_sum", workflow=name)
    assert duration is not None and 0 <= duration < 60
    assert value(everything, "resoto_step_duration_seconds_count", workflow=name, step=action) == 1
    assert value(everything, "resoto_last_success_timestamp_seconds", workflow=name) == pytest.approx(
        time.time(), abs=60
    )
    step = next(s for s in run.steps if s.action == action)
    outcome = step.outcomes["metrics"]
    assert outcome.result is not None and outcome.result["errors"] == {}
    worker.stop()


def test_an_explicit_port_that_is_taken_stops_the_worker_with_a_clear_error(start_worker: StartWorker) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        worker = start_worker("metrics", "--metrics-port", str(port), concurrency=1, env=worker_env(), wait=False)
        assert worker.proc is not None
        wait_until(lambda: worker.proc is not None and worker.proc.poll() is not None, 30, "the worker to exit")
    assert worker.proc.returncode != 0
    assert f"cannot serve metrics on 0.0.0.0:{port} (--metrics-port)" in worker.tail()


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[server.MetricsServer]]:
    """``serve_for`` as in a fresh worker process; servers it starts are shut down after."""
    monkeypatch.setattr(server, "_serving", None)
    started: list[server.MetricsServer] = []
    yield started
    for found in started:
        found.shutdown()


def test_the_default_port_serves_only_metrics_workers_and_a_busy_one_is_not_fatal(
    no_server: list[server.MetricsServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("RESOTO_METRICS_ADDR", "127.0.0.1")
    monkeypatch.setenv("RESOTO_METRICS_PORT", str(port))  # instead of 9955, which may be in use here
    assert server.serve_for(WorkerOptions(queues=["collect"])) is None
    assert server.serve_for(WorkerOptions(queues=["metrics"], metrics_port=0)) is None
    serving = server.serve_for(WorkerOptions(queues=["metrics"]))
    assert serving is not None
    no_server.append(serving)
    assert serving.port == port
    monkeypatch.setattr(server, "_serving", None)  # a second worker process on the same host
    assert server.serve_for(WorkerOptions(queues=["metrics"])) is None
    with pytest.raises(OSError, match=r"cannot serve metrics on 127\.0\.0\.1:\d+ \(--metrics-port\)"):
        server.serve_for(WorkerOptions(queues=["collect"], metrics_port=port))
    monkeypatch.setenv("RESOTO_METRICS_PORT", "0")
    monkeypatch.setattr(server, "_serving", None)
    assert server.serve_for(WorkerOptions(queues=["metrics"])) is None
