"""Redis URLs: mask the password for anything printed or logged, and reject what is not a Redis URL.

Its own module (no imports from the project) because settings validate URLs and the Redis
connection module, which reads settings, masks them.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

REDIS_SCHEMES = ("redis", "rediss", "unix")


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` so it can be logged or printed."""
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
    if parts.scheme not in REDIS_SCHEMES:
        raise ValueError(f"{mask_url(url)} is not a Redis URL: it must start with redis://, rediss:// or unix://")
    if parts.scheme == "unix":
        return url
    masked = mask_url(url)
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{masked}: the port must be a number from 1 to 65535") from None
    if port == 0:
        raise ValueError(f"{masked}: the port must be a number from 1 to 65535")
    if not parts.hostname:
        raise ValueError(f"{masked}: no host")
    database = parts.path.strip("/")
    if database and not database.isdigit():
        raise ValueError(f"{masked}: the database {database!r} is not a number")
    return url
