"""Redis and broker URLs: mask the password for anything printed or logged, reject what cannot work.

Its own module (no imports from the project) because settings validate URLs and the Redis
connection module, which reads settings, masks them.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

REDIS_SCHEMES = ("redis", "rediss", "unix")
AMQP_SCHEMES = ("amqp", "amqps")
"""RabbitMQ, for the broker role only: results, schedule, run state and store stay in Redis."""


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` so it can be logged or printed (each URL of
    a ``;``-joined failover list, as kombu's sentinel broker URL is)."""
    if ";" in url:
        return ";".join(mask_url(part) for part in url.split(";"))
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]  # as written: a bad port is shown, not parsed
    netloc = f"{user}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def check_redis_url(url: str) -> str:
    """``url`` if redis-py can use it as written; else ValueError saying why (password masked).

    redis-py rejects an unknown scheme or a bad port only when it connects, with a traceback, and
    silently uses database 0 for a database that is not a number: both are caught here, when the
    settings are read.
    """
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ValueError(f"not a URL ({exc})") from None
    if parts.scheme in AMQP_SCHEMES:
        raise ValueError(f"{mask_url(url)}: amqp:// and amqps:// are accepted for RESOTO_BROKER_URL only")
    if parts.scheme not in REDIS_SCHEMES:
        raise ValueError(f"{mask_url(url)} is not a Redis URL: it must start with redis://, rediss:// or unix://")
    if parts.scheme == "unix":
        return url
    _check_netloc(url)
    database = parts.path.strip("/")
    if database and not database.isdigit():
        raise ValueError(f"{mask_url(url)}: the database {database!r} is not a number")
    return url


def check_broker_url(url: str) -> str:
    """A Redis URL as :func:`check_redis_url` wants it, or an ``amqp://``/``amqps://`` URL of RabbitMQ."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ValueError(f"not a URL ({exc})") from None
    if parts.scheme not in AMQP_SCHEMES:
        if parts.scheme not in REDIS_SCHEMES:
            raise ValueError(
                f"{mask_url(url)} is not a broker URL: it must start with redis://, rediss://, unix://, "
                "amqp:// or amqps://"
            )
        return check_redis_url(url)
    _check_netloc(url)
    return url


def is_amqp(url: str) -> bool:
    return url.split("://", 1)[0] in AMQP_SCHEMES


def check_host_port(address: str) -> tuple[str, int]:
    """``host:port`` (a sentinel's address) as a pair; ValueError saying what is wrong."""
    host, sep, port = address.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{address!r} is not host:port")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{address!r}: the port must be a number from 1 to 65535")
    return host.strip("[]"), int(port)


def _check_netloc(url: str) -> None:
    parts = urlsplit(url)
    masked = mask_url(url)
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{masked}: the port must be a number from 1 to 65535") from None
    if port == 0:
        raise ValueError(f"{masked}: the port must be a number from 1 to 65535")
    if not parts.hostname:
        raise ValueError(f"{masked}: no host")
