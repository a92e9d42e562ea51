"""The Redis primary SIGKILLed under real workers and a beat, several times: how long until what.

A Sentinel cluster of the benchmark's own (``tests/support/sentinel.py``: a primary, a replica and
three sentinels on free loopback ports, quorum 2, ``down-after-milliseconds`` 1500,
``failover-timeout`` 5000), and every process on it told only the sentinels
(``RESOTO_REDIS_SENTINELS``): two prefork workers (``workflow``; the bench action queues), a beat
firing a 5 s interval workflow, and this process (starting runs, reading records). The private
``redis-server`` of ``python -m bench`` is not used; the settings are put back at the end.

Each repetition starts ``collect_and_cleanup`` with the default layout of no-op subscribers
(``collect``, ``cleanup_plan``, ``cleanup``, ``generate_metrics``) plus one subscriber on ``collect``
that works 3 s; half a second into ``collect`` the primary is SIGKILLed. Measured from the kill:

* **promoted**: until the sentinels name the replica (polled every 50 ms);
* **first completed step**: the earliest ``finished_at`` after the kill among the run's steps;
* **end of run**: the run's ``finished_at`` (succeeded, or failed with a reason);
* **first beat fire**: the earliest ``started_at`` after the kill of the interval workflow's runs
  (a slot falls due every 5 s, so up to 5 s of it is the slot's phase, not the failover: the
  fire's lateness behind its own slot is given too).

The old primary is brought back as a replica right after the promotion (as whatever runs Redis
would), and the cluster is healthy again before the next repetition; the workers and the beat are
the same processes throughout (they must ride every failover out: a worker that exits is counted,
with its last error, and replaced so the next repetition measures a whole stack). The
record timestamps are the engine's own clock on the same machine as the kill's.
``--runs N`` caps the repetitions at min(N, 5).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from bench.framework import Context, Record, benchmark, median
from bench.infra import KEY_PREFIX, Beat, Worker
from bench.orchestration import BUILTIN, DEFAULT_SUBSCRIBED, bench_queue
from bench.tasks import NOOP_TASK, SLEEP_TASK
from resoto_tasks import keys, runtime, subscribers, workflows
from resoto_tasks.models import Run, StartStatus, StepStatus, Subscription
from resoto_tasks.redis_conn import client
from tests.support.composition import composed_on
from tests.support.redis_server import redis_binary
from tests.support.sentinel import DOWN_AFTER_MS, FAILOVER_TIMEOUT_MS, SentinelCluster

NAME = "failover"
MAX_REPETITIONS = 5
BEAT_WORKFLOW = "bench_every5"
BEAT_INTERVAL_S = 5.0
SLOW_COLLECT_S = 3.0
"""The slow subscriber on ``collect``: the kill lands while it works."""
KILL_AFTER_S = 0.5
"""How long into ``collect`` the primary is killed."""
FAILOVER_WAIT_S = 15.0
STEP_TIMEOUT_S = 20.0
SUPERVISOR_INTERVAL_S = 1.0
RUN_BOUND_S = FAILOVER_WAIT_S + STEP_TIMEOUT_S + 2 * SUPERVISOR_INTERVAL_S + 12 * 3.0
"""As ``tests/ha``: a producer's wait for the primary, one lost step's deadline, supervisor ticks,
and every step's quiet time; a run not finished by then is a failure of the benchmark."""

SETTINGS = {
    "RESOTO_KEY_PREFIX": KEY_PREFIX,
    "RESOTO_SUPERVISOR_INTERVAL_S": str(SUPERVISOR_INTERVAL_S),
    "RESOTO_SUBSCRIBER_TTL_S": "6",
    "RESOTO_VISIBILITY_TIMEOUT_S": "30",
    "RESOTO_REDIS_FAILOVER_WAIT_S": str(FAILOVER_WAIT_S),
    "RESOTO_BEAT_LOCK_TIMEOUT_S": "5",
    "RESOTO_BEAT_MAX_LOOP_INTERVAL_S": "1",
    # the built-in hourly slot off: only the interval workflow fires
    "RESOTO_SCHEDULE_OVERRIDES": json.dumps({BUILTIN: ""}),
}
"""What the processes on the cluster run with (the same as ``tests/ha``'s stack)."""

T = TypeVar("T")


