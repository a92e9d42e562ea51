"""Collect: one subscription per (provider, account), each streaming into a new snapshot.

The accounts of a run are collected in parallel across every worker consuming the ``collect``
queue. An account's snapshot replaces the previous one atomically when it finishes; a failure,
a time limit or a cancel aborts the new snapshot and keeps the previous one, and the account's
outcome in the run says why (cleanup reads it to leave that account alone).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from typing import Any

from resoto_tasks.models import Subscription
from resoto_tasks.routing import COLLECT
from resoto_tasks.settings import get_settings
from resoto_tasks.store import ResourceStore
from resoto_tasks.subscribers import ActionContext, action_task, subscription_source
from resoto_tasks.worker_options import WorkerOptions
from worker.config import worker_settings
from worker.providers.base import Provider, load_provider, load_providers

log = logging.getLogger(__name__)

COLLECT_TASK = "resoto.collect"
_accounts_lock = threading.Lock()
_accounts_cache: tuple[float, list[tuple[str, str]]] | None = None


def subscriber_id(provider: str, account: str) -> str:
    return f"collect:{provider}:{account}"


def configured_accounts() -> list[tuple[str, str]]:
    """(provider, account) of every account to collect, cached for ``accounts_cache_s``.

    Asked on every heartbeat; a real cloud's account listing is slow and rate limited.
    """
    global _accounts_cache
    with _accounts_lock:
        now = time.monotonic()
        if _accounts_cache is None or now - _accounts_cache[0] > worker_settings().accounts_cache_s:
            providers: list[Provider] = load_providers(get_settings().collect_providers)
            found = [(p.name, a) for p in providers for a in p.accounts()]
            _accounts_cache = (now, found)
        return list(_accounts_cache[1])


@subscription_source
def collect_subscriptions(options: WorkerOptions) -> list[Subscription]:
    if COLLECT not in options.queues:
        return []
    timeout = worker_settings().collect_timeout_s
    return [
        Subscription(
            action="collect", subscriber_id=subscriber_id(p, a), task=COLLECT_TASK, queue=COLLECT,
            timeout_s=timeout, kwargs={"provider": p, "account": a},
        )
        for p, a in configured_accounts()
    ]  # fmt: skip


@action_task(COLLECT_TASK, queue=COLLECT)
def collect(ctx: ActionContext) -> dict[str, Any]:
    """Collect one account into a new snapshot; the previous one stays unless this one commits."""
    provider_name, account = str(ctx.kwargs["provider"]), str(ctx.kwargs["account"])
    provider = load_provider(provider_name)
    store = ResourceStore()
    batch_size = worker_settings().collect_batch_size
    started = time.monotonic()
    with store.snapshot_writer(provider_name, account, ctx.run_id) as writer:
        resources = provider.collect(account)
        while batch := list(itertools.islice(resources, batch_size)):
            ctx.check_abort()
            writer.add_many(batch)
            ctx.progress(writer.count, None, f"{provider_name}/{account}")
        snapshot = writer.commit()
    elapsed = time.monotonic() - started
    ctx.progress(snapshot.resource_count, snapshot.resource_count)
    log.info(
        "run=%s step=%s collected %s/%s: %d resources in %.1fs",
        ctx.run_id, ctx.step, provider_name, account, snapshot.resource_count, elapsed,
    )  # fmt: skip
    return {
        "provider": provider_name,
        "account": account,
        "resources": snapshot.resource_count,
        "seconds": round(elapsed, 3),
    }
