"""``resoto-tasks web``: serve the console with uvicorn, refusing an open console off loopback."""

from __future__ import annotations

import uvicorn

from resoto_tasks.errors import ResotoError
from resoto_tasks.settings import get_settings
from resoto_tasks.web.app import create_app
from resoto_tasks.web.settings import get_web_settings, is_loopback


class Refused(ResotoError):
    """Listening beyond loopback without a token or basic-auth credentials."""


def serve(host: str | None = None, port: int | None = None, log_level: str = "info") -> None:
    """Serve until interrupted.

    Raises:
        Refused: ``host`` is not a loopback address and neither ``RESOTO_WEB_TOKEN`` nor
            ``RESOTO_WEB_BASIC_AUTH`` is set.
        ConfigurationError: a ``RESOTO_*`` value cannot be used.
    """
    get_settings()  # the core's RESOTO_* too: a bad value stops here, not on the first request
    settings = get_web_settings()
    host = host or settings.host
    port = port or settings.port
    if not is_loopback(host) and not settings.protected:
        raise Refused(
            f"refusing to serve on {host}: set RESOTO_WEB_TOKEN (or RESOTO_WEB_BASIC_AUTH=user:password) "
            "to listen beyond 127.0.0.1"
        )
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, access_log=False)
