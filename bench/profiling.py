"""Where the time goes: cProfile summaries and Redis round trips by caller.

Two passes per side, so that neither instrument distorts the other:

* **time**: a ``solo`` worker (one process, one thread) profiles each task with cProfile, and
  this process profiles only the calls that start work (``engine.start``, ``apply_async``)
  with :class:`LocalProbe`;
* **round trips**: the worker counts its Redis round trips by origin, and this process those
  of the same starting calls.

The worker side is switched by ``BENCH_PROBE``/``BENCH_PROBE_MODE`` (see :mod:`bench.tasks`)
and measures only while the flag file ``<base>.on`` exists, so warm-up runs stay out.
"""

from __future__ import annotations

import cProfile
import json
import pstats
from collections import Counter
from pathlib import Path
from typing import Any

from bench.tasks import install_counter

IDLE = ("{method 'poll' of 'select.epoll' objects}", "{built-in method time.sleep}", "{method 'select'", "'poll'")
REDIS_IO = ("recv_into", "sendall", "'recv'", "hiredis")


class LocalProbe:
    """Profiles (``mode="time"``) or counts round trips (``mode="rtt"``) inside ``with`` blocks.

    Re-entrant over many blocks: the figures add up.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.profile = cProfile.Profile()
        self.rtt: Counter[str] = Counter()
        self._before: Counter[str] = Counter()

    def __enter__(self) -> LocalProbe:
        if self.mode == "rtt":
            self._before = Counter(install_counter())
        else:
            self.profile.enable()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.mode == "rtt":
            self.rtt.update(install_counter() - self._before)
        else:
            self.profile.disable()


def _label(key: tuple[str, int, str]) -> str:
    file, line, fn = key
    if file == "~":
        return fn
    marker = "/site-packages/"
    short = file.split(marker, 1)[1] if marker in file else file.split("/work/main/", 1)[-1]
    return f"{short}:{line}:{fn}"


def _category(key: tuple[str, int, str]) -> str:
    file, _line, fn = key
    text = f"{file} {fn}"
    if any(i in text for i in IDLE):
        return "idle"
    if any(i in text for i in REDIS_IO):
        return "socket I/O with Redis"
    for needle, name in (
        ("/resoto_tasks/", "resoto_tasks code"),
        ("pydantic", "pydantic"),
        ("/redis/", "redis-py"),
        ("/kombu/", "kombu"),
        ("/celery/", "celery"),
        ("/billiard/", "billiard"),
        ("/logging/", "logging"),
        ("json", "json"),
        ("/uuid", "uuid"),
        ("/bench/", "bench"),
    ):
        if needle in text:
            return name
    return "other stdlib/builtins"


def pstats_summary(stats: pstats.Stats, runs: int, top: int = 25) -> dict[str, Any]:
    """Per workflow: busy time by category, top own-time functions, top resoto_tasks functions.

    Idle waiting is left out.
    """
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    entries = [(key, nc, tt, ct) for key, (_cc, nc, tt, ct, _callers) in raw.items()]
    categories: Counter[str] = Counter()
    for key, _nc, tt, _ct in entries:
        categories[_category(key)] += tt
    categories.pop("idle", None)
    own = sorted((e for e in entries if _category(e[0]) != "idle"), key=lambda e: -e[2])
    resoto = sorted((e for e in entries if "/resoto_tasks/" in e[0][0]), key=lambda e: -e[3])

    def per(value: float) -> float:
        return round(value / runs * 1000, 2)

    return {
        "busy_ms_per_workflow": per(sum(categories.values())),
        "by_category_ms_per_workflow": {k: per(v) for k, v in categories.most_common()},
        "top_own_time": [
            {"function": _label(k), "own_ms_per_workflow": per(tt), "calls_per_workflow": round(nc / runs, 1)}
            for k, nc, tt, _ct in own[:top]
        ],
        "top_resoto_functions": [
            {"function": _label(k), "cum_ms_per_workflow": per(ct), "calls_per_workflow": round(nc / runs, 1)}
            for k, nc, _tt, ct in resoto[:top]
        ],
    }


def rtt_summary(counts: Counter[str], runs: int, steps: int) -> dict[str, Any]:
    """Round trips per workflow and per subscribed step, split into resoto_tasks' own (its code
    calling redis-py directly; the engine's apart from the subscriber tasks' abort checks) and
    Celery/kombu's (messages, results, chords), and by origin."""
    total = sum(counts.values())
    own = sum(v for k, v in counts.items() if _is_own(k))
    engine = sum(v for k, v in counts.items() if _is_own(k) and "subscribers." not in k)
    return {
        "round_trips_per_workflow": round(total / runs, 1),
        "round_trips_per_subscribed_step": round(total / runs / steps, 2),
        "resoto_own_round_trips_per_subscribed_step": round(own / runs / steps, 2),
        "resoto_engine_round_trips_per_subscribed_step": round(engine / runs / steps, 2),
        "celery_kombu_round_trips_per_subscribed_step": round((total - own) / runs / steps, 2),
        "round_trips_by_origin_per_workflow": {k: round(v / runs, 2) for k, v in counts.most_common()},
    }


