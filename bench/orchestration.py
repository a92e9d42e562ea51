"""Orchestration overhead: resoto-tasks runs against plain Celery chains of chords (issue 7, item 1).

Three comparisons, each side by side in one run, on one private Redis and the same workers:

* **full layout**: the built-in ``collect_and_cleanup`` (12 actions) with 2 blocking no-op
  subscribers per action, against a plain ``chain`` of 12 ``chord(group([noop, noop]), cb)``;
  interleaved A, B, A, B; sequential, each start after the previous run finished (the built-in's
  ``on_surpass`` is ``wait``). Wall time per workflow: median and p90.
* **default layout**, as users run it: one no-op subscriber on ``collect``, ``cleanup_plan``,
  ``cleanup`` and ``generate_metrics``, none on the 8 pre/post actions; against a plain chain
  of the 4 chords that layout needs.
* **burst**: 20 runs of a user workflow with the same 12 actions and ``on_surpass: parallel``
  (full layout) started at once, against 20 plain canvases sent at once: workflows per second.

A resoto run is timed from sending beat's start task (a ``workflow`` task that commits the run and
sends its first step, as the hourly slot does; the default layout is measured a second time
started as ``resoto-tasks run`` does, committing here and handing the run over, to show what that
hop costs) to its ``run_finished`` event (read with a blocking
``XREAD`` on the event stream); a canvas from ``apply_async`` to its last result
(``get(follow_parents=False)``: with the default ``follow_parents=True`` the waiting client
GETs every unfinished parent's result each time any result is published, about 1,300 GETs per
12-chord chain, which takes CPU from the workers on 2 cores and would flatter resoto). Then
the Redis footprint per workflow (INFO commandstats, idle traffic subtracted; a second pass
under ``MONITOR`` splits it into resoto's own commands, those inside its script, and Celery's),
and a profile of both sides on a cProfile'd solo worker with every Redis round trip attributed
to its caller.
"""

from __future__ import annotations

import itertools
import json
import pstats
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import redis
from celery import Celery, chain, chord, group

from bench import profiling
from bench.framework import Context, Record, benchmark, median, percentile
from bench.infra import (
    ALL_QUEUES,
    CELERY,
    CELERY_SCRIPT,
    ENGINE,
    HARNESS,
    HARNESS_CLIENT,
    JOIN,
    JOIN_SCRIPT,
    RESULTS,
    SCRIPT,
    SIDES,
    SUBSCRIBER,
    CommandSplit,
    ServerStats,
    by_side,
    idle_rate,
    server_stats,
    work_stats,
)
from bench.tasks import NOOP_TASK, PLAIN_NOOP_TASK, PLAIN_STEP_DONE_TASK
from resoto_tasks import keys, runs, runtime, subscribers, workflows
from resoto_tasks.dispatch import START_TASK
from resoto_tasks.engine import Engine
from resoto_tasks.models import OutcomeStatus, Run, RunStatus, StartStatus, StepStatus, Subscription
from resoto_tasks.redis_conn import client
from resoto_tasks.routing import WORKFLOW, queue_for_action

NAME = "orchestration"
BUILTIN = "collect_and_cleanup"
BURST_WORKFLOW = "bench_burst"
DEFAULT_SUBSCRIBED = ("collect", "cleanup_plan", "cleanup", "generate_metrics")
RUN_TIMEOUT_S = 60.0
FOOTPRINT_RUNS = 5
PROFILE_RUNS = 10

Layout = list[tuple[str, int]]
"""(action, number of blocking no-op subscribers), in run order."""


def bench_queue(action: str) -> str:
    """The action's queue, renamed: ``collect`` -> ``bench_collect`` and so on.

    The real actors (``worker.collect``, ``worker.cleanup``, ``worker.metrics``) register their
    subscriptions from any worker that consumes their queue; the bench worker consumes the
    renamed queues (same layout, one queue per concern) so that only the no-op subscribers
    answer. Callbacks stay on ``workflow``.
    """
    queue = queue_for_action(action)
    return queue if queue == WORKFLOW else f"bench_{queue}"


def actions() -> list[str]:
    return [s.action for s in workflows.catalogue.get(BUILTIN).steps]


def full_layout() -> Layout:
    return [(a, 2) for a in actions()]


def default_layout() -> Layout:
    return [(a, 1 if a in DEFAULT_SUBSCRIBED else 0) for a in actions()]


