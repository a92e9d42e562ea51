"""Process-wide settings, read once from ``RESOTO_*`` environment variables.

Every Redis role (broker, result backend, redbeat, resource store) falls back to
``RESOTO_REDIS_URL`` so a single variable is enough for a laptop, while production can
split them across servers or databases.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Configuration of every resoto-tasks process (CLI, workers, beat)."""

    model_config = SettingsConfigDict(env_prefix="RESOTO_", extra="ignore", frozen=True)

    redis_url: str = "redis://localhost:6379/0"
    broker_url: str | None = None
    result_backend_url: str | None = None
    redbeat_url: str | None = None
    store_url: str | None = None
    key_prefix: str = "resoto"

    workflows_dir: Path | None = None
    hook_modules: Annotated[list[str], NoDecode] = Field(default_factory=list)
    collect_providers: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["example"])

    subscriber_ttl_s: float = 60.0
    supervisor_interval_s: float = 10.0
    run_retention_days: float = 60.0
    events_maxlen: int = 10_000
    visibility_timeout_s: int = 4 * 3600
    default_step_timeout_s: float = 300.0
    timezone: str = "UTC"
    schedule_overrides: dict[str, str] = Field(default_factory=dict)
    missed_slot_grace_s: float = 3600.0
    beat_max_loop_interval_s: float = 5.0
    beat_lock_timeout_s: float = 30.0
    log_json: bool = False

    @field_validator("hook_modules", "collect_providers", mode="before")
    @classmethod
    def _csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("schedule_overrides", mode="before")
    @classmethod
    def _json_map(cls, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else {}
        return value

    @property
    def broker(self) -> str:
        return self.broker_url or self.redis_url

    @property
    def result_backend(self) -> str:
        return self.result_backend_url or self.redis_url

    @property
    def redbeat(self) -> str:
        return self.redbeat_url or self.redis_url

    @property
    def store(self) -> str:
        return self.store_url or self.redis_url


@functools.cache
def get_settings() -> Settings:
    """The settings of this process; cached because the environment does not change under us."""
    return Settings()
