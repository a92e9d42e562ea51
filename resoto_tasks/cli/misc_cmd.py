"""``resoto-tasks subscribers ...`` and ``resoto-tasks events ...``."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from resoto_tasks import events, runtime, views
from resoto_tasks.cli.common import EXIT_USAGE, JsonOpt, console, fail, handle_errors, print_json

subscribers_app = typer.Typer(help="Who answers which action.", no_args_is_help=True)
events_app = typer.Typer(help="Emit and read events.", no_args_is_help=True)


@subscribers_app.command("list")
@handle_errors
def list_subscribers(json_: JsonOpt = False) -> None:
    """Live subscriptions (held by at least one worker), by action."""
    found = views.subscriber_views()
    if json_:
        print_json([s.model_dump(mode="json") for s in found])
        return
    table = Table("action", "subscriber", "task", "queue", "timeout", "blocking", "workers", box=None)
    for s in found:
        table.add_row(
            s.action,
            escape(s.subscriber_id),
            s.task,
            s.queue,
            f"{s.timeout_s:g}s",
            "yes" if s.wait_for_completion else "no",
            ", ".join(s.holders),
        )
    console.print(table)


@events_app.command("emit")
@handle_errors
def emit(
    name: Annotated[str, typer.Argument(metavar="EVENT", help="The event name, e.g. start_collect_workflow.")],
    data: Annotated[str | None, typer.Option(help="Event data as a JSON object.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Emit an event; workflows whose event trigger matches start."""
    payload = {}
    if data:
        try:
            payload = json.loads(data)
        except json.JSONDecodeError as exc:
            fail(f"--data is not valid JSON: {exc}", EXIT_USAGE)
        if not isinstance(payload, dict):
            fail("--data must be a JSON object", EXIT_USAGE)
    results = runtime.engine().emit(name, payload)
    if json_:
        print_json([r.model_dump(mode="json") for r in results])
        return
    if not results:
        console.print(f"emitted {escape(name)}; no workflow is triggered by it")
    for r in results:
        detail = f" ({r.message})" if r.message and r.message != r.status.value else ""
        console.print(escape(f"{r.workflow}: {r.status.value} {r.run_id or ''}".rstrip() + detail))


@events_app.command("list")
@handle_errors
def list_events(
    limit: Annotated[int, typer.Option(help="The newest N events.")] = 50,
    json_: JsonOpt = False,
) -> None:
    """The newest events and run/step transitions."""
    found = events.recent(limit)
    if json_:
        print_json(found)
        return
    for e in found:
        console.print(
            escape(f"{e.get('at', '')}  {e.get('kind', ''):<14} {e.get('name', '')} {json.dumps(e.get('data'))}")
        )
