"""The environment of the stack: what the children see, and pointing this process at the same Redis.

Settings are read from ``RESOTO_*`` once per process and the Celery app is configured when
``resoto_tasks`` is imported, which happens before ``up`` knows which Redis it will use. So once
the Redis is chosen, this process's environment, settings cache, Redis clients and Celery
configuration are all switched to it together; nothing has connected before that point.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from resoto_tasks.celery_app import app, make_config
from resoto_tasks.local_stack.redis_local import StackRedis
from resoto_tasks.redis_conn import reset_clients
from resoto_tasks.settings import get_settings

SPLIT_URL_VARS = ("RESOTO_BROKER_URL", "RESOTO_RESULT_BACKEND_URL", "RESOTO_REDBEAT_URL", "RESOTO_STORE_URL")
"""Per-role URLs; dropped when the stack runs its own Redis, which then serves every role."""


def child_env(chosen: StackRedis, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment every child process runs with: ``RESOTO_REDIS_URL`` = the chosen Redis."""
    env = dict(os.environ if base is None else base)
    env["RESOTO_REDIS_URL"] = chosen.url
    if chosen.started:
        for name in SPLIT_URL_VARS:
            env.pop(name, None)
    env["PYTHONUNBUFFERED"] = "1"  # logs reach the files as they happen, not at exit
    env.setdefault("RESOTO_METRICS_ADDR", "127.0.0.1")  # a laptop stack serves loopback only, as Flower
    return env


def ignored_split_urls(chosen: StackRedis) -> list[str]:
    """The per-role URL variables set here that a started Redis overrides (to tell the user)."""
    return [name for name in SPLIT_URL_VARS if chosen.started and os.environ.get(name)]


def use_in_this_process(env: Mapping[str, str]) -> None:
    """Make this process talk to the Redis in ``env``: settings, pooled clients and Celery."""
    for name in ("RESOTO_REDIS_URL", *SPLIT_URL_VARS):
        if name in env:
            os.environ[name] = env[name]
        else:
            os.environ.pop(name, None)
    get_settings.cache_clear()
    reset_clients()
    app.conf.update(make_config(get_settings()))


def release_sent_results() -> int:
    """Let go of the results of tasks this process sent, while Redis still answers; returns how many.

    Sending a chord leaves its results pending in this process's Celery backend (subscribed on
    Redis pub/sub, never waited for). At interpreter exit their ``__del__`` unsubscribes, and
    when the stack has already stopped its own Redis that fails with a traceback on stderr.
    Releasing them here, through the backend's own ``remove_pending_result``, unsubscribes
    while the server is up. ``_pending_results`` is Celery's (``AsyncBackendMixin``); without
    it there is nothing to release.
    """
    backend = app.backend
    pending = getattr(backend, "_pending_results", None)
    if not pending:
        return 0
    results = [r for mapping in pending for waiters in list(mapping.values()) for r in list(waiters.values())]
    for result in results:
        backend.remove_pending_result(result)
    return len(results)
