"""The orchestrator's own metrics, computed at scrape time from what the core keeps in Redis.

Sources: :mod:`resoto_tasks.stats` (counters written inside the transitions that cause them, so
they only go up), the store's snapshot metadata (one small hash per account) and the live
subscriptions. Nothing here is cached: every metrics worker serves the same numbers, fresh.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily

from resoto_tasks import stats, subscribers
from resoto_tasks.store import ResourceStore
from worker.metrics import names


def _summary(name: str, help_: str, labels: list[str], raw: dict[tuple[str, ...], float]) -> SummaryMetricFamily:
    """A summary (sum and count) from a stats hash whose fields end with ``sum``/``count``."""
    family = SummaryMetricFamily(name, help_, labels=labels)
    groups: dict[tuple[str, ...], dict[str, float]] = {}
    for fields, value in raw.items():
        if len(fields) == len(labels) + 1:
            groups.setdefault(fields[:-1], {})[fields[-1]] = value
    for values, parts in sorted(groups.items()):
        family.add_metric(list(values), count_value=int(parts.get("count", 0)), sum_value=parts.get("sum", 0.0))
    return family


def _counter(name: str, help_: str, labels: list[str], raw: dict[tuple[str, ...], float]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, help_, labels=labels)
    for values, value in sorted(raw.items()):
        if len(values) == len(labels):
            family.add_metric(list(values), value)
    return family


def run_families() -> Iterator[Metric]:
    """Runs, durations, schedule delay, overlap decisions, last success, cleanup decisions."""
    yield _counter(names.RUNS_TOTAL, "Finished workflow runs by outcome.", ["workflow", "status"], stats.read("runs"))
    yield _summary(names.RUN_DURATION, "Duration of finished runs.", ["workflow"], stats.read("run_seconds"))
    yield _summary(names.STEP_DURATION, "Duration of finished steps.", ["workflow", "step"], stats.read("step_seconds"))
    yield _summary(
        names.SCHEDULE_DELAY,
        "Delay between a schedule slot's due time and the start of its run.",
        ["workflow"],
        stats.read("schedule_delay"),
    )
    yield _counter(
        names.RUNS_NOT_STARTED,
        "Starts the overlap policy skipped or queued behind a running run.",
        ["workflow", "reason"],
        stats.read("not_started"),
    )
    last = GaugeMetricFamily(names.LAST_SUCCESS, "Finish time of the last succeeded run.", labels=["workflow"])
    for (workflow, *_), value in sorted(stats.read("last_success").items()):
        last.add_metric([workflow], value)
    yield last
    yield _counter(
        names.CLEANUP_RESOURCES,
        "Cleanup decisions on resources (deleted, failed, skipped) with their reason.",
        ["decision", "reason"],
        stats.read("cleanup"),
    )


def store_families(store: ResourceStore) -> Iterator[Metric]:
    """Per account: resources the last successful collect stored, its duration and time."""
    labels = ["provider", "account"]
    collected = GaugeMetricFamily(
        names.RESOURCES_COLLECTED, "Resources stored by the last successful collect of an account.", labels=labels
    )
    duration = GaugeMetricFamily(
        names.COLLECT_DURATION, "Duration of the last successful collect of an account.", labels=labels
    )
    when = GaugeMetricFamily(names.LAST_COLLECT, "Time of the last successful collect of an account.", labels=labels)
    for snapshot in store.snapshots():
        values = [snapshot.provider, snapshot.account]
        collected.add_metric(values, snapshot.resource_count)
        duration.add_metric(values, snapshot.duration_s)
        when.add_metric(values, snapshot.collected_at.timestamp())
    yield from (collected, duration, when)


def subscriber_families() -> Iterator[Metric]:
    """Live subscribers per action (held by at least one worker's heartbeat)."""
    family = GaugeMetricFamily(names.SUBSCRIBERS, "Live subscribers per action.", labels=["action"])
    for action, count in sorted(Counter(s.action for s in subscribers.live()).items()):
        family.add_metric([action], count)
    yield family


def families(store: ResourceStore) -> Iterator[Metric]:
    """Every orchestrator family.

    Raises:
        redis.RedisError: Redis failed (the scrape fails: Prometheus records ``up == 0``).
    """
    yield from run_families()
    yield from store_families(store)
    yield from subscriber_families()
