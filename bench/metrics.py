"""Metrics: ``generate_metrics`` with the default definitions at 100,000 and 1,000,000 resources.

The store is filled from the example cloud (4 accounts, ``bench.example_store``: collect ->
``SnapshotWriter`` -> commit, as the collect action does). What is timed is
``worker.metrics.generate.generate(run_id=...)``, the function the ``resoto.generate_metrics``
task calls, in this process without Celery: load the definitions (built-ins; ``RESOTO_METRICS_FILE``
is unset here), read every account's stats (``ResourceStore.all_stats``), compute every definition,
stage and swap the live set. Median of ``RUNS`` after ``WARMUP``.

The floor, measured interleaved with it: one pipelined round trip of plain redis-py ``HGETALL`` of
every account's counts hash (the data a run aggregates), so the ratio is the overhead over the raw
reads. At the large size one scrape is rendered too (``prometheus_client.generate_latest`` of the
registry a metrics worker serves, ``worker.metrics.server.make_registry``), once with a fresh
collector (reads the whole live set) and once with a collector that read it before (one ``HGET``
of the stamp), against a plain ``HGETALL`` of the live set hash.

A third case spreads the small inventory over ``MANY_ACCOUNTS`` accounts: a run's cost is meant to
grow with accounts x kinds x regions, not with resources, and this shows the per-account part.
"""

from __future__ import annotations

import importlib
import os
import time
import uuid
from typing import Any

from bench import example_store
from bench.framework import Context, Record, benchmark, median, percentile
from bench.infra import server_stats
from bench.store_data import flush, store_unavailable

NAME = "metrics"
ACCOUNTS = 4
RUNS = 25
WARMUP = 3
SCRAPES = 10
TARGET_MS = 50.0
MANY_ACCOUNTS = 400
"""A third case: the small inventory spread over this many accounts (a run reads every account)."""


def _unavailable() -> str | None:
    reason = store_unavailable()
    if reason:
        return reason
    wanted = {
        "worker.metrics.generate": ("generate", "Rows", "compute"),
        "worker.metrics.definitions": ("load_definitions",),
        "worker.metrics.live": ("publish", "Generation"),
        "worker.metrics.server": ("make_registry",),
    }
    for module, names in wanted.items():
        try:
            found = importlib.import_module(module)
        except ImportError as exc:
            return f"{module} cannot be imported ({exc})"
        missing = [n for n in names if not hasattr(found, n)]
        if missing:
            return f"{module} has no {', '.join(missing)}"
    return None


def _floor_ms(r: Any, accounts: list[tuple[str, str]]) -> float:
    """Plain redis-py: HGETALL of each account's counts hash, one pipelined round trip."""
    from resoto_tasks.store import keys

    t0 = time.perf_counter()
    pipe = r.pipeline(transaction=False)
    for provider, account in accounts:
        pipe.hgetall(keys.live(provider, account).counts)
    pipe.execute()
    return (time.perf_counter() - t0) * 1000


def _generate_ms() -> tuple[float, Any]:
    """The task's code path: ``generate(run_id=...)`` with everything else defaulted."""
    from worker.metrics.generate import generate

    t0 = time.perf_counter()
    report = generate(run_id=f"bench-metrics-{uuid.uuid4().hex[:8]}")
    return (time.perf_counter() - t0) * 1000, report


def _breakdown(r: Any) -> dict[str, float]:
    """The phases of ``generate`` called one by one (same functions), median ms of ``RUNS``."""
    from resoto_tasks.store import ResourceStore
    from worker.metrics import live
    from worker.metrics.definitions import load_definitions
    from worker.metrics.generate import Rows, compute

    phases: dict[str, list[float]] = {"definitions": [], "all_stats": [], "compute": [], "publish": []}
    for i in range(RUNS):
        t0 = time.perf_counter()
        definitions, _ = load_definitions()
        t1 = time.perf_counter()
        rows = Rows.of(ResourceStore(r).all_stats())
        t2 = time.perf_counter()
        families = [compute(d, rows) for d in definitions]
        t3 = time.perf_counter()
        live.publish(r, families, live.Generation(f"bench-breakdown-{i}", time.time(), t3 - t0))
        t4 = time.perf_counter()
        for name, start, end in (("definitions", t0, t1), ("all_stats", t1, t2), ("compute", t2, t3),
                                 ("publish", t3, t4)):  # fmt: skip
            phases[name].append((end - start) * 1000)
    return {name: round(median(values), 3) for name, values in phases.items()}


def _commands_per_run(r: Any) -> dict[str, float]:
    """Redis commands one ``generate`` sends (INFO commandstats over ``RUNS``; nothing else runs)."""
    before = server_stats(r)
    for _ in range(RUNS):
        _generate_ms()
    delta = server_stats(r).minus(before)
    return {cmd: round(n / RUNS, 1) for cmd, n in sorted(delta.calls.items(), key=lambda kv: -kv[1])}


