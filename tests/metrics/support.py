"""Helpers for metrics tests: accounts of a provider of their own, expositions parsed and checked."""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from resoto_tasks import celery_app
from resoto_tasks.store import Resource, ResourceStore
from tests.support.accounts import resource

PROVIDER = "mtest"
CTIME = datetime.now(UTC) - timedelta(days=30)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def res(account: str, rid: str, **fields: Any) -> Resource:
    return resource(PROVIDER, CTIME, account, rid, **fields)


def cloud(account: str, instances: int = 3, volumes: int = 2) -> list[Resource]:
    """Instances (2 cores, 8 GiB each) in us-east-1 and one in eu-central-1, volumes of 10 GiB,
    one expired instance, one protected volume, one bucket without attributes."""
    found = [
        res(account, f"i-{n}", region="us-east-1" if n else "eu-central-1",
            attrs={"instance_cores": 2, "instance_memory_gb": 8, "hourly_cost": 0.25})
        for n in range(instances)
    ]  # fmt: skip
    found += [
        res(account, f"v-{n}", kind="volume", attrs={"volume_size_gb": 10}, protected=n == 0) for n in range(volumes)
    ]
    found.append(res(account, "i-old", tags={"expiration": "1d"}, attrs={"instance_cores": 4}))
    found.append(res(account, "b-1", kind="bucket"))
    return found


def commit(store: ResourceStore, account: str, resources: list[Resource], run_id: str = "r1") -> None:
    with store.snapshot_writer(PROVIDER, account, run_id) as writer:
        writer.add_many(resources)
        writer.commit()


def samples(text: str, *, accounts: set[str] | None = None) -> Samples:
    """(sample name, sorted labels) -> value; only samples of ``accounts`` if given.

    Raises:
        AssertionError: a sample appears twice (the exposition is not valid).
    """
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            if accounts is not None and sample.labels.get("account") not in accounts:
                continue
            key = (sample.name, labels)
            assert key not in found, f"duplicated sample {key}"
            found[key] = sample.value
    return found


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


def fetch(port: int, path: str = "/metrics", timeout_s: float = 5) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout_s) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()


def promtool_check(text: str) -> None:
    """``promtool check metrics`` (Debian's prometheus package) must accept the exposition.

    Raises:
        AssertionError: promtool reports a problem, or it is missing (the test must not pass unchecked).
    """
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: apt-get install prometheus (it provides /usr/bin/promtool)"
    done = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"promtool: {done.stdout}{done.stderr}"


def worker_env() -> dict[str, str]:
    """The environment a metrics worker needs to load ``worker.metrics`` (until the Celery app
    includes it by itself)."""
    if "worker.metrics" in celery_app.WORKER_TASK_MODULES:
        return {}
    hooks = [m for m in os.environ.get("RESOTO_HOOK_MODULES", "").split(",") if m]
    return {"RESOTO_HOOK_MODULES": ",".join([*hooks, "worker.metrics"])}
