"""on_surpass under real concurrency: skip, wait, replace, parallel, and racing starts."""

from __future__ import annotations

import json
import threading
from collections import Counter

import pytest

from resoto_tasks import runs, runtime
from resoto_tasks.models import RunStatus, StartResult, StartStatus
from resoto_tasks.redis_conn import client
from tests.support.cli import resoto
from tests.support.flow import add_workflow, sub, subscribed, unique, wait_finished, wait_until

pytestmark = pytest.mark.usefixtures("session_worker")


def _blocked_workflow(policy: str) -> tuple[str, list[object]]:
    """A workflow whose only real step waits on a queue nobody consumes: it runs until cancelled."""
    name = unique(policy)
    add_workflow(name, [{"name": f"{name}_a", "timeout": 120}], on_surpass=policy)
    return name, [sub(f"{name}_a", queue=unique("nowhere"), timeout_s=120)]


def _race(name: str, n: int) -> list[StartResult]:
    barrier = threading.Barrier(n)
    results: list[StartResult] = []
    lock = threading.Lock()

    def go() -> None:
        barrier.wait()
        result = runtime.engine().start(name)
        with lock:
            results.append(result)

    threads = [threading.Thread(target=go) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _cleanup(name: str) -> None:
    for run in runs.list_runs(name, limit=100):
        runtime.engine().cancel(run.id)


def test_skip_starts_nothing_while_a_run_is_going_and_names_the_run_in_the_way() -> None:
    name, subs = _blocked_workflow("skip")
    with subscribed(*subs):  # type: ignore[arg-type]
        first = runtime.engine().start(name)
        second = runtime.engine().start(name)
        assert first.status == StartStatus.started
        assert second.status == StartStatus.skipped
        assert second.blocking_run_id == first.run_id
        assert first.run_id is not None and first.run_id in second.message
        _cleanup(name)


def test_wait_queues_exactly_one_run_that_starts_when_the_running_one_ends() -> None:
    name, subs = _blocked_workflow("wait")
    with subscribed(*subs):  # type: ignore[arg-type]
        first = runtime.engine().start(name)
        queued = runtime.engine().start(name)
        again = runtime.engine().start(name)
        assert queued.status == again.status == StartStatus.queued
        assert again.run_id == queued.run_id
        assert runs.get(queued.run_id or "").status == RunStatus.queued
        runtime.engine().cancel(first.run_id or "")
        wait_until(lambda: runs.get(queued.run_id or "").status == RunStatus.running, what="queued run started")
        _cleanup(name)


def test_replace_cancels_the_running_run_and_starts_anew() -> None:
    name, subs = _blocked_workflow("replace")
    with subscribed(*subs):  # type: ignore[arg-type]
        first = runtime.engine().start(name)
        second = runtime.engine().start(name)
        assert second.status == StartStatus.started
        assert second.replaced == [first.run_id]
        old = runs.get(first.run_id or "")
        assert old.status == RunStatus.cancelled
        assert old.reason and (second.run_id or "") in old.reason
        assert runs.get(second.run_id or "").status == RunStatus.running
        _cleanup(name)


def test_parallel_starts_another_run_beside_the_running_one() -> None:
    name, subs = _blocked_workflow("parallel")
    with subscribed(*subs):  # type: ignore[arg-type]
        a, b = runtime.engine().start(name), runtime.engine().start(name)
        assert a.status == b.status == StartStatus.started
        assert runs.get(a.run_id or "").status == runs.get(b.run_id or "").status == RunStatus.running
        _cleanup(name)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("skip", {StartStatus.started: 1, StartStatus.skipped: 49}),
        ("wait", {StartStatus.started: 1, StartStatus.queued: 49}),
        ("parallel", {StartStatus.started: 50}),
    ],
)
def test_fifty_racing_starts_start_exactly_what_the_policy_allows(
    policy: str, expected: dict[StartStatus, int]
) -> None:
    name, subs = _blocked_workflow(policy)
    with subscribed(*subs):  # type: ignore[arg-type]
        results = _race(name, 50)
        assert Counter(r.status for r in results) == expected
        running = [r for r in runs.list_runs(name, 100) if r.status == RunStatus.running]
        queued = [r for r in runs.list_runs(name, 100) if r.status == RunStatus.queued]
        assert len(running) == expected.get(StartStatus.started, 0)
        assert len(queued) == (1 if policy == "wait" else 0)
        _cleanup(name)


def test_fifty_racing_replace_starts_leave_exactly_one_run_running() -> None:
    name, subs = _blocked_workflow("replace")
    with subscribed(*subs):  # type: ignore[arg-type]
        results = _race(name, 50)
        assert all(r.status == StartStatus.started for r in results)
        wait_until(
            lambda: sum(r.status == RunStatus.running for r in runs.list_runs(name, 100)) == 1, what="one survivor"
        )
        _cleanup(name)


def test_a_queued_wait_run_survives_the_exit_of_the_process_that_queued_it() -> None:
    name = unique("survive")
    add_workflow(name, [{"name": f"{name}_a"}], on_surpass="wait")
    gate = unique("gate")
    held = sub(f"{name}_a", until_key=gate)  # the first run holds until the test opens the gate
    with subscribed(held):
        first = runtime.engine().start(name)
        # another process queues the second run and exits at once
        proc = resoto("run", name, "--json")
        assert proc.returncode == 0, proc.stderr
        queued_id = json.loads(proc.stdout)["run_id"]
        assert runs.get(queued_id).status == RunStatus.queued
        client().set(gate, "open", ex=600)
        wait_finished(first.run_id or "", 30)
        second = wait_finished(queued_id, 30)
    assert second.status == RunStatus.succeeded
