"""Sessions and clients per account: boto3's credential chain, assumed roles that renew
themselves, adaptive retries (HTML error pages included), one optional endpoint for every service.

One :class:`AccountSession` per account and provider instance. boto3 clients are thread-safe but
creating them from one session is not, so clients are made under a lock and cached per (service,
region): the region threads of a collect and the deleting threads of a cleanup share them.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config
from botocore.credentials import CredentialProvider, RefreshableCredentials
from botocore.exceptions import BotoCoreError, ClientError

from worker.providers.aws.calls import CallLog
from worker.providers.aws.settings import AwsSettings

if TYPE_CHECKING:
    from mypy_boto3_sts import STSClient

log = logging.getLogger(__name__)

SESSION_NAME = "resoto-tasks"
_LOADER = botocore.loaders.create_loader()
"""One loader (it caches parsed service models) for every session of the process: a new session
would otherwise parse the EC2 model again, about 0.3 s each time an account is collected."""


def _core_session() -> botocore.session.Session:
    core = botocore.session.get_session()
    core.register_component("data_loader", _LOADER)
    return core


def client_config(settings: AwsSettings, region: str) -> Config:
    """Adaptive retry mode: botocore backs off on throttling by itself, nothing retries by hand."""
    return Config(
        region_name=region,
        retries={"mode": "adaptive", "total_max_attempts": settings.max_attempts},
        max_pool_connections=max(10, settings.region_concurrency * (settings.attribute_concurrency + 1)),
        user_agent_extra="resoto-tasks",
    )


def retry_html_errors(client: Any) -> None:
    """Let botocore's retry mode retry a server error that came as an HTML page.

    botocore takes a 5xx for a generic, retryable server error only when its body is empty or
    starts with ``<html>``; a page that starts otherwise (``<!doctype html>``, as proxies and
    WSGI servers send) fails XML parsing with "Further retries may succeed" and is never retried.
    Seen: one instance left running by a cleanup because an endpoint answered
    ``TerminateInstances`` once with such a page. The page is dropped before parsing, so the
    response is the generic error botocore retries (with the client's backoff and attempt limit).
    """
    client.meta.events.register("before-parse", _drop_html_error_page)


def _drop_html_error_page(response_dict: dict[str, Any], **_: Any) -> None:
    body = response_dict.get("body")
    status = response_dict.get("status_code", 0)
    if (
        status >= 500
        and isinstance(body, bytes)
        and body.lstrip()[:14].lower().startswith((b"<!doctype html", b"<html"))
    ):
        log.debug("aws: a %s answer with an HTML page, retried as a server error", status)
        response_dict["body"] = b""


class _AssumedRole(CredentialProvider):
    """Credentials of an assumed role as botocore's RefreshableCredentials: renewed by botocore
    (advisory 15 min, mandatory 10 min before expiry) on the next call, so a collect or cleanup
    longer than the role session never fails on expired credentials."""

    METHOD = "resoto-assume-role"
    CANONICAL_NAME = "resoto-assume-role"

    def __init__(self, sts: STSClient, role_arn: str, duration_s: int) -> None:
        super().__init__()
        self._sts = sts
        self._role_arn = role_arn
        self._duration_s = duration_s
        self.fetches = 0

    def _fetch(self) -> dict[str, str]:
        self.fetches += 1
        creds = self._sts.assume_role(
            RoleArn=self._role_arn, RoleSessionName=SESSION_NAME, DurationSeconds=self._duration_s
        )["Credentials"]
        expiration: datetime = creds["Expiration"]
        log.info("assumed %s until %s", self._role_arn, expiration.isoformat())
        return {
            "access_key": creds["AccessKeyId"],
            "secret_key": creds["SecretAccessKey"],
            "token": creds["SessionToken"],
            "expiry_time": expiration.isoformat(),
        }

    def load(self) -> RefreshableCredentials:
        return RefreshableCredentials.create_from_metadata(
            metadata=self._fetch(), refresh_using=self._fetch, method=self.METHOD
        )


class AccountSession:
    """Clients for one account; the credentials are the default chain's or an assumed role's."""

    def __init__(self, settings: AwsSettings, account: str, role_arn: str | None, calls: CallLog) -> None:
        """Assumes the role at once, so a role that cannot be assumed fails here.

        Raises:
            ClientError, BotoCoreError: the role could not be assumed (or no credentials).
        """
        self.settings = settings
        self.account = account
        self.role_arn = role_arn
        self._calls = calls
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str], Any] = {}
        core = _core_session()
        self.role: _AssumedRole | None = None
        if role_arn is not None:
            sts = base_client(settings, "sts", calls)
            self.role = _AssumedRole(sts, role_arn, settings.role_session_duration_s)
            resolver = core.get_component("credential_provider")
            resolver.insert_before("env", self.role)
            if core.get_credentials() is None:  # pragma: no cover - load() raises instead
                raise RuntimeError(f"no credentials from {role_arn}")
        self._session = boto3.Session(botocore_session=core, region_name=settings.home_region)

    def client(self, service: str, region: str | None = None) -> Any:
        """A cached client of ``service`` in ``region`` (default: the home region)."""
        where = region or self.settings.home_region
        key = (service, where)
        with self._lock:
            found = self._clients.get(key)
            if found is None:
                found = self._session.client(
                    service,  # type: ignore[call-overload]
                    endpoint_url=self.settings.endpoint_url,
                    config=client_config(self.settings, where),
                )
                self._calls.attach(found)
                retry_html_errors(found)
                self._clients[key] = found
            return found


def base_client(settings: AwsSettings, service: str, calls: CallLog, region: str | None = None) -> Any:
    """A client with the default credential chain (environment, profile, instance role)."""
    where = region or settings.home_region
    found = boto3.Session(botocore_session=_core_session(), region_name=where).client(
        service,  # type: ignore[call-overload]
        endpoint_url=settings.endpoint_url,
        config=client_config(settings, where),
    )
    calls.attach(found)
    retry_html_errors(found)
    return found


def error_code(exc: BaseException) -> str:
    """AWS's error code (``DependencyViolation``), or the botocore exception's class name."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or "ClientError")
    if isinstance(exc, BotoCoreError):
        return type(exc).__name__
    return type(exc).__name__


def error_text(exc: BaseException) -> str:
    """``Code: message`` on one line, short enough for a ledger entry."""
    message = str(exc.response.get("Error", {}).get("Message") or exc) if isinstance(exc, ClientError) else str(exc)
    return f"{error_code(exc)}: {' '.join(message.split())}"[:400]
