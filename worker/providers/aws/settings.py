"""The ``aws`` provider's settings, from ``RESOTO_AWS_*`` (credentials come from boto3's own chain).

Read once per provider instance; a value that cannot be used is reported as one line per
variable (:class:`~resoto_tasks.errors.ConfigurationError`), the way the core reports its own.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from resoto_tasks.errors import ConfigurationError

ACCOUNT_ID = re.compile(r"^\d{12}$")
REGION_NAME = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
ROLE_NAME = re.compile(r"^[\w+=,.@/-]{1,64}$")


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class ProtectionCheck(StrEnum):
    """Which instances have their termination protection read (one API call per instance)."""

    expiring = "expiring"
    """Instances with an expiry tag: every one the expiry cleanup could delete. Others are shown
    unprotected, and AWS still refuses to terminate them if a hook marks them (the ledger then
    says ``OperationNotPermitted``)."""
    all = "all"
    """Every instance, so the store's protected flag and metric are exact."""


class AwsSettings(BaseSettings):
    """Where and how the ``aws`` provider collects; every field is ``RESOTO_AWS_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="RESOTO_AWS_", extra="ignore", frozen=True)

    accounts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Account ids to collect by assuming ``role_name`` in each; empty: the credentials' own account."""
    role_name: str | None = None
    """The role assumed in every listed account (``arn:aws:iam::<id>:role/<name>``)."""
    regions: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Regions to collect; empty: every region enabled for the account (``ec2:DescribeRegions``)."""
    region_concurrency: int = Field(default=4, ge=1, le=64)
    """Regions of one account collected at the same time."""
    endpoint_url: str | None = None
    """Send every API call here (moto, LocalStack) instead of AWS."""
    home_region: str = "us-east-1"
    """Region of the account-wide calls (STS, DescribeRegions, S3 ListBuckets)."""
    role_session_duration_s: int = Field(default=3600, ge=900, le=43_200)
    """Lifetime of assumed-role credentials; botocore renews them before they run out."""
    max_attempts: int = Field(default=10, ge=1, le=50)
    """Attempts per API call, the first included: botocore's adaptive retry mode retries throttling
    and transient errors (with client-side rate limiting) until then."""
    delete_wait_s: float = Field(default=300.0, ge=0, le=3600)
    """How long a delete waits for an instance to be terminated or a load balancer to be gone
    before what they use may be deleted."""
    delete_poll_s: float = Field(default=5.0, gt=0, le=60)
    termination_protection: ProtectionCheck = ProtectionCheck.expiring
    """Which instances have their EC2 termination protection read (see :class:`ProtectionCheck`)."""
    attribute_concurrency: int = Field(default=8, ge=1, le=64)
    """Per-instance attribute calls of one region made at the same time (they are latency-bound)."""
    call_log: str | None = None
    """A file to which the IAM action of every API call is appended (audits, the IAM policy test)."""

    @field_validator("accounts", "regions", mode="before")
    @classmethod
    def _csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("accounts")
    @classmethod
    def _account_ids(cls, value: list[str]) -> list[str]:
        bad = [a for a in value if not ACCOUNT_ID.match(a)]
        if bad:
            raise ValueError(f"account ids are 12 digits; not: {', '.join(repr(b[:20]) for b in bad[:5])}")
        return list(dict.fromkeys(value))

    @field_validator("regions")
    @classmethod
    def _region_names(cls, value: list[str]) -> list[str]:
        bad = [r for r in value if not REGION_NAME.match(r)]
        if bad:
            raise ValueError(f"not region names such as us-east-1: {', '.join(repr(b[:30]) for b in bad[:5])}")
        return list(dict.fromkeys(value))

    @field_validator("home_region")
    @classmethod
    def _home_region(cls, value: str) -> str:
        if not REGION_NAME.match(value):
            raise ValueError(f"not a region name such as us-east-1: {value[:30]!r}")
        return value

    @field_validator("role_name")
    @classmethod
    def _role_name(cls, value: str | None) -> str | None:
        if value and not ROLE_NAME.match(value):  # empty, as compose files pass unset ones: none
            raise ValueError("a role name is 1-64 letters, digits or +=,.@_-/")
        return value or None

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("an endpoint is a URL such as http://127.0.0.1:5000")
        return value or None

    @model_validator(mode="after")
    def _role_for_several_accounts(self) -> AwsSettings:
        if len(self.accounts) > 1 and not self.role_name:
            raise ValueError("RESOTO_AWS_ACCOUNTS lists several accounts: set RESOTO_AWS_ROLE_NAME to assume in each")
        return self


def load_settings() -> AwsSettings:
    """The settings from the environment.

    Raises:
        ConfigurationError: one line per unusable variable, naming it; values are not echoed whole.
    """
    try:
        return AwsSettings()
    except ValidationError as exc:
        raise ConfigurationError([_problem(err) for err in exc.errors()]) from None
    except SettingsError as exc:
        raise ConfigurationError([f"RESOTO_AWS_*: {exc}"]) from None


def _problem(err: Any) -> str:
    loc = err.get("loc") or ()
    message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    if not loc:  # a model-level check names its variables itself
        return message
    return f"RESOTO_AWS_{str(loc[0]).upper()}: {message}"
