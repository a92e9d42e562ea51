"""Who may ask, and which requests may change something.

* **Authentication.** Without ``RESOTO_WEB_TOKEN`` and ``RESOTO_WEB_BASIC_AUTH`` every request is
  served: :mod:`.server` only allows that on a loopback address. With them, the API takes
  ``Authorization: Bearer <token>`` (or basic auth), the pages a login cookie (an HMAC of the
  token, so it changes with the token and needs no session store) or basic auth; anything else
  gets 401, the pages with the login form.
* **CSRF.** Every change is a POST (or DELETE) and none is a GET. A change is refused (403) when
  the browser says it comes from another site (``Sec-Fetch-Site``, else ``Origin`` against
  ``Host``), and a request that looks like a browser's (it carries an ``Origin``, a
  ``Sec-Fetch-Site`` or cookies) must also send the CSRF token: the ``resoto_csrf`` cookie's value,
  in the form field ``csrf_token`` or the header ``X-CSRF-Token`` (double submit). A bearer token
  is never sent by a browser on its own, so a request that carries one needs neither.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from fastapi import Request

from resoto_tasks.web.settings import WebSettings

LOGIN_COOKIE = "resoto_login"
CSRF_COOKIE = "resoto_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OPEN_PATHS = frozenset({"/login", "/health"})


class CsrfRefused(Exception):
    """A state change that fails the CSRF rules; the message says which."""


def login_value(settings: WebSettings) -> str:
    """The login cookie's value: an HMAC of the token (never the token itself)."""
    assert settings.token is not None
    return hmac.new(settings.token.get_secret_value().encode(), b"resoto-web-login", hashlib.sha256).hexdigest()


def token_matches(settings: WebSettings, given: str) -> bool:
    return settings.token is not None and hmac.compare_digest(
        given.encode(), settings.token.get_secret_value().encode()
    )


def _basic_matches(settings: WebSettings, encoded: str) -> bool:
    if settings.basic_auth is None:
        return False
    try:
        given = base64.b64decode(encoded, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return False
    return hmac.compare_digest(given.encode(), settings.basic_auth.get_secret_value().encode())


def authenticate(request: Request, settings: WebSettings) -> str | None:
    """How the request proved who it is: ``bearer``, ``basic``, ``login`` (the cookie); ``open``
    when nothing is required; ``None`` if it did not."""
    if not settings.protected:
        return "open"
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token_matches(settings, value.strip()):
        return "bearer"
    if scheme.lower() == "basic" and _basic_matches(settings, value.strip()):
        return "basic"
    cookie = request.cookies.get(LOGIN_COOKIE)
    if settings.token is not None and cookie and hmac.compare_digest(cookie.encode(), login_value(settings).encode()):
        return "login"
    return None


LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})


def loopback_host(host: str | None) -> bool:
    """Whether a ``Host`` header names this machine's loopback (with or without a port).

    An open console (no token, no basic auth) answers only such requests: a hostile page whose
    domain is rebound to 127.0.0.1 (DNS rebinding) is same-origin for the browser, so Origin and
    CSRF checks pass, but its requests still carry the hostile domain in ``Host``.
    """
    if not host:
        return False
    host = host.strip().lower()
    name = host[: host.index("]") + 1] if host.startswith("[") and "]" in host else host.partition(":")[0]
    return name in LOOPBACK_NAMES


def is_open_path(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith("/static/")


def cross_site(request: Request) -> str | None:
    """Why a state change comes from another site, or ``None``."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return (
            None
            if fetch_site in ("same-origin", "none")
            else f"cross-site request refused (Sec-Fetch-Site: {fetch_site})"
        )
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        if urlsplit(origin).netloc != request.headers.get("host", ""):
            return "cross-site request refused (Origin does not match Host)"
    elif origin == "null":
        return "cross-site request refused (Origin: null)"
    return None


def looks_like_a_browser(request: Request) -> bool:
    headers = request.headers
    return "origin" in headers or "sec-fetch-site" in headers or "cookie" in headers


def csrf_token(request: Request) -> str:
    """The token this browser's forms send (its cookie's value, or a new one the response sets)."""
    token: str | None = getattr(request.state, "csrf", None)
    if token is None:
        token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
        request.state.csrf = token
    return token


async def check_csrf(request: Request) -> None:
    """A FastAPI dependency of every route that changes something.

    Raises:
        CsrfRefused: see the module docstring.
    """
    if request.method in SAFE_METHODS:
        raise CsrfRefused("a change must be a POST")  # pragma: no cover - routes never use it on GET
    if getattr(request.state, "auth", None) == "bearer" or not looks_like_a_browser(request):
        return
    expected = request.cookies.get(CSRF_COOKIE, "")
    given = request.headers.get(CSRF_HEADER, "")
    if not given and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else ""
    if not expected or not given or not hmac.compare_digest(expected.encode(), given.encode()):
        raise CsrfRefused("missing or wrong CSRF token: reload the page and try again")