# ---------------------------------------------------------------------------------------------
# The two sides
# ---------------------------------------------------------------------------------------------


class Subscribers:
    """Holds the no-op subscriptions of one layout alive, as a worker's heartbeat would."""

    def __init__(self) -> None:
        self.holder: str | None = None

    def use(self, layout: Layout) -> None:
        self.clear()
        self.holder = f"bench-{int(time.time() * 1000)}"
        subs = [
            Subscription(
                action=action,
                subscriber_id=f"bench-noop-{i}",
                task=NOOP_TASK,
                queue=bench_queue(action),
                timeout_s=30,
            )
            for action, n in layout
            for i in range(n)
        ]
        subscribers.register(subs, self.holder, ttl_s=3600)
        for action, n in layout:
            live = subscribers.live(action)
            if len(live) != n or any(s.task != NOOP_TASK for s in live):
                found = ", ".join(f"{s.subscriber_id}->{s.task}" for s in live) or "none"
                raise RuntimeError(f"action {action}: expected {n} bench no-op subscribers, found {found}")

    def clear(self) -> None:
        if self.holder:
            subscribers.unregister(self.holder)
            self.holder = None


class RunWaiter:
    """Sees runs finish by a blocking read of the event stream (no polling delay), and reads
    their records, on one named connection (so the command split can leave the harness out)."""

    def __init__(self, url: str) -> None:
        self.r = redis.Redis.from_url(url, decode_responses=True, client_name=HARNESS_CLIENT)
        self.key = keys.events()
        self.last = "0-0"

    def mark(self) -> None:
        """Remember the stream's end; call before starting the runs to wait for."""
        newest = self.r.xrevrange(self.key, count=1)
        self.last = newest[0][0] if newest else "0-0"

    def wait(self, run_ids: list[str], timeout_s: float = RUN_TIMEOUT_S) -> dict[str, float]:
        """``run_id -> perf_counter()`` when its ``run_finished`` event was read."""
        pending, seen = set(run_ids), {}
        deadline = time.monotonic() + timeout_s
        while pending:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                raise TimeoutError(f"runs not finished in {timeout_s}s: {sorted(pending)}")
            reply = self.r.xread({self.key: self.last}, count=1000, block=min(left_ms, 1000))
            now = time.perf_counter()
            for _stream, entries in reply or []:
                for entry_id, fields in entries:
                    self.last = entry_id
                    if fields.get("kind") != "run_finished":
                        continue
                    run_id = json.loads(fields["data"]).get("run_id")
                    if run_id in pending:
                        pending.discard(run_id)
                        seen[run_id] = now
        return seen

    def record(self, run_id: str) -> Run:
        raw = self.r.get(keys.run(run_id))
        if raw is None:
            raise RuntimeError(f"run {run_id} has no record")
        return Run.model_validate_json(raw)

    def close(self) -> None:
        self.r.close()


def plain_canvas(layout: Layout, app: Celery | None = None) -> Any:
    """The baseline: a plain chain of explicit chords, one per action with subscribers, sent
    through ``app`` (this process's app by default; the brokers benchmark passes a RabbitMQ one)."""
    app = app or runtime.app()
    chords = [
        chord(
            group([app.signature(PLAIN_NOOP_TASK, queue=bench_queue(a), immutable=True) for _ in range(n)], app=app),
            app.signature(PLAIN_STEP_DONE_TASK, queue=WORKFLOW, immutable=True),
            app=app,
        )
        for a, n in layout
        if n
    ]
    return chain(*chords, app=app)


