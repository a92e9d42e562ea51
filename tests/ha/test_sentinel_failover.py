"""The Redis primary SIGKILLed under a running deployment that knows only the sentinels.

Every process (workers, beat, CLI) is given ``RESOTO_REDIS_SENTINELS`` and finds the primary
itself; after the kill the sentinels promote the replica (about 2-3 s here, ``DOWN_AFTER_MS``
1.5 s) and the test brings the old primary back as a replica, as the thing that runs Redis would.

Bounds come from the settings under test: a producer waits up to ``FAILOVER_WAIT_S`` for the new
primary; a step whose messages the failover lost waits for its deadline (``STEP_TIMEOUT_S``) and
one supervisor period; every other step takes a moment.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from resoto_tasks import keys
from resoto_tasks.models import RunStatus, StepStatus
from resoto_tasks.workflows import STEP_GROUPS
from tests.faults.support import behave, parse_iso, wait_until
from tests.ha.support import FAILOVER_WAIT_S, STEP_TIMEOUT_S, SUPERVISOR_INTERVAL_S, HaStack

pytestmark = [pytest.mark.faults, pytest.mark.xdist_group("sentinel")]

HOOK_QUEUE = "ha"
ACTIONS = [a for group in STEP_GROUPS.values() for a in group]
QUIET_STEP_S = 3.0
"""Generous time for one step when nothing is lost (a chord of no-op hooks takes milliseconds)."""


def run_bound_s() -> float:
    """A run hit by one failover ends within: the producers' wait for the new primary, one lost step
    waiting for its deadline and a supervisor tick, and every step of the run taking its quiet time."""
    return FAILOVER_WAIT_S + STEP_TIMEOUT_S + 2 * SUPERVISOR_INTERVAL_S + len(ACTIONS) * QUIET_STEP_S


def test_the_primary_killed_in_the_middle_of_collect_and_cleanup_ends_the_run_and_runs_no_subscriber_twice(
    ha_stack: HaStack,
) -> None:
    stack = ha_stack
    stack.extra.update({"RESOTO_EXAMPLE_ACCOUNTS": "2", "RESOTO_EXAMPLE_RESOURCES_PER_ACCOUNT": "300"})
    # The hooks record every call; the slow one on collect makes sure the kill lands in the middle.
    hooks = [behave(a, f"hook-{a}", HOOK_QUEUE, timeout_s=STEP_TIMEOUT_S) for a in ACTIONS]
    hooks.append(behave("collect", "slow-collect", HOOK_QUEUE, timeout_s=STEP_TIMEOUT_S, sleep=3))
    stack.hold(hooks)
    flow = stack.worker("workflow", wait=False)
    actors = stack.worker(f"collect,cleanup,metrics,{HOOK_QUEUE}", "--cleanup-expired", "--cleanup", wait=False)
    flow.wait_ready(40)
    actors.wait_ready(40)

    run_id = stack.start("collect_and_cleanup")
    collect = ACTIONS.index("collect")
    wait_until(lambda: (run := stack.run(run_id)) and run.steps[collect].status == StepStatus.running, 30, "collect")
    time.sleep(0.5)  # the slow hook is at work
    killed, promoted = stack.cluster.kill_primary()
    stack.cluster.rejoin()

    run = stack.wait_finished(run_id, run_bound_s())
    finished = parse_iso(run.finished_at or "").timestamp()
    assert finished - killed <= run_bound_s()
    assert run.status == RunStatus.succeeded or (run.status == RunStatus.failed and run.reason), run
    assert stack.r.scard(keys.runs_active()) == 0
    # At most once per step attempt (an attempt is an epoch: a redispatch may run a hook again).
    counted = Counter((c["step"], c["sub"]) for c in stack.calls(run_id))
    epochs = {s.name: max(1, s.epoch) for s in run.steps}
    assert all(n <= epochs[step] for (step, _), n in counted.items()), (counted, epochs)
    # The workers carried on without a restart.
    assert flow.proc is not None and flow.proc.poll() is None, flow.tail()
    assert actors.proc is not None and actors.proc.poll() is None, actors.tail()
    step_ends = [parse_iso(s.finished_at).timestamp() for s in run.steps if s.finished_at]
    first_step = min(t for t in step_ends if t > killed) - killed
    print(
        f"failover {promoted - killed:.1f}s; first step completed {first_step:.1f}s after the kill; "
        f"run ended {finished - killed:.1f}s after the kill: {run.status}"
    )


def test_a_beat_keeps_one_run_per_slot_across_a_failover(ha_stack: HaStack) -> None:
    """The beat rides the failover out (its tick catches the lost connection and re-takes its lock);
    slots missed meanwhile follow the catch-up rule: only the latest is started, once."""
    stack = ha_stack
    period = timedelta(seconds=5)
    name = stack.add_workflow("every5", [{"name": "tick"}], triggers=[{"interval": "5s"}], on_surpass="parallel")
    flow = stack.worker("workflow", wait=False)
    beat = stack.beat()
    flow.wait_ready(40)
    beat.wait_for("beat: Acquired lock", 30)
    wait_until(lambda: len(stack.runs_of(name)) >= 2, 4 * period.total_seconds(), "two slots before the kill")

    killed, _ = stack.cluster.kill_primary()
    stack.cluster.rejoin()
    after = [parse_iso(str(r.trigger.details["slot"])) for r in stack.runs_of(name)]

    def two_after_the_kill() -> bool:
        slots = [parse_iso(str(r.trigger.details["slot"])).timestamp() for r in stack.runs_of(name)]
        return sum(s > killed for s in slots) >= 2

    wait_until(two_after_the_kill, FAILOVER_WAIT_S + 3 * period.total_seconds(), "two slots after the kill")
    assert beat.proc is not None and beat.proc.poll() is None, beat.log()[-3000:]
    found = stack.runs_of(name)
    slots = sorted(parse_iso(str(r.trigger.details["slot"])) for r in found)
    assert len(slots) == len(set(slots)), f"a slot ran twice: {slots}"
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert all(g % period == timedelta(0) for g in gaps), slots
    assert set(after) <= set(slots)
    for run in found:  # a run that skipped slots says how many (the catch-up rule: only the latest fires)
        assert int(run.trigger.details.get("missed_slots", 0) or 0) <= max(gaps) // period
    starts = [parse_iso(r.started_at).timestamp() for r in found if r.started_at]
    first_fire = min(t for t in starts if t > killed) - killed
    print(f"first beat fire {first_fire:.1f}s after the kill; slots around it: {[s.isoformat() for s in slots]}")


def test_with_min_replicas_ack_no_acknowledged_run_or_snapshot_is_lost(ha_stack: HaStack) -> None:
    """A client starts runs as fast as it can through the kill; every run id it was told about, and
    the snapshots of a collect it was told succeeded, are on the new primary."""
    stack = ha_stack
    stack.extra.update(
        {
            "RESOTO_REDIS_MIN_REPLICAS_ACK": "1",
            "RESOTO_EXAMPLE_ACCOUNTS": "2",
            "RESOTO_EXAMPLE_RESOURCES_PER_ACCOUNT": "200",
        }
    )
    stack.add_workflow("many", [{"name": "nothing_subscribes"}], on_surpass="parallel")
    flow = stack.worker("workflow,collect", wait=False)
    flow.wait_ready(40)
    collected = stack.cli("run", "collect", "--wait", "--json", "--timeout", "60")
    assert collected.returncode == 0, collected.stderr
    collect_run = json.loads(collected.stdout)["id"]
    snapshots = {
        k: stack.r.hget(k, "run_id") for k in stack.r.scan_iter(match=f"{stack.env['RESOTO_KEY_PREFIX']}:res:*:meta")
    }

    told: list[str] = []
    outputs: list[Any] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            done = stack.cli("run", "many", "--json", timeout_s=FAILOVER_WAIT_S + 60, process=True)
            outputs.append(done)
            if done.returncode == 0:
                told.append(json.loads(done.stdout)["run_id"])

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    wait_until(lambda: len(told) >= 2, 30, "runs started before the kill")
    stack.cluster.kill_primary()
    stack.cluster.rejoin()
    count_at_rejoin = len(told)
    wait_until(lambda: len(told) >= count_at_rejoin + 2, FAILOVER_WAIT_S + 30, "runs started after the failover")
    stop.set()
    thread.join(FAILOVER_WAIT_S + 60)

    missing = [run_id for run_id in told if stack.run(run_id) is None]
    assert not missing, f"acknowledged runs lost in the failover: {missing}"
    assert all(o.returncode in (0, 1) for o in outputs), [o.stderr for o in outputs]
    assert all("Traceback" not in o.stderr for o in outputs), [o.stderr for o in outputs if o.stderr]
    assert stack.run(collect_run) is not None
    assert snapshots and all(stack.r.hget(k, "run_id") == v for k, v in snapshots.items()), snapshots
    waited = [o.stderr for o in outputs if "waiting for a new Redis primary" in o.stderr]
    print(f"{len(told)} runs acknowledged, none lost; {len(waited)} commands said they waited for the primary")
