"""cleanup_plan and cleanup: mark what expired, then delete what is marked, safely.

* ``--cleanup-expired`` subscribes the expiry planner to ``cleanup_plan``: every expired,
  unprotected resource is marked with the reason ``expired``. Finding them costs in proportion to
  the expired resources (the store's expiry index), not to the inventory.
* ``--cleanup`` subscribes the cleaner to ``cleanup``: every marked, unprotected resource is
  deleted through its provider, dependents before what they depend on, each wave in parallel.

Safety, in the order the cleaner applies it: protected resources are never deleted, even when
marked; an account whose collect failed in this run is not cleaned in this run; if the run would
delete more than ``--cleanup-max`` resources (or ``--cleanup-max-percent`` of an account) it deletes
nothing and the step fails saying how many and why; ``--cleanup-dry-run`` decides and records
everything and deletes nothing. Every decision lands in the run's ledger as it is taken.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from resoto_tasks import runs, stats
from resoto_tasks.models import OutcomeStatus, Subscription
from resoto_tasks.redis_conn import client
from resoto_tasks.routing import CLEANUP
from resoto_tasks.store import ResourceStore
from resoto_tasks.store.resources import Mark, Resource, ResourceRef
from resoto_tasks.subscribers import ActionContext, action_task, subscription_source
from resoto_tasks.timeutil import utcnow
from resoto_tasks.worker_options import WorkerOptions, current
from worker import ledger
from worker.config import worker_settings
from worker.ledger import Decision, Entry
from worker.providers.base import Provider, load_provider

log = logging.getLogger(__name__)

PLAN_TASK = "resoto.cleanup_plan.expired"
CLEAN_TASK = "resoto.cleanup"
EXPIRED_REASON = "expired"


class CleanupRefused(Exception):
    """The cleaner refuses to delete anything (a cap); the step fails with this message."""


class DeletionsFailed(Exception):
    """Some deletions failed at the provider; the step fails, the ledger has each error."""


@subscription_source
def cleanup_subscriptions(options: WorkerOptions) -> list[Subscription]:
    if CLEANUP not in options.queues:
        return []
    found = []
    settings = worker_settings()
    if options.cleanup_expired:
        found.append(
            Subscription(
                action="cleanup_plan",
                subscriber_id="cleanup_plan:expired",
                task=PLAN_TASK,
                queue=CLEANUP,
                timeout_s=settings.cleanup_plan_timeout_s,
            )
        )
    if options.cleanup:
        found.append(
            Subscription(
                action="cleanup",
                subscriber_id="cleanup:delete",
                task=CLEAN_TASK,
                queue=CLEANUP,
                timeout_s=settings.cleanup_timeout_s,
            )
        )
    return found


# ---------------------------------------------------------------------------------------------
# cleanup_plan: mark what expired
# ---------------------------------------------------------------------------------------------


@action_task(PLAN_TASK, queue=CLEANUP)
def plan_expired(ctx: ActionContext) -> dict[str, int]:
    """Mark every expired, unprotected resource with the reason ``expired`` (idempotent)."""
    return mark_expired(ResourceStore(), ctx.run_id, utcnow(), progress=ctx.progress, check_abort=ctx.check_abort)


def mark_expired(
    store: ResourceStore,
    run_id: str,
    now: datetime,
    progress: Callable[[int], None] | None = None,
    check_abort: Callable[[], None] | None = None,
) -> dict[str, int]:
    """Mark what expired before ``now`` and is not protected; costs O(expired)."""
    marked = protected = 0
    batch: list[ResourceRef] = []
    for entry in store.expired(now):
        if entry.protected:  # read with the expiry index, in the same batch
            protected += 1
            continue
        batch.append(entry.ref)
        if len(batch) >= 1_000:
            marked += store.mark_many(batch, EXPIRED_REASON, run_id, at=now)
            batch.clear()
            if check_abort:
                check_abort()
            if progress:
                progress(marked)
    if batch:
        marked += store.mark_many(batch, EXPIRED_REASON, run_id, at=now)
    log.info(
        "run=%s step=cleanup_plan marked %d expired resources (%d protected left alone)", run_id, marked, protected
    )
    return {"marked": marked, "protected_skipped": protected}


# ---------------------------------------------------------------------------------------------
# cleanup: delete what is marked
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    dry_run: bool
    max_count: int | None
    max_percent: float | None
    pool_size: int

    @classmethod
    def from_options(cls, options: WorkerOptions) -> Limits:
        return cls(
            options.cleanup_dry_run, options.cleanup_max, options.cleanup_max_percent, max(1, options.cleanup_pool_size)
        )


def failed_collect_accounts(run_id: str) -> set[tuple[str, str]]:
    """(provider, account) whose collect in this run did not end ``done``."""
    run = runs.load(run_id)
    if run is None:
        return set()
    failed: set[tuple[str, str]] = set()
    for step in run.steps:
        if step.action != "collect":
            continue
        for sub in step.blocking:
            outcome = step.outcomes.get(sub)
            if not sub.startswith("collect:"):
                continue
            _, provider, account = sub.split(":", 2)
            if outcome is None or outcome.status != OutcomeStatus.done:
                failed.add((provider, account))
    return failed


def _entry(mark: Mark, resource: Resource | None, decision: Decision, reason: str = "") -> Entry:
    return Entry(
        provider=mark.provider, account=mark.account, id=mark.id,
        kind=resource.kind if resource else "", name=resource.name if resource else "",
        decision=decision, reason=reason, mark_reason=mark.reason,
    )  # fmt: skip


def decide(
    marks: list[Mark], store: ResourceStore, failed_accounts: set[tuple[str, str]]
) -> tuple[dict[str, tuple[Mark, Resource]], list[Entry], set[str]]:
    """Split marks into what may be deleted (by key) and what is skipped (with the reason).

    Also returns the keys that a kept (protected) marked resource depends on: deleting those
    would pull the ground from under a resource that stays.
    """
    deletable: dict[str, tuple[Mark, Resource]] = {}
    skipped: list[Entry] = []
    kept_needs: set[str] = set()
    by_account: dict[tuple[str, str], list[Mark]] = defaultdict(list)
    for mark in marks:
        by_account[(mark.provider, mark.account)].append(mark)
    for (provider, account), group in sorted(by_account.items()):
        resources = store.get_many(provider, account, [m.id for m in group])
        for mark, resource in zip(group, resources, strict=True):
            if resource is None:
                skipped.append(_entry(mark, None, Decision.skipped, "gone"))
                store.unmark(mark.ref)
            elif resource.protected:  # the store's protected index is built from this flag
                skipped.append(_entry(mark, resource, Decision.skipped, "protected"))
                kept_needs.update(f"{provider}/{account}/{d}" for d in resource.depends_on)
            elif (provider, account) in failed_accounts:
                skipped.append(_entry(mark, resource, Decision.skipped, "failed collect"))
            else:
                deletable[f"{provider}/{account}/{mark.id}"] = (mark, resource)
    return deletable, skipped, kept_needs


def check_caps(deletable: dict[str, tuple[Mark, Resource]], store: ResourceStore, limits: Limits) -> str | None:
    """Why the run must delete nothing, or ``None`` when it is within the caps."""
    if limits.max_count is not None and len(deletable) > limits.max_count:
        return f"would delete {len(deletable)} resources, more than --cleanup-max {limits.max_count}; deleted nothing"
    if limits.max_percent is not None:
        per_account = Counter((m.provider, m.account) for m, _ in deletable.values())
        for (provider, account), n in sorted(per_account.items()):
            total = store.count(provider, account) or n
            percent = 100.0 * n / total
            if percent > limits.max_percent:
                return (
                    f"would delete {n} of {total} resources ({percent:.1f}%) of {provider}/{account}, "
                    f"more than --cleanup-max-percent {limits.max_percent:g}; deleted nothing"
                )
    return None


def waves(deletable: dict[str, tuple[Mark, Resource]]) -> tuple[list[list[str]], list[str]]:
    """Deletion order: a resource goes only after every marked resource that depends on it.

    Returns the waves (keys) and the keys caught in a dependency cycle (never deleted).
    """

    def key(r: Resource, rid: str) -> str:
        return f"{r.provider}/{r.account}/{rid}"

    waiting_on: dict[str, int] = dict.fromkeys(deletable, 0)  # marked dependents not yet deleted
    dependencies: dict[str, list[str]] = defaultdict(list)  # key -> marked keys it depends on
    for k, (_, resource) in deletable.items():
        for dep in resource.depends_on:
            dk = key(resource, dep)
            if dk in deletable and dk != k:
                waiting_on[dk] += 1
                dependencies[k].append(dk)
    ready = sorted(k for k, n in waiting_on.items() if n == 0)
    order: list[list[str]] = []
    seen = 0
    while ready:
        order.append(ready)
        seen += len(ready)
        nxt = []
        for k in ready:
            for dk in dependencies[k]:
                waiting_on[dk] -= 1
                if waiting_on[dk] == 0:
                    nxt.append(dk)
        ready = sorted(nxt)
    cycle = sorted(k for k, n in waiting_on.items() if n > 0) if seen < len(deletable) else []
    return order, cycle


@action_task(CLEAN_TASK, queue=CLEANUP)
def clean(ctx: ActionContext) -> dict[str, Any]:
    """Delete every marked, unprotected resource, in dependency order; see the module docstring."""
    providers: dict[str, Provider] = {}

    def provider_for(name: str) -> Provider:
        if name not in providers:
            providers[name] = load_provider(name)
        return providers[name]

    return run_cleanup(
        ResourceStore(), ctx.run_id, Limits.from_options(current()), failed_collect_accounts(ctx.run_id),
        provider_for, progress=ctx.progress, check_abort=ctx.check_abort,
    )  # fmt: skip


def run_cleanup(
    store: ResourceStore,
    run_id: str,
    limits: Limits,
    failed_accounts: set[tuple[str, str]],
    provider_for: Callable[[str], Provider],
    progress: Callable[[int, int], None] | None = None,
    check_abort: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Decide, record and delete; every decision lands in the run's ledger as it is taken.

    Raises:
        CleanupRefused: a cap would be exceeded (nothing was deleted).
        DeletionsFailed: some deletions failed at the provider (the rest went ahead).
    """
    marks = list(store.marks())
    deletable, skipped, kept_needs = decide(marks, store, failed_accounts)
    planned = [_entry(m, r, Decision.planned) for m, r in deletable.values()]
    ledger.record(run_id, skipped + planned)
    refusal = check_caps(deletable, store, limits)
    if refusal is not None or limits.dry_run:
        reason = "cap" if refusal is not None else "dry run"
        ledger.record(run_id, [e.model_copy(update={"decision": Decision.skipped, "reason": reason}) for e in planned])
        _count(skipped, [], len(planned), reason)
        if refusal is not None:
            log.warning("run=%s step=cleanup cleanup refused: %s", run_id, refusal)
            raise CleanupRefused(refusal)
        return {"planned": len(planned), "deleted": 0, "dry_run": True, "skipped": len(skipped) + len(planned)}

    order, cycle = waves(deletable)
    deleted: list[Entry] = []
    failed: list[Entry] = []
    blocked: set[str] = set(kept_needs)  # keys whose dependent stays (kept, skipped or failed)
    lock = threading.Lock()

    def delete_one(k: str) -> Entry:
        mark, resource = deletable[k]
        with lock:
            if k in blocked:
                return _entry(mark, resource, Decision.skipped, "dependent not deleted")
            provider = provider_for(resource.provider)
        try:
            provider.delete(resource)
        except Exception as exc:  # the provider's own words go into the ledger
            return _entry(mark, resource, Decision.failed, f"{type(exc).__name__}: {exc}"[:500])
        store.delete_resource(resource.provider, resource.account, resource.id)
        return _entry(mark, resource, Decision.deleted)

    done = 0
    with ThreadPoolExecutor(max_workers=limits.pool_size, thread_name_prefix="cleanup") as pool:
        for wave in order:
            if check_abort:
                check_abort()
            results = list(pool.map(delete_one, wave))
            ledger.record(run_id, results)
            for k, entry in zip(wave, results, strict=True):
                if entry.decision == Decision.deleted:
                    deleted.append(entry)
                    continue
                (failed if entry.decision == Decision.failed else skipped).append(entry)
                _, resource = deletable[k]
                blocked.update(f"{resource.provider}/{resource.account}/{d}" for d in resource.depends_on)
            done += len(wave)
            if progress:
                progress(done, len(deletable))
    cyclic = [_entry(*deletable[k], Decision.skipped, "dependency cycle") for k in cycle]
    ledger.record(run_id, cyclic)
    skipped += cyclic
    _count(skipped, deleted + failed, 0, "")
    log.info("run=%s step=cleanup %d deleted, %d failed, %d skipped", run_id, len(deleted), len(failed), len(skipped))
    result = {"planned": len(planned), "deleted": len(deleted), "failed": len(failed), "skipped": len(skipped)}
    if failed:
        raise DeletionsFailed(
            f"{len(failed)} of {len(planned)} deletions failed; first: {failed[0].key}: {failed[0].reason}"
        )
    return result


def _count(skipped: list[Entry], decided: list[Entry], refused: int, refused_reason: str) -> None:
    pipe = client().pipeline(transaction=False)
    for (decision, reason), n in Counter(
        (e.decision.value, e.reason if e.decision == Decision.skipped else "") for e in skipped + decided
    ).items():
        stats.on_cleanup_decision(pipe, decision, reason, n)
    if refused:
        stats.on_cleanup_decision(pipe, "skipped", refused_reason, refused)
    pipe.execute()
