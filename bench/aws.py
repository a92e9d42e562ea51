"""aws: collecting an AWS estate (moto server) through the workflow, against a plain boto3 listing.

The estate: ``RESOTO_BENCH_AWS_INSTANCES`` instances (2,000) with a data volume each, spread over
2 accounts x 2 regions, launched 20 per ``run_instances`` call so ``describe_instances`` pages by
reservation, one launch in ten with an expiry tag (so the provider reads their termination
protection, one call per instance), plus the default VPCs moto makes. Seeding takes minutes.

* **resoto side:** the ``collect`` workflow through the real CLI (``resoto-tasks run collect
  --wait --json``) with one prefork collect worker (``-c 2``, so the two accounts go in parallel);
  the time is the collect step's own (started_at -> finished_at in the run record), which covers
  the provider (assume role, every kind, termination protection per instance), the store writes
  and the snapshot commit. Peak RSS is the largest of the worker's processes, sampled every 0.1 s.
* **baseline:** plain boto3, in this process, the same accounts in parallel and each account's
  regions in parallel: every paginator of the same kinds, items counted, nothing kept.

Interleaved A, B, A, B; the figure is the median throughput (resources/s) of each side.
"""

from __future__ import annotations

import importlib.util
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from bench.framework import Context, Record, benchmark, median
from bench.infra import Worker

ACCOUNTS = ("111111111111", "222222222222")
REGIONS = ("us-east-1", "eu-west-1")
PER_CALL = 20


def _unavailable() -> str | None:
    for module in ("boto3", "moto"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install -e '.[dev,aws]')"
    return None


