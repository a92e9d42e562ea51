"""RabbitMQ beside Redis as the broker, interleaved in one run (issue 15, benchmark).

The same workflows as ``orchestration`` (``collect_and_cleanup`` with the default layout and the
full layout of no-op subscribers, the plain chain of chords of each layout, and the burst of 20
``parallel`` runs), sent through three brokers side by side:

* **redis**: the private ``redis-server`` as broker (what ``orchestration`` measures);
* **rabbitmq**: ``RESOTO_BROKER_URL=amqp://guest:guest@127.0.0.1:5672/<vhost>`` with the
  defaults of :mod:`resoto_tasks.celery_app` (durable classic queues, publisher confirms);
* **rabbitmq quorum**: the same on a second vhost with ``RESOTO_BROKER_QUORUM_QUEUES=1``.

Redis keeps results, run state and the event stream for all three, so only the broker differs.
Each broker has its own worker (prefork ``-c 2`` on the bench queues plus ``workflow``, as in
``orchestration``), all three running for the whole benchmark, so the sides can alternate
workflow by workflow (the broker that goes first rotates each round): on a shared, noisy 2-core
machine only ratios measured this way mean anything. Every record is RabbitMQ's figure against
Redis's as the baseline (``ratio`` = RabbitMQ / Redis).

The vhosts are this run's own (``rabbitmqctl add_vhost`` + ``set_permissions`` for guest), deleted
at the end.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from celery import Celery

from bench.framework import Context, Record, benchmark, median, percentile
from bench.orchestration import (
    BURST_WORKFLOW,
    Layout,
    RunWaiter,
    Sides,
    Subscribers,
    add_burst_workflow,
    burst,
    default_layout,
    full_layout,
)
from resoto_tasks import runtime
from resoto_tasks.celery_app import create_app
from resoto_tasks.engine import Engine
from resoto_tasks.settings import get_settings
from resoto_tasks.wiring import engine_for

NAME = "brokers"
AMQP_HOST = "127.0.0.1"
AMQP_PORT = 5672
REDIS = "redis"
RABBITMQ = "rabbitmq"
QUORUM = "rabbitmq quorum"


def _unavailable() -> str | None:
    """Needs the local RabbitMQ (``make test`` installs and starts it) and ``rabbitmqctl`` for vhosts."""
    if shutil.which("rabbitmqctl") is None:
        return "rabbitmqctl not found (scripts/install-deps.sh rabbitmq)"
    try:
        socket.create_connection((AMQP_HOST, AMQP_PORT), timeout=2).close()
    except OSError as exc:
        return f"no RabbitMQ on {AMQP_HOST}:{AMQP_PORT}: {exc}"
    return None


def rabbitmqctl(*args: str) -> None:
    done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")


@contextmanager
def vhost() -> Iterator[str]:
    """A vhost of this run's own (queues of another session or an earlier run never mix in),
    guest allowed everything; deleted on the way out."""
    name = f"resoto-bench-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", name)
    try:
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield name
    finally:
        subprocess.run(["rabbitmqctl", "delete_vhost", name], capture_output=True, timeout=60, check=False)


@dataclass
class Broker:
    """One side: the app and engine this process sends through, and its worker's extra settings."""

    label: str
    app: Celery
    engine: Engine
    env: dict[str, str] = field(default_factory=dict)


def amqp_broker(label: str, vhost_name: str, quorum: bool) -> Broker:
    """An app of this process on RabbitMQ (the rest of the settings as exported: Redis for the rest)."""
    url = f"amqp://guest:guest@{AMQP_HOST}:{AMQP_PORT}/{vhost_name}"
    env = {"RESOTO_BROKER_URL": url}
    if quorum:
        env["RESOTO_BROKER_QUORUM_QUEUES"] = "1"
    settings = get_settings().model_copy(update={"broker_url": url, "broker_quorum_queues": quorum})
    app = create_app(settings)
    return Broker(label, app, engine_for(app), env)


def rotated(items: list[Broker], i: int) -> list[Broker]:
    """Round ``i`` starts with a different broker, so none always runs first (or right after another)."""
    k = i % len(items)
    return items[k:] + items[:k]


