"""Redis Sentinel: each role's library told, in its own terms, where to find the primary.

``RESOTO_REDIS_SENTINELS`` (``host:port,...``) and ``RESOTO_REDIS_SENTINEL_MASTER`` name the
sentinels and the primary they monitor; the primary's own password, user and database number come
from ``RESOTO_REDIS_URL`` (its host and port are not used then), the sentinels' password from
``RESOTO_REDIS_SENTINEL_PASSWORD``. Every role without a URL of its own goes through the sentinels:

=============== ======================================================================================
role            what its library expects
=============== ======================================================================================
broker          kombu: ``sentinel://:pw@h1:p1/db;sentinel://...`` + transport option ``master_name``
result backend  Celery's ``SentinelBackend`` (our quiet subclass), the same URL + ``master_name``
redbeat         ``redis-sentinel://`` + ``redbeat_redis_options`` ``sentinels``, ``service_name``
run state/store redis-py ``Sentinel(...).master_for(name)`` (:func:`master_client`)
=============== ======================================================================================

All of them ask the sentinels again after a connection error, so a promoted replica is found
without a restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import redis
from redis.sentinel import Sentinel

from resoto_tasks.failover import redis_retry
from resoto_tasks.settings import Settings
from resoto_tasks.urls import check_host_port

SENTINEL_SOCKET_TIMEOUT_S = 2.0
"""A sentinel that does not answer within this is skipped for the next one."""


@dataclass(frozen=True)
class SentinelTarget:
    """Where the primary is found, and how to log in to it and to the sentinels."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int
    username: str | None
    password: str | None
    sentinel_password: str | None
    failover_wait_s: float

    @classmethod
    def of(cls, settings: Settings) -> SentinelTarget | None:
        """The target of ``settings``, or None without ``RESOTO_REDIS_SENTINELS``."""
        if not settings.redis_sentinels or not settings.redis_sentinel_master:
            return None
        parts = urlsplit(settings.redis_url)
        database = parts.path.strip("/")
        secret = settings.redis_sentinel_password
        return cls(
            sentinels=tuple(check_host_port(a) for a in settings.redis_sentinels),
            master=settings.redis_sentinel_master,
            db=int(database) if database.isdigit() else 0,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            sentinel_password=secret.get_secret_value() if secret else None,
            failover_wait_s=settings.redis_failover_wait_s,
        )

    def where(self) -> str:
        """For messages and logs: the sentinels and the primary's name, never a password."""
        addresses = ",".join(f"{h}:{p}" for h, p in self.sentinels)
        return f"sentinel://{addresses} (primary {self.master!r})"

    def sentinel_kwargs(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "socket_timeout": SENTINEL_SOCKET_TIMEOUT_S,
            "socket_connect_timeout": SENTINEL_SOCKET_TIMEOUT_S,
        }
        if self.sentinel_password:
            found["password"] = self.sentinel_password
        return found

    # -- Celery: broker and result backend -----------------------------------------------------

    def kombu_url(self) -> str:
        """``sentinel://`` URLs, one per sentinel, joined by ``;`` (kombu's and Celery's form)."""
        auth = ""
        if self.password:
            user = quote(self.username, safe="") if self.username else ""
            auth = f"{user}:{quote(self.password, safe='')}@"
        return ";".join(f"sentinel://{auth}{host}:{port}/{self.db}" for host, port in self.sentinels)

    def transport_options(self) -> dict[str, Any]:
        """What kombu's sentinel transport and Celery's sentinel backend add to their options."""
        return {"master_name": self.master, "sentinel_kwargs": self.sentinel_kwargs()}

    # -- redbeat ---------------------------------------------------------------------------------

    def redbeat_url(self) -> str:
        """redbeat only looks at the scheme; the first sentinel is named for the banner."""
        host, port = self.sentinels[0]
        return f"redis-sentinel://{host}:{port}/{self.db}"

    def redbeat_options(self, socket_timeout_s: float) -> dict[str, Any]:
        options: dict[str, Any] = {
            "sentinels": [list(s) for s in self.sentinels],
            "service_name": self.master,
            "db": self.db,
            "socket_timeout": socket_timeout_s,
            "sentinel_kwargs": self.sentinel_kwargs(),
        }
        if self.password:
            options["password"] = self.password
        if self.username:
            options["username"] = self.username
        return options

    # -- our own clients -------------------------------------------------------------------------

    def master_client(self, **kwargs: Any) -> redis.Redis:
        """A redis-py client of the current primary that retries through a failover."""
        sentinel = Sentinel(list(self.sentinels), sentinel_kwargs=self.sentinel_kwargs())
        return sentinel.master_for(
            self.master,
            db=self.db,
            username=self.username,
            password=self.password,
            retry=redis_retry(self.failover_wait_s),
            **kwargs,
        )