@dataclass
class Sides:
    """One timed workflow of each side, and its check.

    ``probe`` (a context manager) wraps only the call that starts the work (``Engine.start``,
    ``apply_async``), never the waiting; ``start_ms`` collects how long that call took. ``app``
    sends everything (this process's app by default; give ``engine`` over the same app).
    """

    waiter: RunWaiter
    layout: Layout
    app: Celery = field(default_factory=runtime.app)
    engine: Engine = field(default_factory=runtime.engine)
    via: str = "beat"
    probe: AbstractContextManager[Any] = field(default_factory=nullcontext)
    failures: int = 0
    start_ms: dict[str, list[float]] = field(default_factory=lambda: {"resoto": [], "plain": []})

    def resoto(self, name: str = BUILTIN) -> float:
        """One run, started as ``via`` says: ``beat`` sends the start task (a ``workflow`` task
        that commits the run and sends its first step, as beat's hourly slot does), ``producer``
        commits it here and hands it over (``resoto-tasks run``: one queue hop more)."""
        self.waiter.mark()
        run_id = runs.new_run_id()
        t0 = time.perf_counter()
        with self.probe:
            if self.via == "beat":
                self.app.send_task(START_TASK, args=(name,), kwargs={"run_id": run_id}, queue=WORKFLOW)
            else:
                started = self.engine.start(name, run_id=run_id)
                if started.status != StartStatus.started:
                    raise RuntimeError(f"{name} did not start: {started.status.value} {started.message}")
        self.start_ms["resoto"].append((time.perf_counter() - t0) * 1000)
        t1 = self.waiter.wait([run_id])[run_id]
        self._check(run_id)
        return (t1 - t0) * 1000

    def plain(self) -> float:
        t0 = time.perf_counter()
        with self.probe:
            result = plain_canvas(self.layout, self.app).apply_async()
        self.start_ms["plain"].append((time.perf_counter() - t0) * 1000)
        result.get(timeout=RUN_TIMEOUT_S, follow_parents=False)
        return (time.perf_counter() - t0) * 1000

    def _check(self, run_id: str) -> None:
        """Succeeded without errors; every subscribed step done, with a ``done`` outcome from
        each of its subscribers on the record (the answers the chord handed to the callback)."""
        run = self.waiter.record(run_id)
        wanted = dict(self.layout)
        ok = run.status == RunStatus.succeeded and not run.has_errors
        for step in run.steps:
            n = wanted.get(step.action, 0)
            if not n:
                continue
            answered = [o for o in step.outcomes.values() if o.status == OutcomeStatus.done]
            ok = ok and step.status == StepStatus.done and len(step.blocking) == n and len(answered) == n
        if not ok:
            self.failures += 1


def interleaved(sides: Sides, ctx: Context) -> tuple[list[float], list[float]]:
    """A, B, A, B...: warm-up pairs first, then the measured pairs (ms per workflow each)."""
    for _ in range(ctx.options.warmup):
        sides.resoto()
        sides.plain()
    resoto_ms, plain_ms = [], []
    for _ in range(ctx.options.runs):
        resoto_ms.append(sides.resoto())
        plain_ms.append(sides.plain())
    return resoto_ms, plain_ms


def burst(sides: Sides, ctx: Context, workflow: str) -> tuple[float, float]:
    """``burst_size`` runs started at once, then as many canvases: workflows per second each."""
    n = ctx.options.burst_size
    sides.waiter.mark()
    t0 = time.perf_counter()
    ids = []
    for _ in range(n):
        started = sides.engine.start(workflow)
        if started.status != StartStatus.started or not started.run_id:
            raise RuntimeError(f"{workflow} did not start: {started.message}")
        ids.append(started.run_id)
    finished = sides.waiter.wait(ids, timeout_s=RUN_TIMEOUT_S * 2)
    resoto_wps = n / (max(finished.values()) - t0)
    for run_id in ids:
        sides._check(run_id)

    t0 = time.perf_counter()
    results = [plain_canvas(sides.layout, sides.app).apply_async() for _ in range(n)]
    for result in results:
        result.get(timeout=RUN_TIMEOUT_S * 2, follow_parents=False)
    plain_wps = n / (time.perf_counter() - t0)
    return resoto_wps, plain_wps


def add_burst_workflow() -> None:
    """A user workflow with the built-in's 12 actions, ``on_surpass: parallel``."""
    doc = {
        "name": BURST_WORKFLOW,
        "on_surpass": "parallel",
        "steps": [{"name": s, "timeout": 60} for s in ("collect", "cleanup_plan", "cleanup", "generate_metrics")],
    }
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as fh:
        json.dump(doc, fh)  # JSON is YAML
    workflows.add(Path(fh.name))
    Path(fh.name).unlink()
    got = [s.action for s in workflows.catalogue.get(BURST_WORKFLOW).steps]
    if got != actions():
        raise RuntimeError(f"{BURST_WORKFLOW} expands to {got}, not the built-in's actions")


# ---------------------------------------------------------------------------------------------
# Where the time goes: the run records' own clock, the Redis footprint
# ---------------------------------------------------------------------------------------------


def _ms(value: datetime | None) -> float:
    assert value is not None
    return value.timestamp() * 1000


