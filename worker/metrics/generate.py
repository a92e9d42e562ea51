"""Compute every metric definition from the store's per-account stats and swap the result live.

Why it is fast: the store keeps, per account, counts and numeric attribute sums by (kind, region)
up to date at collect time (and on every delete), plus O(1)/O(log n) lengths for protected, marked
and expired. A run reads those small hashes (one pipelined round trip per account) and adds them
up in Python; its cost grows with accounts x kinds x regions, not with resources.

A definition that fails is left out of the new live set (its samples are absent, not kept from the
last run): a stale value served beside fresh ones would look current to Prometheus, while an
absent series is visible (``absent()``, and ``resoto_metrics_definition_failed{metric}`` names it).
The others are published fresh, and the run reports the failure (the step's outcome is an error).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Final

import redis

from resoto_tasks import redis_conn
from resoto_tasks.errors import ResotoError
from resoto_tasks.store import AccountStats, ResourceStore
from worker.metrics import live
from worker.metrics.definitions import Aggregate, Label, MetricDefinition, load_definitions
from worker.metrics.live import Family, Generation

log = logging.getLogger(__name__)

FILE_ERROR_KEY = "(metrics file)"


class MetricsGenerationFailed(ResotoError):
    """Some definitions (or the user's file) failed; the rest were published."""

    def __init__(self, errors: dict[str, str]) -> None:
        lines = "; ".join(f"{name}: {problem}" for name, problem in sorted(errors.items()))
        super().__init__(f"{len(errors)} metric definition(s) failed, the others were published: {lines}")
        self.errors = errors


@dataclass(frozen=True)
class Report:
    """What one run published."""

    generation: Generation
    families: int
    samples: int

    def summary(self) -> dict[str, object]:
        return {
            "families": self.families,
            "samples": self.samples,
            "duration_s": round(self.generation.duration_s, 4),
            "errors": self.generation.errors,
        }


_POSITION: Final = {Label.provider: 0, Label.account: 1, Label.region: 2, Label.kind: 3}
"""Where each label's value sits in the row ``(provider, account, region, kind)``."""


def _picker(labels: tuple[Label, ...]) -> Callable[[tuple[str, str, str, str]], tuple[str, ...]]:
    """A function taking a row to the label values of ``labels`` (a tuple, also for 0 or 1 label)."""
    positions = [_POSITION[label] for label in labels]
    if len(positions) > 1:
        return itemgetter(*positions)
    if positions:
        only = positions[0]
        return lambda row: (row[only],)
    return lambda row: ()


@dataclass(frozen=True)
class Rows:
    """The stats of every account flattened once per run, so each definition loops over tuples."""

    accounts: list[tuple[tuple[str, str, str, str], AccountStats]]
    """``((provider, account, "", ""), stats)`` per account."""
    groups: list[tuple[tuple[str, str, str, str], str, int, dict[str, float]]]
    """``((provider, account, region, kind), kind, count, sums)`` per (account, kind, region)."""

    @classmethod
    def of(cls, stats: list[AccountStats]) -> Rows:
        return cls(
            accounts=[((a.provider, a.account, "", ""), a) for a in stats],
            groups=[
                ((a.provider, a.account, g.region, g.kind), g.kind, g.count, g.sums) for a in stats for g in a.groups
            ],
        )


def compute(definition: MetricDefinition, rows: Rows) -> Family:
    """One definition over every account's stats (pure: no I/O).

    This loop is the whole cost of a run (accounts x kinds x regions per definition), so it stays
    flat: tuples prepared once per run and an ``itemgetter`` for the labels.
    """
    samples: dict[tuple[str, ...], float] = {}
    pick = _picker(definition.group_by)
    kinds = frozenset(definition.kinds)
    aggregate = definition.aggregate
    if aggregate.per_account:
        for row, account in rows.accounts:
            key = pick(row)
            samples[key] = samples.get(key, 0.0) + getattr(account, aggregate.value)
    elif aggregate == Aggregate.count_:
        for row, kind, count, _ in rows.groups:
            if not kinds or kind in kinds:
                key = pick(row)
                samples[key] = samples.get(key, 0.0) + count
    else:
        attribute = definition.attribute or ""
        for row, kind, _, sums in rows.groups:
            if (not kinds or kind in kinds) and attribute in sums:  # absent attribute: no sample, not 0
                key = pick(row)
                samples[key] = samples.get(key, 0.0) + sums[attribute]
    scale = definition.scale
    return Family(
        name=definition.exposed_name,
        help=definition.help,
        type=definition.type,
        labels=tuple(label.value for label in definition.group_by),
        samples={key: float(total) * scale for key, total in samples.items()},
    )


def generate(
    definitions: list[MetricDefinition] | None = None,
    *,
    run_id: str | None = None,
    store: ResourceStore | None = None,
    r: redis.Redis | None = None,
    now: datetime | None = None,
) -> Report:
    """Compute every definition into staging and swap it live; failing definitions are absent.

    ``definitions`` default to the built-ins merged with ``RESOTO_METRICS_FILE``; a broken file
    counts as a failure (reported under ``FILE_ERROR_KEY``) while the built-ins are published.
    Does not raise for failed definitions: see ``Report.generation.errors``.

    Raises:
        redis.RedisError: the stats could not be read or the swap failed; the previous live set stays.
    """
    started = time.perf_counter()
    client = r if r is not None else redis_conn.client()
    errors: dict[str, str] = {}
    if definitions is None:
        definitions, problems = load_definitions()
        if problems:
            errors[FILE_ERROR_KEY] = " | ".join(str(p) for p in problems)
    rows = Rows.of((store or ResourceStore(client)).all_stats(now))
    families: list[Family] = []
    for definition in definitions:
        try:
            families.append(compute(definition, rows))
        except Exception as exc:  # one bad definition must not cost the others their fresh values
            errors[definition.name] = f"{type(exc).__name__}: {exc}"[:500]
            log.warning("metric %s failed, left out of this run: %s", definition.exposed_name, errors[definition.name])
    generation = Generation(
        run_id=run_id or f"manual-{uuid.uuid4().hex[:12]}",
        generated_at=time.time(),
        duration_s=time.perf_counter() - started,
        errors=errors,
    )
    served = live.publish(client, families, generation)
    log.info(
        "run=%s metrics generated: %d families, %d samples, %d failed in %.3fs",
        generation.run_id,
        len(served),
        sum(len(f.samples) for f in served),
        len(errors),
        generation.duration_s,
    )
    return Report(generation=generation, families=len(served), samples=sum(len(f.samples) for f in served))