def _scrapes(r: Any) -> dict[str, float]:
    """One scrape rendered as a metrics worker serves it; fresh and kept collector, and the floor."""
    from prometheus_client import generate_latest

    from worker.metrics import keys as metric_keys
    from worker.metrics.server import make_registry

    fresh, kept, floor = [], [], []
    registry = make_registry(r)
    body = generate_latest(registry)  # the kept collector has read the live set once
    for _ in range(SCRAPES):
        t0 = time.perf_counter()
        generate_latest(make_registry(r))
        t1 = time.perf_counter()
        generate_latest(registry)
        t2 = time.perf_counter()
        r.hgetall(metric_keys.live())
        t3 = time.perf_counter()
        fresh.append((t1 - t0) * 1000)
        kept.append((t2 - t1) * 1000)
        floor.append((t3 - t2) * 1000)
    return {
        "fresh_ms": median(fresh), "kept_ms": median(kept), "floor_ms": median(floor),
        "bytes": len(body), "lines": body.count(b"\n"),
    }  # fmt: skip


def _measure(r: Any, size: int, accounts_n: int, executor: Any, scrape: bool) -> dict[str, Any]:
    from resoto_tasks.store import ResourceStore

    flush(r)
    built = example_store.build({"accounts": accounts_n, "resources_per_account": size // accounts_n}, executor)
    store = ResourceStore(r)
    accounts = store.accounts()
    counted = store.counts().total
    for _ in range(WARMUP):
        _generate_ms()
        _floor_ms(r, accounts)
    times, floors = [], []
    report = None
    for _ in range(RUNS):
        ms, report = _generate_ms()
        times.append(ms)
        floors.append(_floor_ms(r, accounts))
    assert report is not None
    found: dict[str, Any] = {
        "accounts": len(accounts),
        "size": size,
        "resources": counted,
        "build": built,
        "ms": median(times),
        "p90_ms": round(percentile(times, 90), 3),
        "floor_ms": median(floors),
        "median_of_pair_ratios": round(median([t / f for t, f in zip(times, floors, strict=True)]), 2),
        "families": report.families,
        "samples": report.samples,
        "errors": report.generation.errors,
        "breakdown_ms": _breakdown(r),
        "redis_commands_per_run": _commands_per_run(r),
    }
    if scrape:
        found["scrape"] = _scrapes(r)
    return found


@benchmark(NAME, unavailable=_unavailable)
def run(ctx: Context) -> list[Record]:
    """Metrics: generate_metrics (default definitions) at 100,000 and 1,000,000 example resources."""
    from resoto_tasks.redis_conn import client

    os.environ.pop("RESOTO_METRICS_FILE", None)  # the default definitions, as the issue asks
    r = client()
    large = ctx.options.store_size
    small = large // 10
    with example_store.pool() as executor:
        small_case = _measure(r, small, ACCOUNTS, executor, False)
        large_case = _measure(r, large, ACCOUNTS, executor, True)
        many_case = _measure(r, small, MANY_ACCOUNTS, executor, False)
    flush(r)
    cases = {
        f"{small:,} resources, {ACCOUNTS} accounts": small_case,
        f"{large:,} resources, {ACCOUNTS} accounts": large_case,
        f"{small:,} resources, {MANY_ACCOUNTS} accounts": many_case,
    }
    for label, case in cases.items():
        if case["errors"]:
            ctx.notes.append(f"{label}: definitions failed: {case['errors']}")
        if case["resources"] != case["size"]:
            ctx.notes.append(f"{label}: the store holds {case['resources']:,} resources")
    ctx.extra["cases"] = cases
    records = []
    for label, case in cases.items():
        params = {
            "accounts": case["accounts"], "runs": RUNS, "warmup": WARMUP, "resources": case["resources"],
            "families": case["families"], "samples": case["samples"], "p90_ms": case["p90_ms"],
            "median_of_pair_ratios": case["median_of_pair_ratios"], "breakdown_ms": case["breakdown_ms"],
        }  # fmt: skip
        record = Record(NAME, f"generate_metrics at {label}: median", round(case["ms"], 2), "ms",
                        round(case["floor_ms"], 3), "pipelined HGETALL of each account's counts hash", None,
                        params)  # fmt: skip
        if case is large_case:
            record.target, record.target_met = f"figure < {TARGET_MS:g} ms", case["ms"] < TARGET_MS
        records.append(record)
    records.append(
        Record(NAME, f"10x the inventory, same accounts: {large:,} vs {small:,}",
               round(large_case["ms"] / small_case["ms"], 2), "x")
    )  # fmt: skip
    scrape = large_case["scrape"]
    scrape_params = {"scrapes": SCRAPES, "bytes": scrape["bytes"], "lines": scrape["lines"]}
    records += [
        Record(NAME, f"scrape render at {large:,}, fresh collector (reads the live set)", round(scrape["fresh_ms"], 2),
               "ms", round(scrape["floor_ms"], 3), "HGETALL of the live metrics hash", None, scrape_params),
        Record(NAME, f"scrape render at {large:,}, collector kept (live set unchanged)", round(scrape["kept_ms"], 2),
               "ms", round(scrape["floor_ms"], 3), "HGETALL of the live metrics hash", None, scrape_params),
    ]  # fmt: skip
    return records


def report(ctx: Context) -> str:
    """Where a run's time goes, and what it asks Redis."""
    lines = []
    for label, case in ctx.extra.get("cases", {}).items():
        phases = ", ".join(f"{k} {v:.2f}" for k, v in case["breakdown_ms"].items())
        commands = ", ".join(f"{k} {v:g}" for k, v in case["redis_commands_per_run"].items())
        lines.append(
            f"  {label} ({case['build']['seconds']} s to build): phases ms: {phases}; "
            f"{case['families']} families, {case['samples']} samples; Redis commands per run: {commands}"
        )
    return "\n".join(lines)