def interleaved(
    brokers: list[Broker], sides: dict[str, Sides], ctx: Context
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Each round: one resoto run on each broker, then one plain chain on each (ms per workflow)."""
    resoto: dict[str, list[float]] = {b.label: [] for b in brokers}
    plain: dict[str, list[float]] = {b.label: [] for b in brokers}
    for i in range(ctx.options.warmup + ctx.options.runs):
        order = rotated(brokers, i)
        got_resoto = {b.label: sides[b.label].resoto() for b in order}
        got_plain = {b.label: sides[b.label].plain() for b in order}
        if i >= ctx.options.warmup:
            for b in brokers:
                resoto[b.label].append(got_resoto[b.label])
                plain[b.label].append(got_plain[b.label])
    return resoto, plain


def chords_of(layout: Layout) -> int:
    """Chords per workflow of the plain chain (one per action with subscribers)."""
    return sum(1 for _, n in layout if n)


def time_records(
    what: str, label: str, ms: dict[str, list[float]], params: dict[str, Any], chords: int
) -> list[Record]:
    """Median and p90 of ``label``'s ms per workflow against Redis's, and the median of pair ratios."""
    amqp, base = ms[label], ms[REDIS]
    params = {
        **params,
        "chords_per_workflow": chords,
        "median_of_pair_ratios": round(median([a / b for a, b in zip(amqp, base, strict=True)]), 3),
        "chords_per_s_sequential": {
            label: round(chords * 1000 / median(amqp), 1),
            REDIS: round(chords * 1000 / median(base), 1),
        },
    }
    return [
        Record(
            NAME,
            f"{what}, {label}: median",
            round(median(amqp), 1),
            "ms/workflow",
            round(median(base), 1),
            "Redis broker",
            None,
            params,
        ),
        Record(
            NAME,
            f"{what}, {label}: p90",
            round(percentile(amqp, 90), 1),
            "ms/workflow",
            round(percentile(base, 90), 1),
            "Redis broker",
            None,
            params,
        ),
    ]


@benchmark(NAME, unavailable=_unavailable)
def run(ctx: Context) -> list[Record]:
    """RabbitMQ (classic and quorum queues) vs Redis as the broker: the orchestration workflows, interleaved."""
    opts = ctx.options
    waiter = RunWaiter(ctx.redis_url)
    subs = Subscribers()
    records: list[Record] = []
    raw: dict[str, Any] = {}
    failures: dict[str, int] = {}
    with ExitStack() as stack:
        classic = stack.enter_context(vhost())
        quorum = stack.enter_context(vhost())
        brokers = [
            Broker(REDIS, runtime.app(), runtime.engine()),
            amqp_broker(RABBITMQ, classic, quorum=False),
            amqp_broker(QUORUM, quorum, quorum=True),
        ]
        for b in brokers[1:]:
            stack.callback(b.app.close)
        stack.callback(waiter.close)
        stack.callback(subs.clear)
        for b in brokers:  # one worker per broker, alive for the whole benchmark
            stack.enter_context(ctx.worker(env=b.env))
        workers = f"one per broker: prefork -c {opts.concurrency}, bench queues + workflow"
        for what, layout in (
            ("default layout (1 no-op sub on 4 actions)", default_layout()),
            ("full layout (2 no-op subs x 12 actions)", full_layout()),
        ):
            subs.use(layout)
            sides = {b.label: Sides(waiter, layout, app=b.app, engine=b.engine) for b in brokers}
            resoto_ms, plain_ms = interleaved(brokers, sides, ctx)
            params = {"runs": opts.runs, "warmup": opts.warmup, "workers": workers, "layout": layout}
            for label in (RABBITMQ, QUORUM):
                records += time_records(f"{what}, resoto run", label, resoto_ms, params, chords_of(layout))
                records += time_records(
                    f"{what}, plain chain of {chords_of(layout)} chords", label, plain_ms, params, chords_of(layout)
                )
            raw[what] = {"resoto": resoto_ms, "plain": plain_ms}
            for label, s in sides.items():
                failures[label] = failures.get(label, 0) + s.failures

        # the burst: 20 runs of the full layout's user workflow at once, then 20 plain canvases
        layout = full_layout()
        subs.use(layout)
        add_burst_workflow()
        sides = {b.label: Sides(waiter, layout, app=b.app, engine=b.engine) for b in brokers}
        for b in brokers:
            burst(sides[b.label], ctx, BURST_WORKFLOW)  # warm-up
        rounds: dict[str, list[tuple[float, float]]] = {b.label: [] for b in brokers}
        for i in range(opts.bursts):
            for b in rotated(brokers, i):
                rounds[b.label].append(burst(sides[b.label], ctx, BURST_WORKFLOW))
        chords = chords_of(layout)
        for label in (RABBITMQ, QUORUM):
            wps = {k: median([r for r, _ in v]) for k, v in rounds.items()}
            plain_wps = {k: median([p for _, p in v]) for k, v in rounds.items()}
            params = {"rounds": opts.bursts, "burst_size": opts.burst_size, "per_round": rounds, "workers": workers}
            what = f"burst of {opts.burst_size} (parallel, full layout)"
            records += [
                Record(
                    NAME,
                    f"{what}, resoto, {label}",
                    round(wps[label], 2),
                    "workflows/s",
                    round(wps[REDIS], 2),
                    "Redis broker",
                    None,
                    params,
                ),
                Record(
                    NAME,
                    f"{what}, resoto, {label}",
                    round(wps[label] * chords, 1),
                    "chords/s",
                    round(wps[REDIS] * chords, 1),
                    "Redis broker",
                    None,
                    {"chords_per_workflow": chords},
                ),
                Record(
                    NAME,
                    f"{what}, plain canvases, {label}",
                    round(plain_wps[label] * chords, 1),
                    "chords/s",
                    round(plain_wps[REDIS] * chords, 1),
                    "Redis broker",
                    None,
                    {"chords_per_workflow": chords},
                ),
            ]
        for label, s in sides.items():
            failures[label] += s.failures
    ctx.extra["raw_ms"] = raw
    ctx.extra["brokers"] = {
        REDIS: "the private redis-server (broker, results, state)",
        RABBITMQ: "amqp://guest@127.0.0.1:5672/<own vhost>: durable classic queues, publisher confirms",
        QUORUM: "the same on another vhost with RESOTO_BROKER_QUORUM_QUEUES=1 (quorum queues, one node)",
    }
    ctx.notes.append(f"runs that did not succeed with every subscriber answered, by broker: {failures}")
    ctx.notes.append("ratio = RabbitMQ / Redis; for ms lower is better, for workflows/s and chords/s higher is")
    return records