def _seed(endpoint: str, instances: int) -> None:
    from worker.providers.aws import estate

    cells = [(a, r) for a in ACCOUNTS for r in REGIONS]
    per_cell = max(1, instances // len(cells))

    def seed_cell(cell: tuple[str, str]) -> None:
        ec2 = estate.clients(endpoint, *cell)["ec2"]
        for start in range(0, per_cell, PER_CALL):
            count = min(PER_CALL, per_cell - start)
            # one launch in ten carries an expiry tag (a month away): their termination protection is read
            tags = [{"ResourceType": "instance", "Tags": [{"Key": "expiration", "Value": "30d"}]}]
            launched = ec2.run_instances(
                ImageId=estate.AMI, MinCount=count, MaxCount=count, InstanceType="m5.large",
                TagSpecifications=tags if (start // PER_CALL) % 10 == 0 else [],
            )  # fmt: skip
            for instance in launched["Instances"]:
                zone = instance["Placement"]["AvailabilityZone"]
                volume = ec2.create_volume(AvailabilityZone=zone, Size=50)["VolumeId"]
                ec2.attach_volume(VolumeId=volume, InstanceId=instance["InstanceId"], Device="/dev/sdf")

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(seed_cell, cells))


def plain_listing(endpoint: str) -> int:
    """Every kind the provider collects, listed with boto3's paginators; the number of items."""
    from worker.providers.aws import estate

    def account(acc: str) -> int:
        def region(reg: str) -> int:
            c = estate.clients(endpoint, acc, reg)
            ec2, elb = c["ec2"], c["elbv2"]
            n = 0
            own = [{"Name": "owner-id", "Values": [acc]}]
            for op, key, kwargs in (
                ("describe_instances", "Reservations", {}),
                ("describe_volumes", "Volumes", {}),
                ("describe_snapshots", "Snapshots", {"OwnerIds": ["self"], "Filters": own}),
                ("describe_vpcs", "Vpcs", {}),
                ("describe_subnets", "Subnets", {}),
                ("describe_security_groups", "SecurityGroups", {}),
                ("describe_internet_gateways", "InternetGateways", {}),
            ):
                for page in ec2.get_paginator(op).paginate(**kwargs):
                    items = page.get(key, ())
                    n += sum(len(r["Instances"]) for r in items) if key == "Reservations" else len(items)
            n += len(ec2.describe_addresses().get("Addresses", ()))
            for page in elb.get_paginator("describe_load_balancers").paginate():
                n += len(page.get("LoadBalancers", ()))
            return n

        with ThreadPoolExecutor(max_workers=4) as pool:
            total = sum(pool.map(region, REGIONS))
        s3 = estate.clients(endpoint, acc, REGIONS[0])["s3"]
        for page in s3.get_paginator("list_buckets").paginate():
            total += len(page.get("Buckets", ()))
        return total

    with ThreadPoolExecutor(max_workers=len(ACCOUNTS)) as pool:
        return sum(pool.map(account, ACCOUNTS))


def _peak_rss_mb(worker: Worker, stop: threading.Event, found: list[float]) -> None:
    import psutil

    assert worker.proc is not None
    root = psutil.Process(worker.proc.pid)
    peak = 0.0
    while not stop.wait(0.1):
        try:
            for proc in [root, *root.children(recursive=True)]:
                peak = max(peak, proc.memory_info().rss / 2**20)
        except psutil.Error:
            continue
    found.append(peak)


def _collect_once(worker: Worker) -> tuple[float, int, float]:
    """One ``collect`` run: (collect step seconds, resources, peak worker RSS MB)."""
    from tests.support.cli import resoto_process as resoto

    stop, peaks = threading.Event(), []  # type: ignore[var-annotated]
    sampler = threading.Thread(target=_peak_rss_mb, args=(worker, stop, peaks))
    sampler.start()
    try:
        done = resoto("run", "collect", "--wait", "--json", timeout_s=1800)
    finally:
        stop.set()
        sampler.join()
    record = json.loads(done.stdout)
    assert record["status"] == "succeeded", done.stdout[-2000:] + done.stderr[-2000:]
    step = next(s for s in record["steps"] if s["action"] == "collect")
    seconds = (datetime.fromisoformat(step["finished_at"]) - datetime.fromisoformat(step["started_at"])).total_seconds()
    resources = sum(int((o.get("result") or {}).get("resources", 0)) for o in step["outcomes"].values())
    return seconds, resources, peaks[0] if peaks else 0.0


@benchmark("aws", _unavailable)
def run(ctx: Context) -> list[Record]:
    """Collect of an AWS estate (moto) through the workflow vs a plain boto3 paginated listing."""
    from tests.aws.support import MotoServer, worker_env

    instances = int(os.environ.get("RESOTO_BENCH_AWS_INSTANCES", "2000"))
    rounds = max(1, min(ctx.options.runs, 3))
    moto = MotoServer().start()
    try:
        os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"})
        t0 = time.monotonic()
        _seed(moto.url, instances)
        ctx.notes.append(f"seeded {instances} instances with a data volume each in {time.monotonic() - t0:.0f} s")
        env = worker_env(moto.url, ACCOUNTS, regions=REGIONS)
        env["RESOTO_COLLECT_PROVIDERS"] = "aws"
        os.environ.update(env)  # the CLI inherits it; the worker gets it below
        ours: list[float] = []
        plain: list[float] = []
        peaks: list[float] = []
        counts: dict[str, int] = {}
        with ctx.worker(queues="collect,workflow", env=env) as worker:
            for _ in range(rounds):
                seconds, resources, peak = _collect_once(worker)
                ours.append(resources / seconds)
                peaks.append(peak)
                counts["resoto"] = resources
                t1 = time.perf_counter()
                listed = plain_listing(moto.url)
                plain.append(listed / (time.perf_counter() - t1))
                counts["plain"] = listed
        if counts["resoto"] != counts["plain"]:
            ctx.notes.append(f"resource counts differ: resoto {counts['resoto']}, plain listing {counts['plain']}")
        figure, baseline = median(ours), median(plain)
        params: dict[str, Any] = {
            "instances": instances, "accounts": len(ACCOUNTS), "regions": len(REGIONS), "rounds": rounds,
            "resources": counts["resoto"], "resoto_per_s": [round(v) for v in ours],
            "plain_per_s": [round(v) for v in plain],
        }  # fmt: skip
        ratio = figure / baseline
        return [
            Record(
                benchmark="aws", metric=f"collect of {counts['resoto']:,} AWS resources (moto), median",
                figure=round(figure), unit="resources/s", baseline=round(baseline),
                baseline_name="plain boto3 paginated listing", parameters=params, target="ratio >= 0.8",
                target_met=ratio >= 0.8,
            ),
            Record(
                benchmark="aws", metric="peak collect worker RSS (largest process)", figure=round(max(peaks), 1),
                unit="MB", parameters={"per_round": [round(p, 1) for p in peaks]},
            ),
        ]  # fmt: skip
    finally:
        moto.stop()
