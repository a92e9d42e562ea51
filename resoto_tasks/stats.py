"""The orchestrator's own numbers, kept in Redis so every metrics worker serves the same values.

Counters only go up (``HINCRBYFLOAT``); the engine's are typed writes of the transition that
causes them (:class:`resoto_tasks.transitions.Count`), applied with it atomically, so a retried
transition never counts twice. Field names join label
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

from typing import Any

from resoto_tasks import keys
from resoto_tasks.redis_conn import client

SEP = "|"


def field(*labels: str) -> str:
    return SEP.join(label.replace(SEP, "/") for label in labels)


def on_cleanup_decision(pipe: Any, decision: str, reason: str = "", count: int = 1) -> None:
    pipe.hincrby(keys.stats("cleanup"), field(decision, reason), count)


def read(name: str) -> dict[tuple[str, ...], float]:
    """Every field of one stats hash as (labels...) -> number."""
    raw: dict[str, str] = client().hgetall(keys.stats(name))
    return {tuple(k.split(SEP)): float(v) for k, v in raw.items()}
