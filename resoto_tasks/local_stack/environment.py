"""The environment of the stack: what the children see, and pointing this process at the same Redis.

Settings are read from ``RESOTO_*`` once per process, on first use. ``up`` reads them before it
knows which Redis it will use, so once the Redis is chosen, this process's environment is
switched to it and the composition root (:mod:`resoto_tasks.runtime`) is reset: settings, Redis
clients and the Celery app are all built anew from it; nothing has connected before that point.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from resoto_tasks import runtime
from resoto_tasks.local_stack.redis_local import StackRedis

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
    runtime.reset()