def step_timeline(waiter: RunWaiter, run_ids: list[str]) -> dict[str, float]:
    """Medians over runs from the records: time inside steps (dispatch to completion) and between them."""
    inside: list[float] = []
    between: list[float] = []
    per_step: list[float] = []
    for run_id in run_ids:
        run = waiter.record(run_id)
        steps = [s for s in run.steps if s.started_at and s.finished_at]
        inside.append(sum(_ms(s.finished_at) - _ms(s.started_at) for s in steps))
        between.append(sum(_ms(b.started_at) - _ms(a.finished_at) for a, b in itertools.pairwise(steps)))
        per_step.extend(_ms(s.finished_at) - _ms(s.started_at) for s in steps if s.blocking)
    return {
        "inside_steps_ms": round(median(inside), 1),
        "between_steps_ms": round(median(between), 1),
        "subscribed_step_ms": round(median(per_step), 1),
    }


@dataclass
class Meter:
    """INFO commandstats, and the same commands split by side under MONITOR, with their idle rates."""

    r: redis.Redis
    split: CommandSplit
    idle: ServerStats
    idle_split: ServerStats

    @classmethod
    def start(cls, r: redis.Redis, url: str) -> Meter:
        split = CommandSplit(url).start()
        return cls(r, split, idle_rate(r), split.idle_rate())


def _per(counts: dict[str, int], n: int, top: int = 14) -> dict[str, float]:
    return {k: round(v / n, 1) for k, v in sorted(counts.items(), key=lambda kv: -kv[1])[:top]}


def footprint(label: str, fn: Callable[[], Any], meter: Meter, n: int, steps: int) -> dict[str, Any]:
    """Redis commands and bytes per workflow over ``n`` sequential runs of ``fn`` (``steps``
    subscribed steps each), in total and by side."""
    before, before_split = server_stats(meter.r), meter.split.snapshot()
    for _ in range(n):
        fn()
    delta = work_stats(before, server_stats(meter.r), meter.idle)
    time.sleep(0.2)  # let MONITOR's stream catch up with the last commands
    sides = by_side(work_stats(before_split, meter.split.snapshot(), meter.idle_split))
    per_side = {side: round(sum(sides.get(side, {}).values()) / n, 1) for side in (*SIDES, HARNESS)}
    return {
        "label": label,
        "commands_per_workflow": round(delta.total_calls / n, 1),
        "kb_in_per_workflow": round(delta.net_input_bytes / n / 1024, 1),
        "top_commands_per_workflow": _per(delta.calls, n),
        "by_side_per_workflow": per_side,
        "workflow_commands_per_workflow": round(sum(per_side[s] for s in SIDES), 1),
        "sent_commands_per_workflow": round(sum(per_side[s] for s in (ENGINE, SUBSCRIBER, JOIN, CELERY)), 1),
        "subscribed_steps": steps,
        "resoto_own_per_subscribed_step": round(per_side[ENGINE] / steps, 2),
        "resoto_subscriber_tasks_per_subscribed_step": round(per_side[SUBSCRIBER] / steps, 2),
        "inside_script_per_subscribed_step": round(per_side[SCRIPT] / steps, 2),
        "step_join_per_subscribed_step": round(per_side[JOIN] / steps, 2),
        "step_join_inside_script_per_subscribed_step": round(per_side[JOIN_SCRIPT] / steps, 2),
        "celery_per_subscribed_step": round(per_side[CELERY] / steps, 2),
        "celery_inside_scripts_per_subscribed_step": round(per_side[CELERY_SCRIPT] / steps, 2),
        "top_by_side_per_workflow": {side: _per(sides.get(side, {}), n, 10) for side in (*SIDES, HARNESS)},
    }


# ---------------------------------------------------------------------------------------------
# The benchmark
# ---------------------------------------------------------------------------------------------


FULL_MEDIAN_RATIO = 0.95
"""Issue 13: the full layout's median at most 0.95 x the plain chain's."""
DEFAULT_MEDIAN_MS = 50.0
"""Issue 13: the default workflow under 50 ms (on a quiet machine) and at most 1.0 x its baseline."""


