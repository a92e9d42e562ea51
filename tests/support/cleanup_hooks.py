"""A user hook on cleanup_plan: marks every bucket for cleanup (a policy some teams have)."""

from __future__ import annotations

from resoto_tasks import ActionContext, subscriber
from resoto_tasks.store import ResourceStore


@subscriber("cleanup_plan", timeout_s=60)
def no_buckets(ctx: ActionContext) -> dict[str, int]:
    store = ResourceStore()
    refs = [r.ref for p, a in store.accounts() for r in store.iter_resources(p, a, kind="bucket")]
    return {"marked": store.mark_many(refs, "no buckets allowed", ctx.run_id)}