def _is_own(origin: str) -> bool:
    """``task | resoto chain`` without a ``[library]`` suffix: resoto_tasks code talking to Redis."""
    where = origin.split(" | ", 1)[-1]
    return not where.endswith("]") and "." in where and not where.startswith(("kombu", "celery", "bench", "redis"))


def load_rtt(base: Path) -> Counter[str]:
    found: Counter[str] = Counter()
    for path in base.parent.glob(f"{base.name}.*.json"):
        found.update(json.loads(path.read_text(encoding="utf-8")))
    return found


def load_pstats(base: Path) -> pstats.Stats | None:
    paths = sorted(str(p) for p in base.parent.glob(f"{base.name}.*.pstats"))
    return pstats.Stats(*paths) if paths else None


def clear(base: Path) -> None:
    for path in base.parent.glob(f"{base.name}.*"):
        path.unlink()


_WHAT = {"worker": "tasks", "caller": "the starting call"}


def render(name: str, summary: dict[str, Any], top: int = 20) -> str:
    """A readable text report of one side's profile."""
    lines = [f"  == profile: {name} =="]
    for part in ("worker", "caller"):
        data = summary.get(part, {})
        if not data:
            continue
        lines.append(
            f"  -- {part}: {data.get('busy_ms_per_workflow')} ms/workflow in {_WHAT[part]} (under cProfile), "
            f"{data.get('round_trips_per_workflow')} Redis round trips/workflow "
            f"({data.get('round_trips_per_subscribed_step')} per subscribed step: "
            f"{data.get('resoto_own_round_trips_per_subscribed_step')} resoto_tasks' own "
            f"({data.get('resoto_engine_round_trips_per_subscribed_step')} outside the subscriber tasks), "
            f"{data.get('celery_kombu_round_trips_per_subscribed_step')} Celery/kombu)"
        )
        cats = data.get("by_category_ms_per_workflow", {})
        lines.append("     busy by category (ms/workflow): " + ", ".join(f"{k} {v}" for k, v in cats.items()))
        lines.append("     round trips by origin (per workflow):")
        origins = list(data.get("round_trips_by_origin_per_workflow", {}).items())
        lines += [f"       {v:7.2f}  {k}" for k, v in origins[:top]]
        lines.append("     own time (ms/workflow, calls/workflow):")
        lines += [
            f"       {f['own_ms_per_workflow']:8.2f} {f['calls_per_workflow']:7.1f}  {f['function']}"
            for f in data.get("top_own_time", [])[:top]
        ]
        lines.append("     resoto_tasks functions by cumulative time (ms/workflow, calls/workflow):")
        lines += [
            f"       {f['cum_ms_per_workflow']:8.2f} {f['calls_per_workflow']:7.1f}  {f['function']}"
            for f in data.get("top_resoto_functions", [])[:top]
        ]
    return "\n".join(lines)