def time_records(
    metric: str, resoto_ms: list[float], plain_ms: list[float], params: dict[str, Any], max_ratio: float = 1.0
) -> list[Record]:
    baseline = f"plain chain of {sum(1 for _, n in params['layout'] if n)} chords"
    params = {
        **params,
        "median_of_pair_ratios": round(median([a / b for a, b in zip(resoto_ms, plain_ms, strict=True)]), 3),
    }
    med, base = median(resoto_ms), median(plain_ms)
    p90, base90 = percentile(resoto_ms, 90), percentile(plain_ms, 90)
    return [
        Record(
            NAME,
            f"{metric}: median",
            round(med, 1),
            "ms/workflow",
            round(base, 1),
            baseline,
            None,
            params,
            f"ratio <= {max_ratio:g}",
            med <= base * max_ratio,
        ),
        Record(
            NAME,
            f"{metric}: p90",
            round(p90, 1),
            "ms/workflow",
            round(base90, 1),
            baseline,
            None,
            params,
            "ratio <= 1.0",
            p90 <= base90,
        ),
    ]


def start_record(label: str, sides: Sides, warmup: int, n: int) -> Record:
    """How long the caller is held by the starting call itself (part of the wall time above)."""
    resoto = sides.start_ms["resoto"][warmup : warmup + n]
    plain = sides.start_ms["plain"][warmup : warmup + n]
    return Record(
        NAME,
        f"{label}: the starting call (engine.start vs apply_async), median",
        round(median(resoto), 2),
        "ms",
        round(median(plain), 2),
        "apply_async of the plain chain",
    )


