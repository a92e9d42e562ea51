"""Flower, started against the same Redis, lists a run's tasks with readable names, run id and step."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.redis_server import free_port
from tests.support.workers import ROOT, celery_bin

pytest.importorskip("flower")


@pytest.fixture
def flower() -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "FLOWER_UNAUTHENTICATED_API": "true"}
    log = open(f"/tmp/resoto-test-flower-{port}.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [celery_bin(), "-A", "resoto_tasks", "flower", "--address=127.0.0.1", f"--port={port}"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthcheck", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        time.sleep(2)  # let it enable events on the workers and subscribe to them
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
        log.close()


def _tasks(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/api/tasks", timeout=5) as answer:
        found: dict[str, Any] = json.loads(answer.read())
        return found


@pytest.mark.usefixtures("session_worker")
def test_flower_lists_the_runs_tasks_with_readable_names_run_id_and_step(flower: str) -> None:
    from resoto_tasks import runtime
    from tests.support.flow import add_workflow, sub, subscribed, unique, wait_finished

    name = unique("flower")
    add_workflow(name, [{"name": f"{name}_a"}])
    with subscribed(sub(f"{name}_a", sleep=0.3)):
        run = wait_finished(runtime.engine().start(name).run_id or "", 30)
    deadline = time.monotonic() + 20
    ours: list[dict[str, Any]] = []

    def settled(found: list[dict[str, Any]]) -> bool:
        """Flower heard the subscriber's success (its event may come after the run ended: the step
        callback is sent before the subscriber's own result and event)."""
        return any(t["name"] == "tests.behave" and t.get("state") == "SUCCESS" for t in found)

    while time.monotonic() < deadline and not settled(ours):
        ours = [t for t in _tasks(flower).values() if run.id in str(t.get("args"))]
        time.sleep(0.3)
    names = {t["name"] for t in ours}
    assert "tests.behave" in names, names
    assert "resoto.workflow.step_done" in names, names
    subscriber = next(t for t in ours if t["name"] == "tests.behave")
    assert f"'step': '{name}_a'" in subscriber["args"] or f'"step": "{name}_a"' in subscriber["args"]
    assert subscriber["state"] == "SUCCESS"
