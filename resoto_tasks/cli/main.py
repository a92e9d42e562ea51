"""The ``resoto-tasks`` entry point: one typer app with a sub-app per noun."""

from __future__ import annotations

import sys

import typer

from resoto_tasks import logs
from resoto_tasks.cli import (
    metrics_cmd,
    misc_cmd,
    resources_cmd,
    runs_cmd,
    schedule_cmd,
    up_cmd,
    web_cmd,
    workflows_cmd,
)
from resoto_tasks.cli.common import EXIT_USAGE, announce_failover_waits, print_errors
from resoto_tasks.errors import ConfigurationError

app = typer.Typer(
    name="resoto-tasks",
    help="Resoto's workflows on Celery: run, inspect and schedule collect, cleanup and metrics.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(workflows_cmd.app, name="workflows")
app.add_typer(runs_cmd.app, name="runs")
app.add_typer(misc_cmd.subscribers_app, name="subscribers")
app.add_typer(misc_cmd.events_app, name="events")
app.add_typer(resources_cmd.app, name="resources")
app.add_typer(schedule_cmd.app, name="schedule")
app.add_typer(metrics_cmd.app, name="metrics")
app.command("run")(runs_cmd.run_command)
app.command("up")(up_cmd.up)
app.command("web")(web_cmd.web)


def main(argv: list[str] | None = None) -> None:
    """The console script; ``argv`` (without the program name) defaults to ``sys.argv``.

    It always ends with ``SystemExit`` carrying the exit code, as click's standalone mode does.
    """
    try:
        logs.configure_cli()
        announce_failover_waits()
        app(args=argv, prog_name="resoto-tasks")
    except ConfigurationError as exc:  # read first by configure_cli, before any command runs
        print_errors(exc.problems)
        sys.exit(EXIT_USAGE)


if __name__ == "__main__":
    main()
