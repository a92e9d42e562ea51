"""resoto-tasks: Resoto's workflows (collect, cleanup_plan, cleanup, generate_metrics) on Celery.

``celery -A resoto_tasks worker -Q collect`` finds the app here: ``app`` is built on first
access (:mod:`resoto_tasks.runtime`), so importing the package builds nothing. Hooks subscribe
with::

    from resoto_tasks import subscriber

    @subscriber("post_collect")
    def tag_owners(ctx):
        ...
"""

from __future__ import annotations

from typing import Any

from resoto_tasks import runtime
from resoto_tasks.subscribers import Aborted, ActionContext, action_task, subscriber, subscription_source

__all__ = ["Aborted", "ActionContext", "action_task", "app", "subscriber", "subscription_source"]


def __getattr__(name: str) -> Any:
    """``resoto_tasks.app``: composed when Celery (or anyone) first asks for it."""
    if name == "app":
        return runtime.app()
    raise AttributeError(f"module 'resoto_tasks' has no attribute {name!r}")
