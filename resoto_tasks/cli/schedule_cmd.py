"""``resoto-tasks schedule ...``: list, pause, resume the time triggers that beat fires.

``beat`` is imported inside the commands: the core never imports it at module import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from resoto_tasks import views
from resoto_tasks.cli.common import (
    EXIT_USAGE,
    JsonOpt,
    WorkflowArg,
    console,
    err_console,
    fail,
    handle_errors,
    print_json,
)

if TYPE_CHECKING:
    from beat.control import ScheduleRow

app = typer.Typer(help="Schedules: the cron and interval triggers beat fires.", no_args_is_help=True)


def _when(value: str | None) -> str:
    """``2026-11-26T10:00:00.123Z`` -> ``2026-11-26 10:00:00Z`` for the table (--json keeps ms)."""
    if not value:
        return ""
    return value[:19].replace("T", " ") + "Z"


def _state(row: ScheduleRow) -> str:
    if row.paused:
        return f"paused: {row.paused_note}" if row.paused_note else "paused"
    return "" if row.scheduled else "no beat has picked it up yet"


@app.command("list")
@handle_errors
def list_(json_: JsonOpt = False) -> None:
    """Every time trigger: next due time, last fired slot, paused and why."""
    rows = views.schedules()
    if json_:
        print_json([row.as_json() for row in rows])
        return
    table = Table(box=None)
    table.add_column("workflow", overflow="fold")
    table.add_column("trigger", overflow="fold")
    table.add_column("next due", no_wrap=True, min_width=20)
    table.add_column("last fired", no_wrap=True, min_width=20)
    table.add_column("state", overflow="fold")
    for row in rows:
        fired = _when(row.last_fired["slot"]) if row.last_fired else ""
        table.add_row(row.workflow, row.trigger_text, _when(row.next_due), fired, _state(row))
    console.print(table)


@app.command()
@handle_errors
def pause(
    name: WorkflowArg,
    note: Annotated[str | None, typer.Option("--note", help="Why; shown by `schedule list`.")] = None,
) -> None:
    """Stop WORKFLOW's cron and interval triggers from firing until `schedule resume`."""
    from beat import control

    try:
        control.pause(name, note)
    except control.NoTimeTrigger as exc:
        fail(str(exc), EXIT_USAGE)
    console.print(f"paused the schedule of [bold]{escape(name)}[/]")


@app.command()
@handle_errors
def resume(name: WorkflowArg) -> None:
    """Let WORKFLOW's triggers fire again from the next slot on; missed slots are not replayed."""
    from beat import control

    if control.resume(name):
        console.print(f"resumed the schedule of [bold]{escape(name)}[/]")
    else:
        err_console.print(f"the schedule of {name} was not paused")
