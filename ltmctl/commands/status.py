"""`ltmctl status`: what exists on Google Cloud, and whether it matches the config."""

from __future__ import annotations

from typing import Annotated, Literal

import typer


def status(
    ctx: typer.Context,
    output: Annotated[Literal["table", "json"], typer.Option("--output", "-o", help="Format on stdout.")] = "table",
) -> None:
    """Show each resource of the environment: ok (exists, matches the config), missing, or drifted (and which
    fields). Read-only.

    Example: ltmctl --env dev status --output json
    """
    from ltmctl import ui
    from ltmctl.gcp import provisioning
    from ltmctl.gcp.clients import GcpClients

    resolved = ctx.obj.load()
    provisioning.require_gcp(resolved, "status")
    with GcpClients.for_env(resolved) as clients:
        target = provisioning.target(resolved, clients, "status")
        with ui.err.status(f"Reading {target.project}…"):
            rows = provisioning.status_rows(provisioning.plan(target))
    if output == "json":
        ui.emit(rows, "json")
    else:
        from rich.markup import escape
        from rich.table import Table

        styles = {"ok": "green", "missing": "red", "drifted": "yellow"}
        table = Table("kind", "resource", "state", "drifted fields")
        for row in rows:
            s = styles[row["state"]]
            table.add_row(row["kind"], escape(row["resource"]), f"[{s}]{row['state']}[/{s}]",
                          ", ".join(row["drift"]))
        ui.out.print(table)
    counts = {state: sum(r["state"] == state for r in rows) for state in ("ok", "missing", "drifted")}
    ui.err.print(f"{counts['ok']} ok, {counts['missing']} missing, {counts['drifted']} drifted"
                 + ("" if counts["ok"] == len(rows) else f"; `ltmctl --env {resolved.name} provision` fixes that."))
