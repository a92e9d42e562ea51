"""Stopping children leaves nothing behind: stubborn leaders, orphaned group members, early exits."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import psutil

from resoto_tasks.local_stack.paths import StackPaths
from resoto_tasks.local_stack.plan import ProcessSpec, Role
from resoto_tasks.local_stack.processes import ManagedProcess, stop_all
from resoto_tasks.local_stack.redis_local import RedisSource, StackRedis
from resoto_tasks.local_stack.stack import LocalStack

# A leader that starts a child in its group, then behaves as told (argv[1]).
LEADER = """
import signal, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
print(child.pid, flush=True)
if sys.argv[1] == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if sys.argv[1] == "leave":
    sys.exit(3)
time.sleep(300)
"""


def start(tmp_path: Path, mode: str) -> tuple[ManagedProcess, int]:
    process = ManagedProcess(
        mode, [sys.executable, "-c", LEADER, mode], tmp_path / f"{mode}.log", env=dict(os.environ)
    ).start()
    deadline = time.monotonic() + 10
    while not process.tail().strip():
        assert time.monotonic() < deadline, "the leader did not report its child"
        time.sleep(0.02)
    return process, int(process.tail().split()[0])


def assert_gone(pid: int, timeout_s: float = 5) -> None:
    """SIGKILL is delivered asynchronously: the process may run for a moment after killpg returns."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.02)
    raise AssertionError(f"process {pid} still runs")


def test_a_leader_that_ignores_sigterm_is_killed_with_its_group_after_the_timeout(tmp_path: Path) -> None:
    process, child = start(tmp_path, "stubborn")
    time.sleep(0.2)  # let it install the SIG_IGN handler
    started = time.monotonic()
    how = stop_all([process], timeout_s=0.5)
    assert how == {"stubborn": "killed"}
    assert 0.5 <= time.monotonic() - started < 5
    assert_gone(child)
    assert not process.group_alive()


def test_a_leader_that_stops_on_sigterm_exits_without_a_kill_and_takes_its_group(tmp_path: Path) -> None:
    process, child = start(tmp_path, "polite")
    started = time.monotonic()
    how = stop_all([process], timeout_s=5)
    # the leader exits on SIGTERM; its child, which got no signal, is killed as a leftover
    assert how == {"polite": "exited -15 (left children, killed)"}
    assert time.monotonic() - started < 3
    assert_gone(child)
    assert not process.group_alive()


def test_a_child_left_behind_by_a_leader_that_already_exited_is_killed(tmp_path: Path) -> None:
    process, child = start(tmp_path, "leave")
    deadline = time.monotonic() + 5
    while process.alive:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert psutil.pid_exists(child)
    how = stop_all([process], timeout_s=5)
    assert how == {"leave": "exited 3 (left children, killed)"}
    assert_gone(child)


def test_a_second_ctrl_c_cuts_the_wait_short(tmp_path: Path) -> None:
    process, child = start(tmp_path, "stubborn")
    time.sleep(0.2)
    started = time.monotonic()
    how = stop_all([process], timeout_s=30, force=lambda: time.monotonic() - started > 0.3)
    assert how == {"stubborn": "killed"}
    assert time.monotonic() - started < 5
    assert_gone(child)


def test_a_restarted_child_replaces_its_dead_leader_and_the_rest_of_its_group(tmp_path: Path) -> None:
    """The leader dies hard and leaves a member of its group running (as a worker's pool child
    would if it did not die with its parent): the restart kills it and starts a fresh leader,
    started with no signal blocked although ``restart`` blocks Ctrl-C meanwhile."""
    spec = ProcessSpec(name="leader", role=Role.worker, argv=(sys.executable, "-c", LEADER, "sleep"))
    stack = LocalStack(
        paths=StackPaths(data_dir=tmp_path, run_dir=tmp_path, temporary=False),
        redis=StackRedis(url="redis://127.0.0.1:1/0", source=RedisSource.configured, version="-"),
        specs=[spec],
        env=dict(os.environ),
    )
    stack.start()
    first = stack.processes["leader"]
    deadline = time.monotonic() + 10
    while not first.tail().strip():
        assert time.monotonic() < deadline, "the leader did not report its child"
        time.sleep(0.02)
    orphan = int(first.tail().split()[0])
    try:
        assert first.proc is not None
        first.proc.kill()
        first.proc.wait(5)
        assert [(s.name, code) for s, code in stack.exits()] == [("leader", -9)]
        assert psutil.pid_exists(orphan), "the group member outlives its leader"

        second = stack.restart("leader")
        assert_gone(orphan)
        assert stack.processes["leader"] is second and second.alive
        assert stack.exits() == []
        with open(f"/proc/{second.pid}/status") as status:  # it blocks no signal
            assert next(line for line in status if line.startswith("SigBlk:")).split()[1] == "0" * 16
    finally:
        how = stack.stop(timeout_s=5)
    assert how["leader"] == "exited -15"
    assert not stack.processes["leader"].group_alive()