@benchmark(NAME)
def run(ctx: Context) -> list[Record]:
    """Orchestration overhead: collect_and_cleanup through resoto-tasks vs plain Celery chains of chords."""
    opts = ctx.options
    r = client()
    waiter = RunWaiter(ctx.redis_url)
    subs = Subscribers()
    records: list[Record] = []
    footprints: list[dict[str, Any]] = []
    timelines: dict[str, Any] = {}
    layout_full, layout_default = full_layout(), default_layout()
    params_common = {"workers": f"1 x prefork -c {opts.concurrency}, queues {ALL_QUEUES}"}
    try:
        with ctx.worker():
            # 1. the full layout, sequential and interleaved
            subs.use(layout_full)
            sides = Sides(waiter, layout_full)
            resoto_ms, plain_ms = interleaved(sides, ctx)
            params = {
                **params_common,
                "workflow": BUILTIN,
                "runs": opts.runs,
                "warmup": opts.warmup,
                "subscribers": "2 blocking no-op per action",
                "layout": layout_full,
            }
            records += time_records(
                "collect_and_cleanup, 2 no-op subs x 12 actions", resoto_ms, plain_ms, params, FULL_MEDIAN_RATIO
            )
            records.append(start_record("full layout", sides, opts.warmup, opts.runs))
            ids = list(r.zrevrange(keys.runs_of_workflow(BUILTIN), 0, opts.runs - 1))
            timelines["full"] = step_timeline(waiter, ids)
            steps_full = sum(1 for _, n in layout_full if n)
            meter = Meter.start(r, ctx.redis_url)
            try:
                footprints.append(footprint("resoto full layout", sides.resoto, meter, FOOTPRINT_RUNS, steps_full))
                footprints.append(
                    footprint("plain chain of 12 chords x 2", sides.plain, meter, FOOTPRINT_RUNS, steps_full)
                )
            finally:
                meter.split.stop()

            # 2. the burst (user workflow, parallel), full layout
            add_burst_workflow()
            burst(sides, ctx, BURST_WORKFLOW)  # warm-up
            rounds = [burst(sides, ctx, BURST_WORKFLOW) for _ in range(opts.bursts)]
            resoto_wps, plain_wps = median([a for a, _ in rounds]), median([b for _, b in rounds])
            records.append(
                Record(
                    NAME,
                    f"burst of {opts.burst_size} (on_surpass: parallel), full layout",
                    round(resoto_wps, 2),
                    "workflows/s",
                    round(plain_wps, 2),
                    f"{opts.burst_size} plain canvases at once",
                    None,
                    {
                        **params_common,
                        "workflow": BURST_WORKFLOW,
                        "rounds": opts.bursts,
                        "burst_size": opts.burst_size,
                        "per_round": rounds,
                    },
                    "ratio >= 1.0",
                    resoto_wps >= plain_wps,
                )
            )

            # 3. the default layout, as users run it
            subs.use(layout_default)
            sides_default = Sides(waiter, layout_default)
            d_resoto, d_plain = interleaved(sides_default, ctx)
            params = {
                **params_common,
                "workflow": BUILTIN,
                "runs": opts.runs,
                "warmup": opts.warmup,
                "subscribers": "1 blocking no-op on " + ", ".join(DEFAULT_SUBSCRIBED),
                "layout": layout_default,
            }
            default_records = time_records("collect_and_cleanup, default layout", d_resoto, d_plain, params)
            default_records[0].target = f"figure < {DEFAULT_MEDIAN_MS:g} ms; ratio <= 1.0"
            default_records[0].target_met = median(d_resoto) < DEFAULT_MEDIAN_MS and median(d_resoto) <= median(d_plain)
            records += default_records
            records.append(start_record("default layout", sides_default, opts.warmup, opts.runs))
            # what "producers only write" costs a run started by the CLI: the hand-over hop
            producer = Sides(waiter, layout_default, via="producer")
            p_resoto, p_plain = interleaved(producer, ctx)
            hop = time_records("default layout, started as resoto-tasks run does", p_resoto, p_plain, params)
            hop[0].target = hop[1].target = "-"
            hop[0].target_met = hop[1].target_met = None
            records += hop
            ids = list(r.zrevrange(keys.runs_of_workflow(BUILTIN), 0, opts.runs - 1))
            timelines["default"] = step_timeline(waiter, ids)
            steps_default = sum(1 for _, n in layout_default if n)
            meter = Meter.start(r, ctx.redis_url)
            try:
                footprints.append(
                    footprint("resoto default layout", sides_default.resoto, meter, FOOTPRINT_RUNS, steps_default)
                )
                footprints.append(
                    footprint("plain chain of 4 chords x 1", sides_default.plain, meter, FOOTPRINT_RUNS, steps_default)
                )
            finally:
                meter.split.stop()
            failures = sides.failures + sides_default.failures

        for fp_resoto, fp_plain in (footprints[0:2], footprints[2:4]):
            records.append(
                Record(
                    NAME,
                    f"Redis commands, {fp_resoto['label']}",
                    fp_resoto["commands_per_workflow"],
                    "commands/workflow",
                    fp_plain["commands_per_workflow"],
                    fp_plain["label"],
                    None,
                    {"counted": "INFO commandstats: every command, the script's inside too, the harness's waiting too"},
                    "ratio <= 1.0",
                    fp_resoto["commands_per_workflow"] <= fp_plain["commands_per_workflow"],
                )
            )
            records.append(
                Record(
                    NAME,
                    f"Redis commands without the harness's, {fp_resoto['label']}",
                    fp_resoto["workflow_commands_per_workflow"],
                    "commands/workflow",
                    fp_plain["workflow_commands_per_workflow"],
                    fp_plain["label"],
                    None,
                    {"counted": "MONITOR: every command, inside scripts too, less the bench's waiting and checking"},
                    "ratio <= 1.0",
                    fp_resoto["workflow_commands_per_workflow"] <= fp_plain["workflow_commands_per_workflow"],
                )
            )
            records.append(
                Record(
                    NAME,
                    f"Redis commands sent (no harness, no script inside), {fp_resoto['label']}",
                    fp_resoto["sent_commands_per_workflow"],
                    "commands/workflow",
                    fp_plain["sent_commands_per_workflow"],
                    fp_plain["label"],
                    None,
                    {"counted": "MONITOR: commands clients sent, less the bench's waiting and checking"},
                )
            )
            records.append(
                Record(
                    NAME,
                    f"resoto engine's own commands per subscribed step, {fp_resoto['label']}",
                    fp_resoto["resoto_own_per_subscribed_step"],
                    "commands/step",
                    None,
                    None,
                    None,
                    {
                        "counted": "MONITOR: the apply script's EVALSHA and commands on resoto-prefixed keys "
                        "(start, advance, end of run included; the subscriber tasks' abort checks not), "
                        "per subscribed step",
                        "inside_script_per_subscribed_step": fp_resoto["inside_script_per_subscribed_step"],
                        "subscriber_tasks_per_subscribed_step": fp_resoto[
                            "resoto_subscriber_tasks_per_subscribed_step"
                        ],
                    },
                    "<= 3",
                    fp_resoto["resoto_own_per_subscribed_step"] <= 3,
                )
            )
            records.append(
                Record(
                    NAME,
                    f"bytes into Redis, {fp_resoto['label']}",
                    fp_resoto["kb_in_per_workflow"],
                    "KB/workflow",
                    fp_plain["kb_in_per_workflow"],
                    fp_plain["label"],
                )
            )
        ctx.extra["footprint"] = footprints
        ctx.extra["timeline_from_run_records"] = timelines
        ctx.extra["raw_ms"] = {
            "full": {"resoto": resoto_ms, "plain": plain_ms},
            "default": {"resoto": d_resoto, "plain": d_plain},
        }
        ctx.notes.append(f"runs that did not succeed with every subscriber answered: {failures}")

        if opts.profile:
            ctx.extra["profile"] = {}
            for label, layout in (("full layout", layout_full), ("default layout", layout_default)):
                subs.use(layout)
                for side, summary in profile_both(ctx, waiter, layout).items():
                    ctx.extra["profile"][f"{side}, {label}"] = summary
    finally:
        subs.clear()
        waiter.close()
    return records


