"""Planning: what cleanup_plan does (find expired, unprotected resources and mark them) at two sizes.

Resources are written through ``SnapshotWriter`` (4 accounts; 1 % with an expiry in the past,
about 3 % with one in the future, the rest without). Planning is timed as the ``cleanup_plan``
action runs it, in process: ``worker.cleanup.mark_expired`` (expired index, protected flags,
marks in batches); the marks are dropped between repetitions. The floor is a plain ``ZRANGEBYSCORE`` of each
account's expiry index (the same ids, no marking).

Cost should grow with the expired count, not the inventory: besides 100,000 and 1,000,000 at
1 %, a third case has 1,000,000 resources with the same number expired as the small one (0.1 %);
that pair is held to "under 2x". (At 1 % both ways the expired count grows 10x as well.)
"""

from __future__ import annotations

import time
from typing import Any

from bench.framework import Context, Record, benchmark, median
from bench.store_data import PROVIDER, flush, store_unavailable, synthetic, utcnow

NAME = "planning"
ACCOUNTS = 4
EXPIRED_EVERY = 100
REPEAT = 5


def _load(total: int, expired_every: int, now: Any) -> None:
    from resoto_tasks.store import ResourceStore

    store = ResourceStore()
    for a in range(ACCOUNTS):
        account = f"plan-{a}"
        with store.snapshot_writer(PROVIDER, account, "bench-planning") as writer:
            writer.add_many(synthetic(account, total // ACCOUNTS, expired_every, now))
            writer.commit()


def _plan(now: Any) -> tuple[float, int]:
    from resoto_tasks.store import ResourceStore
    from worker.cleanup import mark_expired

    store = ResourceStore()
    t0 = time.perf_counter()
    marked = mark_expired(store, "bench-planning", now)["marked"]
    return (time.perf_counter() - t0) * 1000, marked


def _drop_marks(r: Any) -> None:
    from resoto_tasks.store import keys

    r.delete(*[keys.marks(PROVIDER, f"plan-{a}") for a in range(ACCOUNTS)])


def _floor(r: Any, now: Any) -> float:
    from resoto_tasks.store import keys

    t0 = time.perf_counter()
    for a in range(ACCOUNTS):
        r.zrangebyscore(keys.live(PROVIDER, f"plan-{a}").expiry, "-inf", f"({now.timestamp()}")
    return (time.perf_counter() - t0) * 1000


def _measure(r: Any, size: int, expired_every: int, now: Any) -> dict[str, float]:
    flush(r)
    t0 = time.perf_counter()
    _load(size, expired_every, now)
    load_s = time.perf_counter() - t0
    times, floors, marked = [], [], 0
    for _ in range(REPEAT):
        _drop_marks(r)
        ms, marked = _plan(now)
        times.append(ms)
        floors.append(_floor(r, now))
    return {"ms": median(times), "floor_ms": median(floors), "marked": marked, "load_s": round(load_s, 1)}


@benchmark(NAME, unavailable=store_unavailable)
def run(ctx: Context) -> list[Record]:
    """Planning: expired + mark at 100,000 and 1,000,000 resources with 1 % expired."""
    from resoto_tasks.redis_conn import client

    r = client()
    now = utcnow()
    large = ctx.options.store_size
    small = large // 10
    cases = {
        f"{small:,} resources, 1 % expired": _measure(r, small, EXPIRED_EVERY, now),
        f"{large:,} resources, 1 % expired": _measure(r, large, EXPIRED_EVERY, now),
        f"{large:,} resources, 0.1 % expired": _measure(r, large, EXPIRED_EVERY * 10, now),
    }
    flush(r)
    params = {"accounts": ACCOUNTS, "repeat": REPEAT, "cases": cases}
    records = [
        Record(
            NAME,
            f"plan at {label} ({int(f['marked']):,} marked), median",
            round(f["ms"], 1),
            "ms",
            round(f["floor_ms"], 1),
            "ZRANGEBYSCORE of the expiry indexes",
            None,
            params,
        )
        for label, f in cases.items()
    ]
    (small_label, small_f), (large_label, large_f), (same_label, same_f) = cases.items()
    records[1].target, records[1].target_met = "figure < 150 ms", large_f["ms"] < 150
    same_expired = same_f["ms"] / small_f["ms"]
    records.append(
        Record(
            NAME,
            f"10x the inventory, the same {int(small_f['marked']):,} expired: {same_label} vs {small_label}",
            round(same_expired, 2),
            "x",
            None,
            None,
            None,
            params,
            "figure < 2",
            same_expired < 2,
        )
    )
    records.append(
        Record(
            NAME,
            f"10x the inventory and 10x expired: {large_label} vs {small_label}",
            round(large_f["ms"] / small_f["ms"], 2),
            "x",
            None,
            None,
            None,
            params,
        )
    )
    return records