def _unavailable() -> str | None:
    try:
        redis_binary()
    except RuntimeError as exc:
        return str(exc)
    return None


def wait_until(fn: Callable[[], T | None], timeout_s: float, what: str, every_s: float = 0.05) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        found = fn()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_s:g}s")
        time.sleep(every_s)


def read_run(run_id: str) -> Run | None:
    raw = client().get(keys.run(run_id))
    return Run.model_validate_json(raw) if raw else None


def runs_of(workflow: str) -> list[Run]:
    r = client()
    ids = r.zrange(keys.runs_of_workflow(workflow), 0, -1)
    raws = r.mget([keys.run(i) for i in ids]) if ids else []
    return [Run.model_validate_json(raw) for raw in raws if raw]


def _ts(value: datetime | None) -> float:
    assert value is not None
    return value.timestamp()


def hold_subscriptions() -> str:
    """The default layout's no-op subscribers and the slow one on ``collect``, held for the benchmark."""
    subs = [
        Subscription(
            action=a, subscriber_id="bench-noop", task=NOOP_TASK, queue=bench_queue(a), timeout_s=STEP_TIMEOUT_S
        )
        for a in DEFAULT_SUBSCRIBED
    ]
    subs.append(
        Subscription(
            action="collect",
            subscriber_id="bench-slow-collect",
            task=SLEEP_TASK,
            queue=bench_queue("collect"),
            timeout_s=STEP_TIMEOUT_S,
            kwargs={"sleep_s": SLOW_COLLECT_S},
        )
    )
    holder = f"bench-failover-{int(time.time())}"
    subscribers.register(subs, holder, ttl_s=3600)
    return holder


def last_error(log: str) -> str:
    """The last CRITICAL/ERROR line of a worker's log, shortened (why it exited)."""
    lines = [line for line in log.splitlines() if " CRITICAL " in line or " ERROR " in line]
    return lines[-1][:300] if lines else "no error logged"


def add_beat_workflow() -> None:
    doc = {
        "name": BEAT_WORKFLOW,
        "on_surpass": "parallel",
        "triggers": [{"interval": f"{BEAT_INTERVAL_S:g}s"}],
        "steps": [{"name": "tick"}],
    }
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as fh:
        json.dump(doc, fh)  # JSON is YAML
    workflows.add(Path(fh.name))
    Path(fh.name).unlink()


def one_failover(cluster: SentinelCluster) -> dict[str, Any]:
    """Start a run, kill the primary half a second into ``collect``, and time what follows."""
    started = runtime.engine().start(BUILTIN)
    if started.status != StartStatus.started or not started.run_id:
        raise RuntimeError(f"{BUILTIN} did not start: {started.status.value} {started.message}")
    run_id = started.run_id
    collect = next(i for i, s in enumerate(read_run(run_id).steps) if s.action == "collect")  # type: ignore[union-attr]

    def collecting() -> bool:
        run = read_run(run_id)
        return run is not None and run.steps[collect].status == StepStatus.running

    wait_until(collecting, 30, "collect running")
    time.sleep(KILL_AFTER_S)
    killed, promoted = cluster.kill_primary()
    cluster.rejoin()

    def finished() -> Run | None:
        run = read_run(run_id)
        return run if run is not None and run.status.finished else None

    run = wait_until(finished, RUN_BOUND_S, f"run {run_id} finished", 0.1)

    def fired_after_kill() -> Run | None:
        after = [r for r in runs_of(BEAT_WORKFLOW) if r.started_at and _ts(r.started_at) > killed]
        return min(after, key=lambda r: _ts(r.started_at)) if after else None

    fire = wait_until(fired_after_kill, FAILOVER_WAIT_S + 4 * BEAT_INTERVAL_S, "a beat fire after the kill", 0.1)
    step_ends = [_ts(s.finished_at) for s in run.steps if s.finished_at and _ts(s.finished_at) > killed]
    slot = datetime.fromisoformat(str(fire.trigger.details["slot"])).timestamp()
    return {
        "run_id": run_id,
        "run_status": run.status.value,
        "run_reason": run.reason,
        "redispatched_steps": [s.name for s in run.steps if s.epoch > 1],
        "kill_to_promoted_s": round(promoted - killed, 2),
        "kill_to_first_completed_step_s": round(min(step_ends) - killed, 2) if step_ends else None,
        "kill_to_end_of_run_s": round(_ts(run.finished_at) - killed, 2),
        "kill_to_first_beat_fire_s": round(_ts(fire.started_at) - killed, 2),
        "beat_fire_behind_its_slot_s": round(_ts(fire.started_at) - slot, 2),
        "missed_slots_of_that_fire": int(fire.trigger.details.get("missed_slots", 0) or 0),
    }


