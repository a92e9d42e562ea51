"""The web console's settings, from ``RESOTO_WEB_*``; separate from the core's, which it never changes."""

from __future__ import annotations

import functools
import ipaddress

import pydantic_settings
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from resoto_tasks.errors import ConfigurationError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8900


class WebSettings(BaseSettings):
    """``resoto-tasks web``'s configuration; ``--host``/``--port`` override host and port."""

    model_config = SettingsConfigDict(env_prefix="RESOTO_WEB_", extra="ignore", frozen=True)

    host: str = DEFAULT_HOST
    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535)
    token: SecretStr | None = None
    """Bearer token of the API and password of the console's login; required off loopback unless
    ``basic_auth`` is set."""
    basic_auth: SecretStr | None = None
    """``user:password``: HTTP basic auth for the API and the pages (behind a proxy that adds it, say)."""
    flower_url: str = "http://127.0.0.1:5555"
    metrics_url: str = "http://127.0.0.1:9955/metrics"
    poll_ms: int = Field(default=2000, ge=100)
    """How often open pages ask for fresh rows and progress."""

    @field_validator("token", "basic_auth", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("basic_auth")
    @classmethod
    def _user_and_password(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            user, sep, password = value.get_secret_value().partition(":")
            if not sep or not user or not password:
                raise ValueError("expected user:password")
        return value

    @property
    def protected(self) -> bool:
        """Requests must authenticate (a token or basic-auth credentials are set)."""
        return self.token is not None or self.basic_auth is not None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@functools.cache
def get_web_settings() -> WebSettings:
    """Raises: ConfigurationError (one line per variable, secrets never repeated)."""
    try:
        return WebSettings()
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = str(err["loc"][0]).upper() if err.get("loc") else ""
            problems.append(f"RESOTO_WEB_{name}: {str(err.get('msg', 'invalid')).removeprefix('Value error, ')}")
        raise ConfigurationError(problems) from None
    except pydantic_settings.SettingsError as exc:
        raise ConfigurationError([str(exc)]) from None
