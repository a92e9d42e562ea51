"""The composition root: the one place a process builds its Celery app and its engine.

Importing any resoto_tasks module builds nothing and reads no settings. A process composes on
first use: ``celery -A resoto_tasks worker`` asks for ``resoto_tasks.app`` (a lazy attribute that
lands here), the CLI and beat call :func:`app` or :func:`engine`. A process that changes its
settings first (``resoto-tasks up`` once it has chosen its Redis, tests, benchmarks) calls
:func:`reset` and composes again.
"""

from __future__ import annotations

import threading

from celery import Celery

from resoto_tasks import live_cache, redis_conn, workflows
from resoto_tasks.celery_app import create_app
from resoto_tasks.engine import Engine
from resoto_tasks.settings import get_settings
from resoto_tasks.wiring import engine_for

_lock = threading.Lock()
_app: Celery | None = None


def app() -> Celery:
    """This process's app, built on first call from ``RESOTO_*`` (read lazily, on first use).

    It becomes Celery's default app for every thread, so shared tasks and signatures built in
    other threads (the heartbeat, the supervisor) resolve to it.
    """
    global _app
    with _lock:
        if _app is None:
            _app = create_app()
            _app.set_default()
        return _app


def engine() -> Engine:
    """The engine over this process's app and the Redis store."""
    return engine_for(app())


def reset() -> None:
    """Forget the app, the settings, the pooled Redis clients and what they read: the next call
    composes anew."""
    global _app
    with _lock:
        if _app is not None:
            _app.close()  # its broker connections; a later use of it would open new ones
        _app = None
    get_settings.cache_clear()
    redis_conn.reset_clients()
    live_cache.forget()
    workflows.catalogue.forget()