def profile_both(ctx: Context, waiter: RunWaiter, layout: Layout) -> dict[str, Any]:
    """Each side on a solo worker: one pass under cProfile, one counting Redis round trips."""
    out = RESULTS / "profile"
    out.mkdir(parents=True, exist_ok=True)
    steps = sum(1 for _, n in layout if n)
    tag = "full" if all(n for _, n in layout) else "default"
    found: dict[str, Any] = {}
    for side in ("resoto", "plain"):
        summary: dict[str, Any] = {"worker": {}, "caller": {}}
        for mode in ("time", "rtt"):
            base = out / f"{side}-{tag}-{mode}"
            profiling.clear(base)
            probe = profiling.LocalProbe(mode)
            sides = Sides(waiter, layout)
            fn = sides.resoto if side == "resoto" else sides.plain
            env = {"BENCH_PROBE": str(base), "BENCH_PROBE_MODE": mode}
            with ctx.worker(pool="solo", concurrency=1, env=env):
                fn()  # warm-up, not measured
                flag = Path(f"{base}.on")
                flag.touch()
                sides.probe = probe
                for _ in range(PROFILE_RUNS):
                    fn()
                flag.unlink()
            if mode == "time":
                stats = profiling.load_pstats(base)
                summary["worker"].update(profiling.pstats_summary(stats, PROFILE_RUNS) if stats else {})
                summary["caller"].update(profiling.pstats_summary(pstats.Stats(probe.profile), PROFILE_RUNS))
            else:
                summary["worker"].update(profiling.rtt_summary(profiling.load_rtt(base), PROFILE_RUNS, steps))
                summary["caller"].update(profiling.rtt_summary(probe.rtt, PROFILE_RUNS, steps))
        found[side] = summary
    return found


def report(ctx: Context) -> str:
    """The footprint, the run records' timeline and the profile, as text."""
    lines = ["  Redis footprint per workflow (INFO commandstats, idle traffic subtracted; by side from MONITOR):"]
    for fp in ctx.extra.get("footprint", []):
        top = ", ".join(f"{k} {v:g}" for k, v in fp["top_commands_per_workflow"].items())
        lines.append(f"    {fp['label']}: {fp['commands_per_workflow']:g} commands, {fp['kb_in_per_workflow']:g} KB in")
        lines.append(f"      {top}")
        sides = ", ".join(f"{k} {v:g}" for k, v in fp.get("by_side_per_workflow", {}).items())
        lines.append(
            f"      by side: {sides}; per subscribed step ({fp.get('subscribed_steps')}): "
            f"resoto's engine {fp.get('resoto_own_per_subscribed_step')}, "
            f"resoto's subscriber tasks {fp.get('resoto_subscriber_tasks_per_subscribed_step')}, "
            f"inside its script {fp.get('inside_script_per_subscribed_step')}, "
            f"resoto's step join {fp.get('step_join_per_subscribed_step')} "
            f"(+ {fp.get('step_join_inside_script_per_subscribed_step')} inside its script), "
            f"celery {fp.get('celery_per_subscribed_step')} "
            f"(+ {fp.get('celery_inside_scripts_per_subscribed_step')} inside its scripts)"
        )
        for side, counts in fp.get("top_by_side_per_workflow", {}).items():
            if counts:
                lines.append(f"        {side}: " + ", ".join(f"{k} {v:g}" for k, v in counts.items()))
    for name, timeline in ctx.extra.get("timeline_from_run_records", {}).items():
        lines.append(f"  run records ({name} layout, medians): " + ", ".join(f"{k} {v:g}" for k, v in timeline.items()))
    for side, summary in ctx.extra.get("profile", {}).items():
        lines.append(profiling.render(side, summary))
    return "\n".join(lines)
