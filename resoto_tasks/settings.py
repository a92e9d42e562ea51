"""Process-wide settings, read once from ``RESOTO_*`` environment variables.

Every Redis role (broker, result backend, redbeat, resource store) falls back to
``RESOTO_REDIS_URL`` so a single variable is enough for a laptop, while production can
split them across servers or databases. With ``RESOTO_REDIS_SENTINELS`` every role without a URL
of its own reaches the primary the sentinels name (:mod:`resoto_tasks.sentinel`); the broker may
instead be RabbitMQ (``RESOTO_BROKER_URL=amqp://...``).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pydantic_settings
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from resoto_tasks.errors import ConfigurationError
from resoto_tasks.models import CronTrigger, IntervalTrigger
from resoto_tasks.urls import check_broker_url, check_host_port, check_redis_url, is_amqp


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

    redis_sentinels: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """``host:port,host:port,...``: every Redis role without a URL of its own asks these for the primary."""
    redis_sentinel_master: str | None = None
    """The name the sentinels monitor the primary under (``sentinel monitor NAME ...``)."""
    redis_sentinel_password: SecretStr | None = None
    """The sentinels' own password (``requirepass`` of the sentinels); the primary's is in RESOTO_REDIS_URL."""
    redis_failover_wait_s: float = Field(default=30.0, gt=0)
    """How long a producer (CLI, beat, a callback) waits for a new primary before it gives up."""
    redis_min_replicas_ack: int = Field(default=0, ge=0)
    """Run transitions and snapshot swaps are acknowledged only once this many replicas have them (WAIT)."""
    redis_min_replicas_timeout_s: float = Field(default=2.0, ge=0.001, lt=30)
    """How long a transition waits for its replicas: at least 1 ms (``WAIT n 0`` would block for
    ever) and below the clients' 30 s socket timeout (a timed-out WAIT would be retried after the
    script had applied, and the applied transition reported as a conflict)."""
    broker_quorum_queues: bool = False
    """RabbitMQ only: declare the four queues as quorum queues (replicated, no priorities)."""

    workflows_dir: Path | None = None
    hook_modules: Annotated[list[str], NoDecode] = Field(default_factory=list)
    collect_providers: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["example"])

    subscriber_ttl_s: float = 60.0
    supervisor_interval_s: float = 10.0
    run_retention_days: float = 60.0
    events_maxlen: int = 10_000
    visibility_timeout_s: int = 4 * 3600
    default_step_timeout_s: float = 300.0
    cancel_grace_s: float = 30.0
    """A cancelled run's tasks may stop by themselves (``check_abort``) this long before they are terminated."""
    timezone: str = "UTC"
    schedule_overrides: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    missed_slot_grace_s: float = 3600.0
    beat_max_loop_interval_s: float = 5.0
    beat_lock_timeout_s: float = 30.0
    log_json: bool = False

    @field_validator("hook_modules", "collect_providers", "redis_sentinels", mode="before")
    @classmethod
    def _csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("redis_url", "result_backend_url", "redbeat_url", "store_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        return None if value is None else check_redis_url(value)

    @field_validator("broker_url")
    @classmethod
    def _broker_url(cls, value: str | None) -> str | None:
        return None if value is None else check_broker_url(value)

    @field_validator("redis_sentinels")
    @classmethod
    def _sentinels(cls, value: list[str]) -> list[str]:
        problems = []
        for address in value:
            try:
                check_host_port(address)
            except ValueError as exc:
                problems.append(str(exc))
        if problems:
            raise ValueError("; ".join(problems) + " (expected host:port,host:port,...)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        """Settings that are each fine alone but not together (one line each, naming the variables)."""
        problems = []
        if self.redis_sentinels and not self.redis_sentinel_master:
            problems.append("RESOTO_REDIS_SENTINEL_MASTER: required with RESOTO_REDIS_SENTINELS (the monitored name)")
        if self.redis_sentinel_master and not self.redis_sentinels:
            problems.append("RESOTO_REDIS_SENTINELS: required with RESOTO_REDIS_SENTINEL_MASTER (host:port,...)")
        if self.redis_sentinels and self.redis_url.startswith("unix://"):
            problems.append("RESOTO_REDIS_URL: a unix:// socket cannot be combined with RESOTO_REDIS_SENTINELS")
        if self.redis_sentinels and self.redis_url.startswith("rediss://"):
            # refused rather than silently dropped: the roles would reach the primary without TLS
            problems.append("RESOTO_REDIS_URL: TLS (rediss://) through RESOTO_REDIS_SENTINELS is not supported yet")
        if self.broker_quorum_queues and not is_amqp(self.broker):
            problems.append("RESOTO_BROKER_QUORUM_QUEUES: only for a RabbitMQ broker (RESOTO_BROKER_URL=amqp://...)")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}: use an IANA name such as UTC or Europe/Berlin") from None
        return value

    @field_validator("schedule_overrides", mode="before")
    @classmethod
    def _json_map(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except json.JSONDecodeError as exc:
                raise ValueError(f'not JSON ({exc.msg}); expected {{"workflow": "cron or interval"}}') from None
        if not isinstance(value, dict):
            raise ValueError('expected a JSON object such as {"collect_and_cleanup": "*/30 * * * *"}')
        return value

    @field_validator("schedule_overrides")
    @classmethod
    def _valid_schedules(cls, value: dict[str, str]) -> dict[str, str]:
        for name, expression in value.items():
            if expression:
                schedule_trigger(expression, f"{name}: ")
        return value

    def uses_sentinel(self, role_url: str | None) -> bool:
        """Whether a role whose own URL is ``role_url`` reaches its Redis through the sentinels."""
        return bool(self.redis_sentinels) and role_url is None

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


def schedule_trigger(expression: str, context: str = "") -> CronTrigger | IntervalTrigger:
    """A schedule as written in configuration: five fields are cron, anything else an interval.

    Raises:
        ValueError: neither (``context`` is put before the message).
    """
    try:
        if len(expression.split()) == 5:
            return CronTrigger(cron=expression)
        return IntervalTrigger(interval=expression)
    except ValidationError:
        raise ValueError(
            f"{context}{expression!r} is neither a 5-field cron expression nor an interval such as 30m"
        ) from None


@functools.cache
def get_settings() -> Settings:
    """The settings of this process; cached because the environment does not change under us.

    Raises:
        ConfigurationError: a ``RESOTO_*`` variable cannot be used (one line per problem; values
            are not repeated, so a password in a URL is never printed).
    """
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigurationError([line for err in exc.errors() for line in _problems(err)]) from None
    except pydantic_settings.SettingsError as exc:
        raise ConfigurationError([str(exc)]) from None


def _problems(err: Any) -> list[str]:
    field = str(err["loc"][0]) if err.get("loc") else ""
    message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    if not field:  # a check across settings: its lines name their variables
        return message.splitlines()
    return [f"RESOTO_{field.upper()}: {message}"]
