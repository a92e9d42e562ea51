"""Cleanup: delete about 10,000 marked example resources in dependency order (issue 7, item 5).

The store is filled from the example cloud (4 accounts x 50,000, ``bench.example_store``) with
``enforce_dependencies=True``: the cloud refuses to delete a resource while a live resource
depends on it, so a wrong order shows up as failures. ``worker.cleanup.mark_expired`` marks what
expired (whole vpc blocks, whole subnet groups and single leaves: chains vpc <- subnet <- instance
-> volumes); if that is under ``WANTED``, whole unprotected blocks are marked with
``ResourceStore.mark_many`` on top. The state (store keys and marks) is saved with ``COPY`` and
restored before every repetition, so each one deletes the same set from the same store.

What is timed is ``worker.cleanup.run_cleanup`` (what the ``resoto.cleanup`` task calls), in this
process without Celery: read the marks, decide (protected? gone? failed collect?), write the
ledger, then per wave ``ExampleProvider.delete`` + ``ResourceStore.delete_resource`` on a pool of 8
threads. The floor, on the same ids and keys in the same run: plain redis-py pipelined ``HDEL``
from the account's data hash + ``SADD`` to the example cloud's deleted set (5,000 commands per
pipeline). Alternating floor and cleanup, median of ``REPEAT``.
"""

from __future__ import annotations

import importlib
import time
from collections import Counter
from typing import Any

from bench import example_store
from bench.framework import Context, Record, benchmark, median
from bench.infra import server_stats
from bench.store_data import flush, store_unavailable

NAME = "cleanup"
ACCOUNTS = 4
PER_ACCOUNT = 50_000
WANTED = 10_000
REPEAT = 3
POOL_SIZE = 8
PIPELINE = 5_000
SAVED = "benchsaved:"
SETTINGS: dict[str, Any] = {"accounts": ACCOUNTS, "resources_per_account": PER_ACCOUNT, "enforce_dependencies": True}


def _unavailable() -> str | None:
    reason = store_unavailable()
    if reason:
        return reason
    try:
        found = importlib.import_module("worker.cleanup")
    except ImportError as exc:
        return f"worker.cleanup cannot be imported ({exc})"
    missing = [n for n in ("run_cleanup", "mark_expired", "Limits", "decide", "waves") if not hasattr(found, n)]
    return f"worker.cleanup has no {', '.join(missing)}" if missing else None


def _provider() -> Any:
    from worker.providers.example import ExampleProvider, ExampleSettings

    return ExampleProvider(ExampleSettings(**SETTINGS))


