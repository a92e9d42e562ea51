"""The supervisor: the periodic step function that keeps every run moving.

One :func:`tick` at an injected time (tests choose the clock) looks at every running run
(:func:`resoto_tasks.transitions.supervise`: deadlines, lost callbacks, runs left pending),
gives back the messages a dead worker held (:mod:`resoto_tasks.orphans`), starts queued runs
whose predecessor ended, and prunes history. Every run and admission write is one atomic script,
so the active sets cannot drift from the records; only a run whose record expired is dropped.

It runs in the heartbeat thread of every worker consuming the ``workflow`` queue; a Redis lock
makes it one tick per period however many workers try. It is a producer: it never sends a step
itself, it hands runs to the ``workflow`` queue.
"""

from __future__ import annotations

import logging
from collections import Counter

from resoto_tasks import keys, runs
from resoto_tasks.engine import Engine
from resoto_tasks.models import RunStatus
from resoto_tasks.orphans import OrphanRestorer
from resoto_tasks.redis_conn import client
from resoto_tasks.settings import get_settings
from resoto_tasks.timeutil import now_ms

log = logging.getLogger(__name__)


def tick_if_due(engine: Engine, force: bool = False, restorer: OrphanRestorer | None = None) -> bool:
    """Run one tick unless another process ran one within the period; True if this one ran."""
    period_ms = int(get_settings().supervisor_interval_s * 1000)
    got = client().set(keys.supervisor_lock(), "1", nx=True, px=max(100, period_ms - 50))
    if not got and not force:
        return False
    tick(engine, restorer=restorer)
    return True


def tick(engine: Engine, at_ms: int | None = None, restorer: OrphanRestorer | None = None) -> dict[str, int]:
    """One supervision pass at time ``at_ms``; returns what it did, by kind."""
    now = at_ms if at_ms is not None else now_ms()
    done: Counter[str] = Counter()
    r = client()
    if restorer is not None:
        try:
            done["restored"] += len(restorer.restore())
        except Exception:  # the broker may be away; the rest of the tick still runs
            log.exception("restoring the messages of dead workers failed")
    for run_id in sorted(r.smembers(keys.runs_active())):
        try:
            found = engine.store.load(run_id)
            if found is None or found.run.status != RunStatus.running:
                r.srem(keys.runs_active(), run_id)
                done["reconciled"] += 1
                continue
            what = engine.supervise(run_id, now, found)
            if what:
                done[what] += 1
        except Exception:  # one broken run must not stop the others being supervised
            log.exception("run=%s supervision failed", run_id)
    _reconcile_workflows(engine, done)
    done["pruned"] += runs.prune()
    report = {k: v for k, v in done.items() if v}
    if report:
        log.info("supervisor tick: %s", ", ".join(f"{k}={v}" for k, v in sorted(report.items())))
    return report


def _reconcile_workflows(engine: Engine, done: Counter[str]) -> None:
    """Start the queued runs nothing blocks any more (a process that ended their predecessor died
    before it could). Only the workflows that queued a run are looked at, not the catalogue."""
    r = client()
    for name in sorted(r.smembers(keys.workflows_with_queued())):
        if not r.exists(keys.workflow_queued(name)):
            r.srem(keys.workflows_with_queued(), name)
            continue
        if engine.promote(name):
            done["promoted"] += 1
