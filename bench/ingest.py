"""Ingest: collect 1,000,000 example resources over 4 accounts into the store (issue 7, item 2).

* **collect**: a separate process (``bench.ingest_collector``) runs, per account,
  ``ExampleProvider.collect`` -> ``SnapshotWriter.add_many`` -> ``commit``: generating,
  serialising, indexing and swapping in, as the collect action does; resources per second and
  the process's peak RSS (with the Celery app imported, a worker's baseline).
* **writer alone**: the same resources, generated beforehand, through ``SnapshotWriter`` in this
  process: the store's own cost (serialising, indexing, counting, committing).
* **floor**: the same documents, serialised beforehand, written with plain redis-py pipelined
  ``HSET`` (one field per command, 5,000 commands per pipeline, hiredis), one hash per account.

All in one run on the same private Redis; writer and floor alternate per account.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from bench.framework import Context, Record, benchmark
from bench.infra import ROOT
from bench.store_data import flush, store_unavailable

NAME = "ingest"
ACCOUNTS = 4
PIPELINE = 5_000


def _per_account(per_account: int) -> tuple[float, float, float, float]:
    """Per account: generate (not timed), plain HSET (timed), SnapshotWriter (timed), then free.

    Returns (plain s, writer s, generation s, mean document bytes); the two sides alternate per
    account, so load drifting on a shared machine hits both alike.
    """
    from resoto_tasks.redis_conn import client
    from resoto_tasks.store import ResourceStore
    from resoto_tasks.store.resources import serialize
    from worker.providers.example import ExampleProvider, ExampleSettings

    r = client()
    store = ResourceStore()
    provider = ExampleProvider(ExampleSettings(accounts=ACCOUNTS, resources_per_account=per_account))
    plain_s = writer_s = generate_s = 0.0
    doc_bytes = 0
    for account in provider.accounts():
        tg = time.perf_counter()
        items = list(provider.collect(account))
        generate_s += time.perf_counter() - tg
        pairs = [(res.id, serialize(res)) for res in items]
        doc_bytes += sum(len(d) for _, d in pairs)
        t0 = time.perf_counter()
        pipe = r.pipeline(transaction=False)
        for i, (rid, doc) in enumerate(pairs, 1):
            pipe.hset(f"plain:{account}", rid, doc)
            if i % PIPELINE == 0:
                pipe.execute()
        pipe.execute()
        t1 = time.perf_counter()
        with store.snapshot_writer("example", account, "bench-ingest") as writer:
            writer.add_many(items)
            writer.commit()
        t2 = time.perf_counter()
        plain_s += t1 - t0
        writer_s += t2 - t1
        del items, pairs
    return plain_s, writer_s, generate_s, doc_bytes / max(1, per_account * ACCOUNTS)


def _collect(per_account: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.ingest_collector", str(ACCOUNTS), str(per_account)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


@benchmark(NAME, unavailable=store_unavailable)
def run(ctx: Context) -> list[Record]:
    """Ingest: 1,000,000 example resources over 4 accounts vs plain pipelined HSET."""
    from resoto_tasks.redis_conn import client

    r = client()
    per_account = ctx.options.store_size // ACCOUNTS
    total = per_account * ACCOUNTS
    params: dict[str, Any] = {"accounts": ACCOUNTS, "resources_per_account": per_account, "pipeline": PIPELINE}

    flush(r)
    collected = _collect(per_account)
    flush(r)
    plain_s, writer_s, generate_s, doc_bytes = _per_account(per_account)
    flush(r)

    plain_rate = total / plain_s
    collect_rate = collected["resources"] / collected["seconds"]
    writer_rate = total / writer_s
    params["mean_document_bytes"] = round(doc_bytes)
    ctx.extra["collector"] = collected
    ctx.notes.append(
        f"one Python process generates the example cloud at {total / generate_s:,.0f} resources/s: a collect "
        "cannot be faster than that, whatever the store does (compare 'SnapshotWriter alone' for the store)"
    )
    return [
        Record(NAME, "collect (generate + write + commit), 4 accounts", round(collect_rate), "resources/s",
               round(plain_rate), "plain pipelined HSET of the same documents", None, params,
               "ratio >= 0.7", collect_rate >= 0.7 * plain_rate),
        Record(NAME, "SnapshotWriter alone (documents generated beforehand)", round(writer_rate), "resources/s",
               round(plain_rate), "plain pipelined HSET of the same documents", None, params,
               "ratio >= 0.7", writer_rate >= 0.7 * plain_rate),
        Record(NAME, "ExampleProvider.collect alone (generating the resources)", round(total / generate_s),
               "resources/s", round(plain_rate), "plain pipelined HSET of the same documents", None, params),
        Record(NAME, f"collector peak RSS at {collected['resources']:,} resources", round(collected["peak_rss_mb"], 1),
               "MB", round(collected["rss_before_mb"], 1), "the same process before collecting", None, params,
               "figure < 250 MB", collected["peak_rss_mb"] < 250),
    ]  # fmt: skip
