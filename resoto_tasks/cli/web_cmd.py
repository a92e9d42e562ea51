"""``resoto-tasks web``: the console and the HTTP API (the ``web`` extra)."""

from __future__ import annotations

import importlib.util
from typing import Annotated

import typer

from resoto_tasks.cli.common import EXIT_USAGE, fail, handle_errors

WEB_EXTRA_HINT = "resoto-tasks web needs the web extra (not installed): pip install 'resoto-tasks[web]'"


@handle_errors
def web(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on; beyond loopback only with RESOTO_WEB_TOKEN.")
    ] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port to listen on.")] = None,
) -> None:
    """Serve the web console and the HTTP API (default http://127.0.0.1:8900) until Ctrl-C."""
    if importlib.util.find_spec("fastapi") is None or importlib.util.find_spec("uvicorn") is None:
        fail(WEB_EXTRA_HINT)
    from resoto_tasks.web import server

    try:
        server.serve(host, port)
    except server.Refused as exc:
        fail(str(exc), EXIT_USAGE)
