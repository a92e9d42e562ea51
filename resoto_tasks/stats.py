"""The orchestrator's own numbers, kept in Redis so every metrics worker serves the same values.

Counters only go up (``HINCRBY``/``HINCRBYFLOAT``); they are written inside the transition that
causes them where possible, so a retried transition never counts twice. Field names join label
values with ``|``; :func:`read` splits them back.

=====================  ================================  =========================================
hash                   field                             value
=====================  ================================  =========================================
``runs``               ``workflow|status``               runs finished with that status
``run_seconds``        ``workflow|sum`` / ``|count``     durations of finished runs
``step_seconds``       ``workflow|step|sum`` / ``count`` durations of finished steps
``not_started``        ``workflow|reason``               starts the overlap policy skipped/queued
``schedule_delay``     ``workflow|sum`` / ``|count``     seconds between a slot's due time and start
``last_success``       ``workflow``                      unix time of the last succeeded run
``cleanup``            ``decision|reason``               cleanup decisions (deleted, failed, skipped)
=====================  ================================  =========================================
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from resoto_tasks import keys
from resoto_tasks.redis_conn import client

SEP = "|"


def _ts(iso_text: str | None) -> float | None:
    if not iso_text:
        return None
    return datetime.fromisoformat(iso_text.replace("Z", "+00:00")).timestamp()


def field(*labels: str) -> str:
    return SEP.join(label.replace(SEP, "/") for label in labels)


def on_run_finished(pipe: Any, workflow: str, status: str, started_at: str | None, finished_at: str | None) -> None:
    """Queue the counters of a finished run on the caller's MULTI."""
    pipe.hincrby(keys.stats("runs"), field(workflow, status), 1)
    start, end = _ts(started_at), _ts(finished_at)
    if start is not None and end is not None:
        pipe.hincrbyfloat(keys.stats("run_seconds"), field(workflow, "sum"), max(0.0, end - start))
        pipe.hincrby(keys.stats("run_seconds"), field(workflow, "count"), 1)
    if status == "succeeded" and end is not None:
        pipe.hset(keys.stats("last_success"), workflow, f"{end:.3f}")


def on_step_finished(pipe: Any, workflow: str, step: str, started_at: str | None, finished_at: str | None) -> None:
    start, end = _ts(started_at), _ts(finished_at)
    if start is None or end is None:
        return
    pipe.hincrbyfloat(keys.stats("step_seconds"), field(workflow, step, "sum"), max(0.0, end - start))
    pipe.hincrby(keys.stats("step_seconds"), field(workflow, step, "count"), 1)


def on_run_started(pipe: Any, workflow: str, started_at: str | None, slot: str | None) -> None:
    """The delay between a schedule's due time and the run's start (scheduled runs only)."""
    start, due = _ts(started_at), _ts(slot)
    if start is None or due is None:
        return
    pipe.hincrbyfloat(keys.stats("schedule_delay"), field(workflow, "sum"), max(0.0, start - due))
    pipe.hincrby(keys.stats("schedule_delay"), field(workflow, "count"), 1)


def on_not_started(workflow: str, reason: str) -> None:
    client().hincrby(keys.stats("not_started"), field(workflow, reason), 1)


def on_cleanup_decision(pipe: Any, decision: str, reason: str = "", count: int = 1) -> None:
    pipe.hincrby(keys.stats("cleanup"), field(decision, reason), count)


def read(name: str) -> dict[tuple[str, ...], float]:
    """Every field of one stats hash as (labels...) -> number."""
    raw: dict[str, str] = client().hgetall(keys.stats(name))
    return {tuple(k.split(SEP)): float(v) for k, v in raw.items()}
