"""web (issue 14): the console's runs list and run detail against a history of 100,000 runs.

The question is whether a page's cost depends on the size of the history. The history is written
straight into the run store (real ``collect_and_cleanup`` records, 12 steps with answers, made by
the in-memory engine, copied under new ids and creation times), then ``resoto-tasks web`` (uvicorn,
its own process) serves it:

* **runs list**: ``GET /api/v1/runs?limit=20`` and the page ``GET /runs`` (25 rows), against the
  raw Redis reads they need: the first 21 entries of the time index (``ZREVRANGEBYSCORE``) and
  one ``MGET`` of the records.
* **run detail**: ``GET /api/v1/runs/{id}`` (record, answers, a 200-entry ledger) and the page
  ``GET /runs/{id}``, against the raw reads: the record, its progress hash and its ledger (one
  pipeline).

Figures are medians of interleaved requests (A, B, A, B). "Server time" is what the app measured
itself (its ``Server-Timing`` header: routing, reads, validation, rendering); the client's wall
time adds HTTP on loopback. Each is measured at 1,000 and at 100,000 runs: the ratio between the
two is the growth with history size.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import redis

from bench.framework import Context, Record, benchmark, median, percentile
from bench.infra import RESULTS, ROOT
from resoto_tasks import keys, runs
from resoto_tasks.memory import done, memory_engine
from resoto_tasks.models import Run, Subscription
from resoto_tasks.redis_conn import client
from resoto_tasks.workflows import builtin_workflows
from tests.support.redis_server import free_port
from worker import ledger

SIZES = (1_000, 100_000)
SAMPLES = 150
LEDGER_ENTRIES = 200
WRITE_BATCH = 2_000


def _unavailable() -> str | None:
    import importlib.util

    return None if importlib.util.find_spec("fastapi") else "the web extra is not installed"


def template_run() -> Run:
    """A finished ``collect_and_cleanup`` run with one answering subscriber per main action."""
    engine, store, tasks, _clock = memory_engine({"collect_and_cleanup": builtin_workflows()["collect_and_cleanup"]})
    for action in ("collect", "cleanup_plan", "cleanup", "generate_metrics"):
        for n in range(2 if action == "collect" else 1):
            store.subscribe(Subscription(action=action, subscriber_id=f"{action}:{n}", task="t", queue="q"))
            tasks.answers_by_subscriber[f"{action}:{n}"] = done
    run_id = engine.start("collect_and_cleanup").run_id
    assert run_id is not None
    tasks.drain(engine)
    return store.run(run_id)


def fill_history(template: Run, upto: int, have: int) -> None:
    """Write runs ``have`` .. ``upto - 1`` (one a minute, oldest first) into the store and its indexes."""
    r = client()
    base = template.created_at - timedelta(minutes=SIZES[-1])
    raw = template.model_dump_json()
    for start in range(have, upto, WRITE_BATCH):
        pipe = r.pipeline(transaction=False)
        for i in range(start, min(upto, start + WRITE_BATCH)):
            created = base + timedelta(minutes=i)
            run_id = f"{created.strftime('%Y%m%dT%H%M%S')}-{i:06x}"
            at = int(created.timestamp() * 1000)
            pipe.set(keys.run(run_id), raw.replace(template.id, run_id), ex=runs.retention_s())
            pipe.zadd(keys.runs_index(), {run_id: at})
            pipe.zadd(keys.runs_of_workflow(template.workflow), {run_id: at})
        pipe.execute()


def write_ledger(run_id: str) -> None:
    entries = [
        ledger.Entry(
            provider="example",
            account=f"example-{i % 2}",
            id=f"i-{i:08x}",
            kind="instance" if i % 3 else "volume",
            name=f"instance-{i}",
            decision=ledger.Decision.deleted if i % 10 else ledger.Decision.skipped,
            reason="" if i % 10 else "protected",
            mark_reason="expired",
        )
        for i in range(LEDGER_ENTRIES)
    ]
    ledger.record(run_id, entries)


def newest_id() -> str:
    found: list[str] = client().zrevrange(keys.runs_index(), 0, 0)
    return found[0]


def raw_list(r: redis.Redis) -> None:
    ids = r.zrevrangebyscore(keys.runs_index(), "+inf", "-inf", start=0, num=21)
    r.mget([keys.run(i) for i in ids[:20]])


def raw_detail(r: redis.Redis, run_id: str) -> None:
    pipe = r.pipeline(transaction=False)
    pipe.get(keys.run(run_id))
    pipe.hgetall(keys.run_progress(run_id))
    pipe.hgetall(keys.run_ledger(run_id))
    pipe.execute()


class Server:
    """``resoto-tasks web`` on a free port, against the benchmark's Redis."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = RESULTS / "logs" / "web.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "RESOTO_WEB_TOKEN": "", "RESOTO_WEB_BASIC_AUTH": ""}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(Path(sys.executable).parent / "resoto-tasks"), "web", "--port", str(self.port)],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"resoto-tasks web did not answer: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)