FIGURES = {
    "kill_to_promoted_s": "SIGKILL of the primary -> the sentinels name the replica",
    "kill_to_first_completed_step_s": "kill -> first completed step of the run (killed mid-collect)",
    "kill_to_end_of_run_s": "kill -> end of that run",
    "kill_to_first_beat_fire_s": f"kill -> first beat fire ({BEAT_INTERVAL_S:g} s interval workflow)",
    "beat_fire_behind_its_slot_s": "that fire's lateness behind its slot",
}


@benchmark(NAME, unavailable=_unavailable)
def run(ctx: Context) -> list[Record]:
    """Redis Sentinel failover under real workers and a beat: kill -> promoted, first step, end of run, beat fire."""
    reps = max(1, min(ctx.options.runs, MAX_REPETITIONS))
    measured: list[dict[str, Any]] = []
    with ExitStack() as stack:
        cluster = SentinelCluster()
        stack.callback(cluster.close)
        stack.enter_context(composed_on({**cluster.env(), **SETTINGS}))
        add_beat_workflow()
        holder = hold_subscriptions()
        stack.callback(subscribers.unregister, holder)
        # processes told only the sentinels; each started one after another (2 cores)
        flow = stack.enter_context(ctx.worker(queues="workflow"))
        actors = stack.enter_context(ctx.worker(queues="bench_collect,bench_cleanup,bench_metrics"))
        beat = Beat().start()
        stack.callback(beat.stop)
        beat.wait_for("beat: Acquired lock", 30)
        wait_until(lambda: len(runs_of(BEAT_WORKFLOW)) >= 1, 3 * BEAT_INTERVAL_S, "the beat's first fire")
        workers = {flow.queues: flow, actors.queues: actors}
        deaths: list[dict[str, Any]] = []
        for i in range(reps):
            measured.append(one_failover(cluster))
            for queues, w in list(workers.items()):
                if w.proc is not None and w.proc.poll() is not None:
                    # counted and replaced (as a supervisor would), so later repetitions measure a whole stack
                    deaths.append({"repetition": i + 1, "queues": queues, "last_error": last_error(w.tail(20000))})
                    workers[queues] = Worker(queues=queues, concurrency=ctx.options.concurrency).start()
                    stack.callback(workers[queues].stop)
            print(f"  failover {i + 1}/{reps}: {measured[-1]}", flush=True)
            time.sleep(1.0)  # the next run starts on a settled cluster
        alive = {f"worker on {q}": not any(d["queues"] == q for d in deaths) for q in workers}
        alive["beat"] = beat.alive
        slots = Counter(str(r.trigger.details.get("slot")) for r in runs_of(BEAT_WORKFLOW))
        doubled = sorted(s for s, n in slots.items() if n > 1)

    records: list[Record] = []
    for key, label in FIGURES.items():
        values = [float(m[key]) for m in measured if m[key] is not None]
        params = {"repetitions": reps, "each": values}
        records.append(Record(NAME, f"{label}: median", round(median(values), 2), "s", parameters=params))
        records.append(Record(NAME, f"{label}: max", round(max(values), 2), "s", parameters=params))
    statuses = Counter(m["run_status"] for m in measured)
    ctx.extra["cluster"] = (
        f"primary + replica + 3 sentinels (redis-server sentinel mode), quorum 2, "
        f"down-after-milliseconds {DOWN_AFTER_MS}, failover-timeout {FAILOVER_TIMEOUT_MS}"
    )
    ctx.extra["settings"] = SETTINGS
    ctx.extra["repetitions"] = measured
    ctx.extra["beat"] = {"interval_s": BEAT_INTERVAL_S, "slots_fired": len(slots), "slots_doubled": doubled}
    ctx.notes.append(f"{reps} failovers; runs: {dict(statuses)}; beat slots run twice: {len(doubled)}")
    ctx.extra["worker_deaths"] = deaths
    ctx.notes.append(f"rode every failover out (never died): {alive}; worker deaths: {len(deaths)}")
    return records
