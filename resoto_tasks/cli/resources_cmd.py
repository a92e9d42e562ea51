"""``resoto-tasks resources ...``: what the store holds, for people and for scripts."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from resoto_tasks import views
from resoto_tasks.cli.common import JsonOpt, console, handle_errors, print_json
from resoto_tasks.store import ResourceStore

app = typer.Typer(help="Collected resources: counts and listings.", no_args_is_help=True)


@app.command()
@handle_errors
def count(json_: JsonOpt = False) -> None:
    """Totals: all, by kind, by account, expired, marked, protected."""
    counts = views.resource_counts()
    if json_:
        print_json(counts.model_dump(mode="json"))
        return
    console.print(
        f"total {counts.total}  expired {counts.expired}  marked {counts.marked}  "
        f"protected {counts.protected}  malformed expiry tags {counts.malformed}"
    )
    for title, values in (("kind", counts.by_kind), ("account", counts.by_account)):
        table = Table(title, "resources", box=None)
        for name, n in sorted(values.items()):
            table.add_row(escape(name), str(n))
        console.print(table)


@app.command("list")
@handle_errors
def list_(
    kind: Annotated[str | None, typer.Option(help="Only this kind.")] = None,
    account: Annotated[str | None, typer.Option(help="Only this account (provider/account or account).")] = None,
    marked: Annotated[bool, typer.Option("--marked", help="Only resources marked for cleanup.")] = False,
    expired: Annotated[bool, typer.Option("--expired", help="Only expired resources.")] = False,
    limit: Annotated[int, typer.Option(help="At most N resources.")] = 100,
    json_: JsonOpt = False,
) -> None:
    """Resources with their expiry and cleanup mark."""
    provider = None
    if account and "/" in account:
        provider, account = account.split("/", 1)
    found = ResourceStore().list_resources(
        kind=kind, provider=provider, account=account, marked=marked, expired=expired, limit=limit
    )
    if json_:
        print_json([v.model_dump(mode="json") for v in found])
        return
    table = Table("account", "kind", "id", "name", "region", "expires", "mark", "protected", box=None)
    for v in found:
        r = v.resource
        table.add_row(
            f"{r.provider}/{r.account}",
            r.kind,
            r.id,
            escape(r.name),
            r.region,
            v.expires_at.isoformat() if v.expires_at else "",
            v.mark.reason if v.mark else "",
            "yes" if r.protected else "",
        )
    console.print(table)