def _mark(store: Any, provider: Any) -> dict[str, int]:
    """Mark what expired; top up with whole unprotected, unmarked blocks up to ``WANTED``."""
    from resoto_tasks.store.resources import ResourceRef
    from resoto_tasks.timeutil import utcnow
    from worker.cleanup import mark_expired
    from worker.providers.example import BLOCK, resource_id

    found = mark_expired(store, "bench-cleanup-plan", utcnow())
    marked = found["marked"]
    marked_ids = {(m.account, m.id) for m in store.marks()}
    topped = 0
    for block in range(PER_ACCOUNT // BLOCK):
        for account in provider.accounts():
            if marked + topped >= WANTED:
                break
            ids = [resource_id(block * BLOCK + i) for i in range(BLOCK)]
            resources = store.get_many(provider.name, account, ids)
            if any(r is None or r.protected or (account, r.id) in marked_ids for r in resources):
                continue
            refs = [ResourceRef(provider=provider.name, account=account, id=rid) for rid in ids]
            topped += store.mark_many(refs, "bench", "bench-cleanup-plan")
    return {"expired_marked": marked, "protected_skipped": found["protected_skipped"], "blocks_marked": topped}


def _state_keys(store: Any, provider: Any) -> tuple[list[str], list[str]]:
    """(keys saved and restored, the example cloud's deleted sets: emptied on restore)."""
    from resoto_tasks.store import keys

    state = [k for p, a in store.accounts() for k in (*keys.live(p, a), keys.meta(p, a), keys.marks(p, a))]
    deleted = [keys.example_deleted(provider.settings.seed, a) for a in provider.accounts()]
    return state, deleted


def _save(r: Any, state: list[str]) -> list[str]:
    present = [k for k in state if r.exists(k)]
    for k in present:
        r.copy(k, SAVED + k, replace=True)
    return present


def _restore(r: Any, state: list[str], present: list[str], deleted: list[str]) -> None:
    pipe = r.pipeline(transaction=False)
    pipe.unlink(*state, *deleted)
    for k in present:
        pipe.copy(SAVED + k, k, replace=True)
    pipe.execute()


def _plain_s(r: Any, ids: dict[tuple[str, str], list[str]], seed: int) -> float:
    """The floor: pipelined HDEL from the data hash + SADD to the cloud's deleted set, same ids."""
    from resoto_tasks.store import keys

    t0 = time.perf_counter()
    pipe = r.pipeline(transaction=False)
    queued = 0
    for (provider, account), rids in ids.items():
        data = keys.live(provider, account).data
        gone = keys.example_deleted(seed, account)
        for rid in rids:
            pipe.hdel(data, rid)
            pipe.sadd(gone, rid)
            queued += 2
            if queued >= PIPELINE:
                pipe.execute()
                queued = 0
    pipe.execute()
    return time.perf_counter() - t0


def _cleanup(store: Any, provider: Any, run_id: str) -> tuple[float, dict[str, Any]]:
    """``run_cleanup`` as the task calls it (no failed collects, no caps, not a dry run)."""
    from worker import ledger
    from worker.cleanup import DeletionsFailed, Limits, run_cleanup

    def provider_for(name: str) -> Any:
        assert name == provider.name, name
        return provider

    limits = Limits(dry_run=False, max_count=None, max_percent=None, pool_size=POOL_SIZE)
    t0 = time.perf_counter()
    try:
        result: dict[str, Any] = run_cleanup(store, run_id, limits, set(), provider_for)
    except DeletionsFailed as exc:
        result = {"error": str(exc)}
    seconds = time.perf_counter() - t0
    totals = (ledger.summary(run_id, with_entries=False) or {}).get("totals", {})
    return seconds, {**result, "ledger": totals}


def _wrong_order_refused(store: Any, provider: Any, deletable: dict[str, Any], order: list[list[str]]) -> bool:
    """The cloud refuses a resource of the last wave while its marked dependents are live."""
    from worker.providers.base import ProviderError

    if len(order) < 2:
        return False
    _, resource = deletable[order[-1][0]]
    try:
        provider.delete(resource)
    except ProviderError as exc:
        return "DependencyViolation" in str(exc)
    return False


def _phases(store: Any, provider: Any) -> dict[str, float]:
    """Where the time goes, in one thread: decide, then each deletion's two halves, seconds."""
    from worker.cleanup import decide, waves

    t0 = time.perf_counter()
    deletable, _, _ = decide(list(store.marks()), store, set())
    decide_s = time.perf_counter() - t0
    order, _ = waves(deletable)
    provider_s = store_s = 0.0
    for wave in order:
        for k in wave:
            _, resource = deletable[k]
            t1 = time.perf_counter()
            provider.delete(resource)
            t2 = time.perf_counter()
            store.delete_resource(resource.provider, resource.account, resource.id)
            provider_s += t2 - t1
            store_s += time.perf_counter() - t2
    return {
        "decide": round(decide_s, 2), "provider.delete": round(provider_s, 2),
        "store.delete_resource": round(store_s, 2), "total": round(decide_s + provider_s + store_s, 2),
    }  # fmt: skip


def _verify(r: Any, store: Any, provider: Any, deleted: list[str], expected: int, total: int) -> list[str]:
    """What is wrong with the state after a cleanup (empty: every mark deleted, nothing else)."""
    problems = []
    gone = sum(int(r.scard(k)) for k in deleted)
    left = sum(store.count(p, a) for p, a in store.accounts())
    marks = sum(1 for _ in store.marks())
    if gone != expected:
        problems.append(f"the cloud deleted {gone}, expected {expected}")
    if left != total - expected:
        problems.append(f"the store holds {left}, expected {total - expected}")
    if marks:
        problems.append(f"{marks} marks left")
    return problems


@benchmark(NAME, unavailable=_unavailable)
def run(ctx: Context) -> list[Record]:
    """Cleanup: delete 10,000+ marked example resources in dependency order (enforced) vs plain HDEL+SADD."""
    from resoto_tasks import keys as core_keys
    from resoto_tasks.redis_conn import client
    from resoto_tasks.store import ResourceStore
    from worker.cleanup import decide, waves

    r = client()
    flush(r)
    built = example_store.build(SETTINGS)
    store = ResourceStore(r)
    provider = _provider()
    marking = _mark(store, provider)
    state, deleted_sets = _state_keys(store, provider)
    present = _save(r, state)
    marks = list(store.marks())
    ids: dict[tuple[str, str], list[str]] = {}
    for m in marks:
        ids.setdefault((m.provider, m.account), []).append(m.id)

    t0 = time.perf_counter()
    deletable, skipped, _ = decide(marks, store, set())
    decide_s = time.perf_counter() - t0
    order, cycle = waves(deletable)
    kinds = Counter(resource.kind for _, resource in deletable.values())
    wave_kinds = [dict(Counter(deletable[k][1].kind for k in wave)) for wave in order]
    refused = _wrong_order_refused(store, provider, deletable, order)
    expected = len(deletable)

    plain, timed, results, problems = [], [], [], []
    commands: dict[str, float] = {}
    for i in range(REPEAT):
        _restore(r, state, present, deleted_sets)
        plain.append(_plain_s(r, ids, provider.settings.seed))
        _restore(r, state, present, deleted_sets)
        run_id = f"bench-cleanup-{i}"
        before = server_stats(r)
        seconds, result = _cleanup(store, provider, run_id)
        delta = server_stats(r).minus(before)
        timed.append(seconds)
        results.append(result)
        wrong = _verify(r, store, provider, deleted_sets, expected, int(built["resources"]))
        problems += [f"repetition {i}: {p}" for p in wrong]
        r.unlink(core_keys.run_ledger(run_id))
        if i == 0:
            per_deletion = {k: round(v / max(1, expected), 2) for k, v in delta.calls.items()}
            commands = dict(sorted(((k, v) for k, v in per_deletion.items() if v), key=lambda kv: -kv[1]))
    _restore(r, state, present, deleted_sets)
    phases = _phases(store, provider)
    flush(r)

    failures = max(int(res["ledger"].get("failed", 0)) for res in results)
    deleted = min(int(res["ledger"].get("deleted", 0)) for res in results)
    ctx.notes += problems
    ctx.notes += [f"repetition {i}: {res['error']}" for i, res in enumerate(results) if "error" in res]
    if skipped or cycle:
        ctx.notes.append(f"{len(skipped)} marks skipped by decide, {len(cycle)} in dependency cycles")
    ctx.extra["cleanup"] = {
        "build": built, "marking": marking, "deletable_by_kind": dict(kinds), "waves": wave_kinds,
        "decide_s": round(decide_s, 3), "results": results, "seconds": timed, "plain_seconds": plain,
        "redis_commands_per_deletion": commands, "serial_phases_s": phases,
    }  # fmt: skip

    cleanup_s, plain_s = median(timed), median(plain)
    params = {
        "accounts": ACCOUNTS, "resources": built["resources"], "marked": len(marks), "deletable": expected,
        "pool_size": POOL_SIZE, "repeat": REPEAT, "waves": [sum(w.values()) for w in wave_kinds],
        "vpc_chains": kinds.get("vpc", 0), "wrong_order_refused": refused,
        "median_of_pair_ratios": round(median([p / t for p, t in zip(plain, timed, strict=True)]), 4),
    }  # fmt: skip
    floor = "pipelined HDEL (data hash) + SADD (cloud's deleted set) of the same ids"
    label = f"{expected:,} marked over {ACCOUNTS} accounts of {built['resources']:,}, pool {POOL_SIZE}"
    return [
        Record(NAME, f"run_cleanup, {label}: deletions/s, median", round(expected / cleanup_s), "resources/s",
               round(expected / plain_s), floor, None, params),
        Record(NAME, f"run_cleanup, {label}: wall time, median", round(cleanup_s, 2), "s", round(plain_s, 3),
               floor, None, params),
        Record(NAME, "waves (dependents first; the cloud refuses a wrong order)", len(order), "waves", None, None,
               None, params, "figure >= 3 (vpc <- subnet <- instance chains)", len(order) >= 3 and refused),
        Record(NAME, f"failed deletions (deleted: {deleted:,} of {expected:,})", failures, "resources", None, None,
               None, params, "figure == 0, all deleted, state verified",
               failures == 0 and deleted == expected and not problems),
    ]  # fmt: skip


def report(ctx: Context) -> str:
    found = ctx.extra.get("cleanup", {})
    if not found:
        return ""
    commands = ", ".join(f"{k} {v:g}" for k, v in found["redis_commands_per_deletion"].items())
    return "\n".join([
        f"  store built in {found['build']['seconds']} s; marking: {found['marking']}",
        f"  waves by kind: {found['waves']}",
        f"  decide alone (get_many + one SISMEMBER per mark): {found['decide_s'] * 1000:.0f} ms",
        "  the same work in one thread, no pool, no ledger (s): "
        + ", ".join(f"{k} {v:g}" for k, v in found["serial_phases_s"].items()),
        f"  Redis commands per deletion (whole run_cleanup, with those the delete script runs): {commands}",
    ])  # fmt: skip
