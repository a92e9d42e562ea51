"""The live metric set in Redis: written to staging, swapped in with one MULTI, read by every scrape.

Why Redis and not process memory (as Resoto's ``staging``/``live`` dicts were): every metrics worker
serves the same values, and a restarted one serves the last values at once, before the next run.

Why a staging hash renamed over the live one: ``RENAME`` inside the swap's ``MULTI`` replaces the
whole set at once, so a scrape reads the old set or the new one (one ``HGETALL``), never half a
run, and a definition that is absent from the new set (it failed) leaves no sample behind: the old
set, duplicates included, is gone with the rename. The generation's metadata (``_meta``: run,
time, duration, which definitions failed) lives in the same hash, so it swaps with the values.

Counters are running totals kept in a hash of their own; the swap adds this run's values in the
same ``MULTI`` (``WATCH``\\ ed, so two swaps never interleave) and remembers the run, so a
``generate_metrics`` redelivered for a run it already counted does not count it twice.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import pydantic_core
import redis

from worker.metrics import keys
from worker.metrics.definitions import MetricType

SWAP_ATTEMPTS: Final = 10


@dataclass(frozen=True)
class Family:
    """One metric's samples: label values (in ``labels`` order) -> value."""

    name: str
    """The exposed name (``resoto_...``; counters end with ``_total``)."""
    help: str
    type: MetricType
    labels: tuple[str, ...]
    samples: Mapping[tuple[str, ...], float]

    def to_json(self) -> str:
        """Samples sorted once here rather than on every scrape; pydantic-core's encoder because a
        family of 20,000 samples takes ~40 ms with ``json`` and a few with it."""
        doc = {
            "name": self.name,
            "help": self.help,
            "type": self.type.value,
            "labels": self.labels,
            "samples": [(*values, value) for values, value in sorted(self.samples.items())],
        }
        return pydantic_core.to_json(doc).decode()

    @classmethod
    def from_json(cls, text: str) -> Family:
        doc = pydantic_core.from_json(text)
        width = len(doc["labels"])
        return cls(
            name=doc["name"],
            help=doc["help"],
            type=MetricType(doc["type"]),
            labels=tuple(doc["labels"]),
            samples={tuple(row[:width]): float(row[width]) for row in doc["samples"]},
        )


@dataclass(frozen=True)
class Generation:
    """What produced the live set: served as metrics and returned by ``generate_metrics``."""

    run_id: str
    generated_at: float
    """Unix time of the swap."""
    duration_s: float
    errors: dict[str, str] = field(default_factory=dict)
    """Definition name (or the metrics file) -> why it has no samples in this set."""

    def to_json(self) -> str:
        return json.dumps(
            {
                "run_id": self.run_id,
                "generated_at": self.generated_at,
                "duration_s": self.duration_s,
                "errors": self.errors,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> Generation:
        doc = json.loads(text)
        return cls(
            run_id=doc["run_id"],
            generated_at=float(doc["generated_at"]),
            duration_s=float(doc["duration_s"]),
            errors=dict(doc.get("errors") or {}),
        )


def _total_field(name: str, labels: tuple[str, ...], values: tuple[str, ...]) -> str:
    return f"{name}|{json.dumps(dict(zip(labels, values, strict=True)), sort_keys=True, separators=(',', ':'))}"


def _totals_of(family: Family, totals: Mapping[str, str]) -> dict[tuple[str, ...], float]:
    """The running totals of one counter with its current labels (other label sets are ignored)."""
    prefix = f"{family.name}|"
    found: dict[tuple[str, ...], float] = {}
    for name, value in totals.items():
        if not name.startswith(prefix):
            continue
        labels = json.loads(name[len(prefix) :])
        if sorted(labels) == sorted(family.labels):
            found[tuple(labels[label] for label in family.labels)] = float(value)
    return found


def _accumulate(family: Family, totals: Mapping[str, str], add: bool) -> tuple[Family, dict[str, str]]:
    """The counter as served (running totals) and the totals fields to write."""
    current = _totals_of(family, totals)
    if add:
        for values, value in family.samples.items():
            current[values] = current.get(values, 0.0) + value
    updates = {_total_field(family.name, family.labels, values): repr(value) for values, value in current.items()}
    served = Family(family.name, family.help, family.type, family.labels, current)
    return served, updates


def publish(r: redis.Redis, families: list[Family], generation: Generation) -> list[Family]:
    """Make ``families`` (and ``generation``) the live set in one step; returns what is now served.

    Gauges are served as given; counters as running totals, to which this run's values are added
    unless ``generation.run_id`` was the last run added (a redelivered action).

    Raises:
        redis.RedisError: Redis failed; the previous live set stays (staging expires by itself).
        redis.WatchError: the totals changed under every attempt (another swap kept racing).
    """
    stage = keys.stage(uuid.uuid4().hex[:16])
    gauges = [f for f in families if f.type != MetricType.counter]
    counters = [f for f in families if f.type == MetricType.counter]
    pipe = r.pipeline(transaction=False)
    pipe.hset(stage, mapping={keys.META_FIELD: generation.to_json(), **{f.name: f.to_json() for f in gauges}})
    pipe.expire(stage, keys.STAGE_TTL_S)
    pipe.execute()
    try:
        served = _swap(r, stage, counters, generation.run_id)
    except BaseException:
        r.unlink(stage)
        raise
    return gauges + served


def _swap(r: redis.Redis, stage: str, counters: list[Family], run_id: str) -> list[Family]:
    """Add the counters to their totals, write them to staging and rename staging over live, at once."""
    for attempt in range(SWAP_ATTEMPTS):
        with r.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(keys.totals())
                totals: dict[str, str] = pipe.hgetall(keys.totals()) if counters else {}
                add = totals.get(keys.TOTALS_RUN_FIELD) != run_id
                served: list[Family] = []
                updates: dict[str, str] = {}
                for family in counters:
                    shown, fields = _accumulate(family, totals, add)
                    served.append(shown)
                    updates.update(fields)
                pipe.multi()
                if counters:
                    pipe.hset(stage, mapping={f.name: f.to_json() for f in served})
                    pipe.hset(keys.totals(), mapping={**updates, keys.TOTALS_RUN_FIELD: run_id})
                pipe.unlink(keys.live())  # frees the old set off Redis' main thread
                pipe.rename(stage, keys.live())
                pipe.persist(keys.live())
                pipe.execute()
                return served
            except redis.WatchError:
                if attempt == SWAP_ATTEMPTS - 1:
                    raise
    raise AssertionError("unreachable")  # pragma: no cover


def read(r: redis.Redis) -> tuple[list[Family], Generation | None, str | None]:
    """The live set as one consistent read (``HGETALL`` of a hash with one field per metric),
    with the raw ``_meta`` text, which identifies the set (see :func:`read_stamp`)."""
    raw: dict[str, Any] = r.hgetall(keys.live())
    meta = raw.pop(keys.META_FIELD, None)
    families = [Family.from_json(text) for _, text in sorted(raw.items())]
    return families, None if meta is None else Generation.from_json(meta), meta


def read_stamp(r: redis.Redis) -> str | None:
    """The live set's ``_meta`` text alone: it changes with every swap, so a reader that kept the
    set read under the same stamp can serve that instead of reading megabytes again."""
    stamp: str | None = r.hget(keys.live(), keys.META_FIELD)
    return stamp
