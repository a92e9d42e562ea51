"""The documents the front ends show: one model and one function each, for the CLI and the HTTP API.

``resoto-tasks runs show --json`` and ``GET /api/v1/runs/{id}`` print the same :class:`RunDocument`,
built by the same :func:`run_document`; so do the listings of workflows, subscribers, schedules
and resources. A field added here appears in both, and neither can drift from the other.

A front end, not the core: it reads the cleaner's ledger (``worker/``) and the schedules
(``beat/``), which the core never imports. ``beat`` is imported where it is used, so commands
that never show schedules do not load redbeat.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from resoto_tasks import keys, runs, runtime, subscribers
from resoto_tasks.models import Run, Subscription, Workflow
from resoto_tasks.redis_conn import client
from resoto_tasks.settings import get_settings
from resoto_tasks.store import AccountStats, ResourceStore, StoreCounts
from resoto_tasks.workflows import catalogue
from worker import ledger
from worker.ledger import Summary as LedgerSummary

if TYPE_CHECKING:
    from beat.control import ScheduleRow


class RunDocument(Run):
    """A run as people read it (live answers and progress merged in) with its cleanup ledger."""

    ledger: LedgerSummary | None = None


def run_document(run: Run, with_entries: bool = True) -> RunDocument:
    """``run`` (as :meth:`Engine.view` returns it) with its ledger; no second validation of the record."""
    found = ledger.read_summary(run.id, with_entries)
    return RunDocument.model_construct(**dict(run), ledger=found)


def show_run(run_id: str, with_entries: bool = True) -> RunDocument:
    """Raises: UnknownRun."""
    return run_document(runtime.engine().view(run_id), with_entries)


def list_runs(query: runs.RunQuery) -> runs.RunPage:
    """Runs newest first, one page (see :func:`resoto_tasks.runs.page_runs`).

    Raises:
        ValueError: a malformed cursor.
    """
    return runs.page_runs(query)


def workflows() -> list[Workflow]:
    return sorted(catalogue.all().values(), key=lambda w: w.name)


class WorkerBeat(BaseModel):
    """A worker that keeps a subscription alive, and how long ago it last said so."""

    model_config = ConfigDict(frozen=True)

    hostname: str
    heartbeat_age_s: float | None
    """Seconds since its last heartbeat; ``None`` for a holder that is not a worker (a test, a script)."""


class SubscriberView(Subscription):
    """A live subscription with the workers that hold it (``subscribers list --json``)."""

    holders: list[str]
    workers: list[WorkerBeat]


def subscriber_views() -> list[SubscriberView]:
    held = subscribers.holders()
    found = sorted(subscribers.live(), key=lambda s: (s.action, s.subscriber_id))
    beats = heartbeat_ages({h for names in held.values() for h in names})
    return [
        SubscriberView(
            **dict(s),
            holders=held.get(s.key, []),
            workers=[WorkerBeat(hostname=h, heartbeat_age_s=beats.get(h)) for h in held.get(s.key, [])],
        )
        for s in found
    ]


def heartbeat_ages(hostnames: Iterable[str]) -> dict[str, float]:
    """Seconds since each worker's last heartbeat, from the time left on its heartbeat key (whose
    TTL is the subscriber TTL, set anew on every beat)."""
    names = sorted(hostnames)
    if not names:
        return {}
    pipe = client().pipeline(transaction=False)
    for name in names:
        pipe.pttl(keys.worker_alive(name))
    ttl_s = get_settings().subscriber_ttl_s
    return {
        name: round(max(0.0, ttl_s - left / 1000), 1)
        for name, left in zip(names, pipe.execute(), strict=True)
        if left is not None and left >= 0
    }


def schedules() -> list[ScheduleRow]:
    from beat import control

    return control.schedule_rows()


def resource_counts() -> StoreCounts:
    return ResourceStore().counts()


def account_stats() -> list[AccountStats]:
    """Per account: totals by kind, expired, marked, protected (the resources page)."""
    return sorted(ResourceStore().all_stats(), key=lambda a: (a.provider, a.account))


def recent_runs_of(names: Iterable[str], per_workflow: int = 5) -> dict[str, list[Run]]:
    """The newest runs of each workflow (for the workflows page)."""
    return {name: runs.page_runs(runs.RunQuery(workflow=name, limit=per_workflow)).runs for name in names}
