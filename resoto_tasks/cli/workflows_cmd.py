"""``resoto-tasks workflows ...``: list, show, validate, add, remove."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from resoto_tasks import views, workflows
from resoto_tasks.cli.common import EXIT_USAGE, JsonOpt, WorkflowArg, console, err_console, handle_errors, print_json
from resoto_tasks.cli.render import workflows_table

app = typer.Typer(help="Workflow definitions: built-in, from files, added at runtime.", no_args_is_help=True)


@app.command("list")
@handle_errors
def list_(json_: JsonOpt = False) -> None:
    """List every workflow."""
    found = views.workflows()
    if json_:
        print_json([wf.model_dump(mode="json") for wf in found])
        return
    console.print(workflows_table(found))
    for problem in workflows.catalogue.problems():
        err_console.print(f"[yellow]warning:[/] ignored: {escape(str(problem))}")


@app.command()
@handle_errors
def show(name: WorkflowArg, json_: JsonOpt = False) -> None:
    """Show one workflow with its steps in run order."""
    wf = workflows.catalogue.get(name)
    if json_:
        print_json(wf.model_dump(mode="json"))
        return
    console.print(workflows_table([wf]))
    for i, step in enumerate(wf.steps):
        console.print(
            f"  {i + 1:>2}. {step.name:<28} action={step.action} timeout={step.timeout_s:g}s "
            f"on_error={step.on_error.value}"
        )


@app.command()
@handle_errors
def validate(
    paths: Annotated[list[Path], typer.Argument(metavar="FILE", help="Workflow YAML files.")], json_: JsonOpt = False
) -> None:
    """Check workflow files; one line per problem naming the file, the field and what is wrong."""
    found, problems = workflows.validate_files(paths)
    if json_:
        print_json(
            {
                "valid": [d.name for d in found],
                "problems": [{"path": p.path, "field": p.field, "problem": p.problem} for p in problems],
            }
        )
    else:
        for d in found:
            console.print(f"[green]ok[/] {escape(d.name)}")
        for p in problems:
            err_console.print(f"[bold red]error:[/] {escape(str(p))}", soft_wrap=True)
    if problems:
        raise typer.Exit(EXIT_USAGE)


@app.command()
@handle_errors
def add(
    path: Annotated[Path, typer.Argument(metavar="FILE", help="A workflow YAML file.")], json_: JsonOpt = False
) -> None:
    """Store a workflow (validated); its schedule follows within one beat tick."""
    definition = workflows.add(path)
    if json_:
        print_json(definition.model_dump(mode="json"))
        return
    console.print(f"added workflow [bold]{escape(definition.name)}[/]")


@app.command()
@handle_errors
def remove(name: WorkflowArg) -> None:
    """Remove a workflow added at runtime (built-ins cannot be removed)."""
    workflows.remove(name)
    console.print(f"removed workflow [bold]{escape(name)}[/]")
