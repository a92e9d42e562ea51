"""``resoto-tasks run`` and ``resoto-tasks runs ...``: start, watch, list, show, cancel."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated

import typer
from rich.live import Live
from rich.markup import escape

from resoto_tasks import runs, runtime, views
from resoto_tasks.cli.common import (
    EXIT_FAILED,
    EXIT_NOT_STARTED,
    EXIT_OK,
    JsonOpt,
    RunIdArg,
    console,
    err_console,
    fail,
    handle_errors,
    print_json,
)
from resoto_tasks.cli.render import run_timeline, runs_table
from resoto_tasks.models import Run, RunStatus, StartStatus, TriggerInfo, TriggerKind
from resoto_tasks.redis_conn import check
from worker import ledger

app = typer.Typer(help="Runs: history, details, cancel.", no_args_is_help=True)


def wait_for(run_id: str, timeout_s: float | None, live: bool, tick: Callable[[], None] = lambda: None) -> Run | None:
    """Poll the run until it ends; ``None`` if ``timeout_s`` passed first. ``tick`` is called on
    every poll (``up`` watches its children there)."""
    deadline = time.monotonic() + timeout_s if timeout_s else None
    engine = runtime.engine()
    if not live:
        while True:
            run = runs.get(run_id)
            if run.status.finished:
                return engine.view(run_id)
            if deadline and time.monotonic() > deadline:
                return None
            tick()
            time.sleep(0.05)
    with Live(console=console, refresh_per_second=8, transient=False) as display:
        while True:
            run = engine.view(run_id)
            display.update(run_timeline(run))
            if run.status.finished:
                return run
            if deadline and time.monotonic() > deadline:
                return None
            tick()
            time.sleep(0.125)


def exit_code(run: Run | None) -> int:
    return EXIT_OK if run is not None and run.status == RunStatus.succeeded else EXIT_FAILED


def run_document(run: Run) -> dict[str, object]:
    """The JSON of ``runs show --json`` (and of ``GET /api/v1/runs/{id}``): :class:`views.RunDocument`."""
    return views.run_document(run).model_dump(mode="json")


def warn_errors(run: Run) -> None:
    """A run that succeeded with tolerated errors (``on_error: continue``) says so on stderr."""
    if run.status == RunStatus.succeeded and run.has_errors:
        err_console.print(f"warning: run {run.id} succeeded with errors ({escape(run.reason or '')})", soft_wrap=True)


def run_command(
    name: Annotated[str, typer.Argument(metavar="WORKFLOW", help="The workflow to start.")],
    wait: Annotated[bool, typer.Option("--wait", help="Show live progress until the run ends.")] = False,
    timeout: Annotated[float | None, typer.Option(help="With --wait: give up after SECONDS.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Start a run and print its id; with --wait, exit 0 if it succeeded, 1 if not, 3 if not started."""
    _run(name, wait, timeout, json_)


@handle_errors
def _run(name: str, wait: bool, timeout: float | None, json_: bool) -> None:
    check()
    result = runtime.engine().start(name, TriggerInfo(kind=TriggerKind.manual))
    if result.status in (StartStatus.skipped, StartStatus.duplicate):
        if json_:
            print_json(result.model_dump(mode="json"))
        else:
            err_console.print(f"not started: {escape(result.message)}")
        raise typer.Exit(EXIT_NOT_STARTED)
    assert result.run_id is not None
    if not wait:
        if json_:
            print_json(result.model_dump(mode="json"))
        else:
            console.print(result.run_id)
            if result.status == StartStatus.queued:
                err_console.print(escape(result.message))
        return
    if not json_:
        console.print(
            f"run {result.run_id} {result.status.value}"
            + (f": {result.message}" if result.status == StartStatus.queued else "")
        )
    run = wait_for(result.run_id, timeout, live=not json_ and console.is_terminal)
    if run is None:
        if json_:
            print_json(run_document(runtime.engine().view(result.run_id)))
        fail(f"run {result.run_id} did not end within {timeout:g} s" if timeout else "wait ended")
    if json_:
        print_json(run_document(run))
    elif not console.is_terminal:
        console.print(run_timeline(run, ledger.summary(run.id, with_entries=False)))
    warn_errors(run)
    raise typer.Exit(exit_code(run))


@app.command("list")
@handle_errors
def list_(
    workflow: Annotated[str | None, typer.Option(help="Only runs of this workflow.")] = None,
    limit: Annotated[int, typer.Option(help="At most N runs, newest first.")] = 20,
    has_errors: Annotated[bool, typer.Option("--has-errors", help="Only runs with a failed step.")] = False,
    status: Annotated[RunStatus | None, typer.Option(help="Only runs in this status.")] = None,
    json_: JsonOpt = False,
) -> None:
    """List runs, newest first."""
    found = runs.list_runs(workflow, limit, has_errors, status)
    if json_:
        print_json([r.model_dump(mode="json") for r in found])
        return
    console.print(runs_table(found))


@app.command()
@handle_errors
def show(run_id: RunIdArg, json_: JsonOpt = False) -> None:
    """Show a run: its steps as a timeline, each subscriber's answer, the cleanup ledger."""
    run = runtime.engine().view(run_id)
    if json_:
        print_json(run_document(run))
        return
    console.print(run_timeline(run, ledger.summary(run.id, with_entries=False)))


@app.command()
@handle_errors
def cancel(run_id: RunIdArg) -> None:
    """Cancel a run: nothing more is dispatched, running tasks are revoked and see the abort flag."""
    done = runtime.engine().cancel(run_id)
    if done is None:
        fail(f"run {run_id} has already ended")
    console.print(f"cancelled {run_id}")