def _server_ms(response: httpx.Response) -> float:
    timing = response.headers["Server-Timing"]
    return float(timing.split("dur=")[1])


def measure(http: httpx.Client, r: redis.Redis, path: str, raw: Any) -> dict[str, list[float]]:
    """Interleaved: the HTTP call (client wall and server time), then the raw reads."""
    found: dict[str, list[float]] = {"wall": [], "server": [], "raw": []}
    for _ in range(5):  # warm-up
        http.get(path).raise_for_status()
        raw(r)
    for _ in range(SAMPLES):
        t0 = time.perf_counter()
        response = http.get(path)
        found["wall"].append((time.perf_counter() - t0) * 1000)
        response.raise_for_status()
        found["server"].append(_server_ms(response))
        t0 = time.perf_counter()
        raw(r)
        found["raw"].append((time.perf_counter() - t0) * 1000)
    return found


@benchmark("web", unavailable=_unavailable)
def run(ctx: Context) -> list[Record]:
    """The console's runs list and run detail against 1,000 and 100,000 runs of history."""
    template = template_run()
    r = client()
    server = Server().start()
    calls = {
        "runs list API (20)": ("/api/v1/runs?limit=20", raw_list),
        "runs list page (25)": ("/runs", raw_list),
        "run detail API (+200 ledger)": (None, raw_detail),
        "run detail page": (None, raw_detail),
    }
    medians: dict[tuple[str, int], float] = {}
    records: list[Record] = []
    have = 0
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for size in SIZES:
                fill_history(template, size, have)
                have = size
                detail_id = newest_id()
                write_ledger(detail_id)
                for name, (path, raw) in calls.items():
                    url = path or (f"/api/v1/runs/{detail_id}" if "API" in name else f"/runs/{detail_id}")

                    def reads(client_: redis.Redis, raw_: Any = raw, run_id: str = detail_id) -> None:
                        raw_(client_) if raw_ is raw_list else raw_(client_, run_id)

                    found = measure(http, r, url, reads)
                    server_ms, wall_ms, raw_ms = median(found["server"]), median(found["wall"]), median(found["raw"])
                    medians[(name, size)] = server_ms
                    limit = 50.0 if "list" in name else 20.0
                    records.append(
                        Record(
                            benchmark="web",
                            metric=f"{name}, {size:,} runs: server time, median",
                            figure=round(server_ms, 2),
                            unit="ms",
                            baseline=round(raw_ms, 3),
                            baseline_name="the raw Redis reads it needs",
                            parameters={
                                "history": size,
                                "samples": SAMPLES,
                                "path": url,
                                "server_p90_ms": round(percentile(found["server"], 90), 2),
                                "client_wall_median_ms": round(wall_ms, 2),
                                "client_wall_p90_ms": round(percentile(found["wall"], 90), 2),
                                "raw_p90_ms": round(percentile(found["raw"], 90), 3),
                            },
                            target=f"median < {limit:g} ms",
                            target_met=server_ms < limit,
                        )
                    )
    finally:
        server.stop()
    for name in calls:
        small, large = medians[(name, SIZES[0])], medians[(name, SIZES[-1])]
        records.append(
            Record(
                benchmark="web",
                metric=f"{name}: growth from {SIZES[0]:,} to {SIZES[-1]:,} runs (server time)",
                figure=round(large, 2),
                unit="ms",
                baseline=round(small, 2),
                baseline_name=f"the same at {SIZES[0]:,} runs",
                target="ratio <= 1.5 (does not grow with the history)",
                target_met=large / small <= 1.5,
            )
        )
    ctx.notes.append(
        f"history written directly: {SIZES[-1]:,} copies of a finished collect_and_cleanup record "
        f"({len(template.model_dump_json())} bytes, 12 steps, 5 answers)"
    )
    return records
