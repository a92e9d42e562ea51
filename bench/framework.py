"""The benchmark framework: records, a registry, tables and JSON results.

A benchmark is a function ``run(ctx) -> list[Record]`` registered with :func:`benchmark`; it
starts what it needs (workers) through the :class:`Context` and returns one record per figure.
``python -m bench`` prints every record as a table row and writes ``bench/results/<name>.json``.
"""

from __future__ import annotations

import json
import platform
import statistics
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.infra import RESULTS, Worker


@dataclass
class Record:
    """One measured figure, its baseline measured in the same run, and whether it meets its target.

    ``ratio`` is ``figure / baseline``; ``target`` says in words what is checked, ``target_met``
    whether it held (``None`` where there is no target).
    """

    benchmark: str
    metric: str
    figure: float
    unit: str
    baseline: float | None = None
    baseline_name: str | None = None
    ratio: float | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    target: str | None = None
    target_met: bool | None = None

    def __post_init__(self) -> None:
        if self.ratio is None and self.baseline:
            self.ratio = round(self.figure / self.baseline, 3)


@dataclass
class Options:
    runs: int = 30
    warmup: int = 3
    bursts: int = 3
    burst_size: int = 20
    concurrency: int = 2
    profile: bool = True
    plain: bool = False
    strict: bool = False
    store_size: int = 1_000_000


@dataclass
class Context:
    """What a benchmark gets: options, the private Redis URL, and a worker factory."""

    redis_url: str
    options: Options
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @contextmanager
    def worker(self, **kwargs: Any) -> Iterator[Worker]:
        """A worker for the ``with`` block (the same pool and concurrency for A and B)."""
        kwargs.setdefault("concurrency", self.options.concurrency)
        started = Worker(**kwargs).start()
        try:
            yield started
        finally:
            started.stop()


BenchFn = Callable[[Context], list[Record]]
Available = Callable[[], str | None]


@dataclass(frozen=True)
class Benchmark:
    name: str
    doc: str
    run: BenchFn
    unavailable: Available
    """Returns why the benchmark cannot run yet (a missing dependency), or ``None``."""


REGISTRY: dict[str, Benchmark] = {}


def always() -> str | None:
    return None


def benchmark(name: str, unavailable: Available = always) -> Callable[[BenchFn], BenchFn]:
    def register(fn: BenchFn) -> BenchFn:
        REGISTRY[name] = Benchmark(name, (fn.__doc__ or "").strip().splitlines()[0], fn, unavailable)
        return fn

    return register


# ---------------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile, ``q`` in [0, 100]."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.1f}"


def _met(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "NO")


COLUMNS = ["metric", "figure", "unit", "baseline", "ratio", "target", "met"]


def rows(records: list[Record]) -> list[list[str]]:
    return [
        [r.metric, _fmt(r.figure), r.unit, _fmt(r.baseline), _fmt(r.ratio), r.target or "-", _met(r.target_met)]
        for r in records
    ]


def print_table(title: str, records: list[Record], plain: bool = False) -> None:
    """A rich table when rich is there (and wanted), else aligned plain text."""
    body = rows(records)
    if not plain:
        try:
            from rich.console import Console
            from rich.table import Table
        except ImportError:
            plain = True
        else:
            table = Table(title=title)
            for col in COLUMNS:
                table.add_column(col, justify="left" if col in ("metric", "unit", "target") else "right")
            for row in body:
                style = "red" if row[-1] == "NO" else None
                table.add_row(*row, style=style)
            Console(width=160).print(table)
            return
    widths = [max(len(c), *(len(r[i]) for r in body)) if body else len(c) for i, c in enumerate(COLUMNS)]
    print(title)
    print("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)))
    for row in body:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def write_results(name: str, records: list[Record], ctx: Context) -> Path:
    """``bench/results/<name>.json``: the records plus when and where they were measured."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    doc = {
        "benchmark": name,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": _cpus(), "python": platform.python_version(), "platform": platform.platform()},
        "options": asdict(ctx.options),
        "notes": ctx.notes,
        "records": [asdict(r) for r in records],
        **ctx.extra,
    }
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 0)
