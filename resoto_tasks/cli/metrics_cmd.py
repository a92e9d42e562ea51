"""``resoto-tasks metrics ...``: check metric definitions before a metrics worker loads them.

The definitions live in ``worker.metrics``; the core never imports ``worker/`` at import time, so
the command imports it when it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from resoto_tasks.cli.common import EXIT_USAGE, JsonOpt, console, err_console, handle_errors, print_json

app = typer.Typer(help="Metric definitions for the metrics workers (/metrics).", no_args_is_help=True)


@app.command()
@handle_errors
def validate(
    file: Annotated[
        Path, typer.Argument(metavar="FILE", help="A metric definitions file (as RESOTO_METRICS_FILE names).")
    ],
    json_: JsonOpt = False,
) -> None:
    """Check a definitions file: one line per problem naming the file, the field and what is wrong.

    Exits 0 when every definition is valid, 2 otherwise.
    """
    from worker.metrics.definitions import MetricsFileErrors, builtin_definitions, load_file

    try:
        definitions = load_file(file)
    except MetricsFileErrors as exc:
        if json_:
            print_json([{"path": p.path, "field": p.field, "problem": p.problem} for p in exc.problems])
        for problem in exc.problems:
            err_console.print(f"[bold red]error:[/] {escape(str(problem))}", soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None
    builtins = {d.name for d in builtin_definitions()}
    if json_:
        print_json(
            [{**d.model_dump(mode="json"), "served_as": d.exposed_name, "replaces_builtin": d.name in builtins}
             for d in definitions]
        )  # fmt: skip
        return
    for d in definitions:
        note = "  (replaces the built-in)" if d.name in builtins else ""
        what = f"sum of {d.attribute}" if d.attribute else d.aggregate.value
        labels = ", ".join(label.value for label in d.group_by)
        console.print(f"ok {d.exposed_name} {d.type.value}: {what} by {labels}{note}", markup=False, soft_wrap=True)
    console.print(f"{file}: {len(definitions)} definition(s) valid", markup=False, soft_wrap=True)
