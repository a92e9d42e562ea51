"""The collect side of the ingest benchmark, in its own process so its peak RSS is its own.

``python -m bench.ingest_collector ACCOUNTS PER_ACCOUNT`` collects every account of the example
cloud into the store (``ExampleProvider.collect`` -> ``SnapshotWriter.add_many`` -> ``commit``,
what the collect action does per account) and prints one JSON line: seconds, resources, peak RSS.
The Celery app is composed first (``runtime.app()``), so the baseline memory is a worker's.
"""

from __future__ import annotations

import json
import resource
import sys
import time


def main(accounts: int, per_account: int) -> dict[str, float]:
    from resoto_tasks import runtime
    from resoto_tasks.store import ResourceStore
    from worker.providers.example import ExampleProvider, ExampleSettings

    runtime.app().loader.import_default_modules()  # a worker's imports, for a worker's baseline RSS
    provider = ExampleProvider(ExampleSettings(accounts=accounts, resources_per_account=per_account))
    store = ResourceStore()
    rss_before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    written = 0
    for account in provider.accounts():
        with store.snapshot_writer(provider.name, account, "bench-ingest") as writer:
            writer.add_many(provider.collect(account))
            written += writer.commit().resource_count
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "resources": written,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_mb": rss_before_mb,
    }


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]), int(sys.argv[2]))))
