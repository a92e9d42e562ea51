"""Fill the store from the example cloud, as the collect action does, accounts in parallel processes.

Used by the metrics and cleanup benchmarks to build their inventory (not timed as a figure): per
account ``ExampleProvider.collect`` -> ``SnapshotWriter.add_many`` -> ``commit``. One Python
process generates about 45,000 resources/s, so a million take about 24 s; two ``spawn``\\ ed
processes (one per core, each its own accounts) take about 60 % of that. The children inherit the
environment ``bench.infra.export_env`` set, so they write to the benchmark's private Redis.
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any

RUN_ID = "bench-collect"


def collect_account(settings: dict[str, Any], account: str) -> int:
    """One account of the example cloud into the store (runs in a child process); resources written."""
    from resoto_tasks.store import ResourceStore
    from worker.providers.example import ExampleProvider, ExampleSettings

    provider = ExampleProvider(ExampleSettings(**settings))
    with ResourceStore().snapshot_writer(provider.name, account, RUN_ID) as writer:
        writer.add_many(provider.collect(account))
        return writer.commit().resource_count


def pool(processes: int = 2) -> ProcessPoolExecutor:
    """Collector processes (``spawn``: no Redis connection or lock inherited from this process)."""
    return ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("spawn"))


def build(settings: dict[str, Any], executor: Executor | None = None) -> dict[str, float]:
    """Collect every account of the example cloud ``settings`` describe; resources and seconds.

    ``settings`` are ``ExampleSettings`` fields (``accounts``, ``resources_per_account``, ...).
    """
    from worker.providers.example import ExampleProvider, ExampleSettings

    accounts = ExampleProvider(ExampleSettings(**settings)).accounts()
    t0 = time.perf_counter()
    if executor is None:
        with pool() as own:
            written = sum(own.map(collect_account, [settings] * len(accounts), accounts))
    else:
        written = sum(executor.map(collect_account, [settings] * len(accounts), accounts))
    return {"resources": written, "seconds": round(time.perf_counter() - t0, 1)}
