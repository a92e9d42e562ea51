"""How the engine is put together from its parts, for a given Celery app.

Kept apart from :mod:`resoto_tasks.runtime` (which builds the app) so that the worker's bootstep
and the tasks, which receive their app from Celery, can build an engine without importing the
module that builds apps.
"""

from __future__ import annotations

from celery import Celery

from resoto_tasks import runs
from resoto_tasks.dispatch import CeleryDispatcher
from resoto_tasks.engine import Engine
from resoto_tasks.settings import get_settings
from resoto_tasks.timeutil import now_ms
from resoto_tasks.workflows import catalogue


def engine_for(app: Celery) -> Engine:
    """The engine over the Redis run store, sending through ``app``."""
    return Engine(
        store=runs.RunStore(),
        tasks=CeleryDispatcher(app, cancel_grace_s=get_settings().cancel_grace_s),
        workflows=catalogue.all,
        clock=now_ms,
        new_run_id=runs.new_run_id,
        progress=runs.progress_of,
    )
