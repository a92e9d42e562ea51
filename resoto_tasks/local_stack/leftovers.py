"""Runs an earlier ``up`` left unfinished on the Redis it started: cancelled, with the reason.

When ``up`` is killed (SIGKILL, a closed pipe, a crash) its run stays ``running`` in the Redis
data it keeps in the data directory, and with ``on_surpass: wait`` every later run of that
workflow queues behind it. Beat's supervisor would time it out at its step deadline (an hour
for a collect), but ``up --once`` starts no beat. The workers that ran it died with that ``up``
(the data directory is locked to one ``up`` at a time, and this one's workers are not started
yet), so ``up`` cancels such runs before it starts anything. A worker you started yourself
against this Redis from another terminal would lose its run too; stop it first. Runs on a Redis
``up`` did not start (``RESOTO_REDIS_URL`` answered) are left alone: other workers may own them.
"""

from __future__ import annotations

from resoto_tasks import keys, runtime, workflows
from resoto_tasks.errors import UnknownRun
from resoto_tasks.redis_conn import client

REASON = "left unfinished by an earlier resoto-tasks up that stopped before it ended"


def cancel_leftover_runs() -> list[str]:
    """Cancel every queued, then every running run; returns their ids in that order."""
    r = client()
    queued = [r.get(keys.workflow_queued(name)) for name in sorted(workflows.catalogue.all())]
    running = sorted(r.smembers(keys.runs_active()))
    cancelled: list[str] = []
    engine = runtime.engine()
    for run_id in [q for q in queued if q] + running:  # queued first: cancelling would promote them
        try:
            if engine.cancel(run_id, REASON) is not None:
                cancelled.append(run_id)
        except UnknownRun:  # its record expired: nothing left to cancel
            continue
    return cancelled
