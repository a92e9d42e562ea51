"""Settings of the worker actors (``RESOTO_`` prefix), beside the core's and the flags'.

Timeouts bound a step as Resoto's actors did: the step waits max(step timeout, subscribers'
timeouts), so these are the real limits of a collect or a cleanup.
"""

from __future__ import annotations

import functools

from pydantic_settings import BaseSettings, SettingsConfigDict


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RESOTO_", extra="ignore", frozen=True)

    collect_timeout_s: float = 3600.0
    collect_batch_size: int = 5_000
    cleanup_plan_timeout_s: float = 600.0
    cleanup_timeout_s: float = 3600.0
    accounts_cache_s: float = 300.0


@functools.cache
def worker_settings() -> WorkerSettings:
    return WorkerSettings()
