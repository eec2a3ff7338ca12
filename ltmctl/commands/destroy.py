"""`ltmctl destroy`: delete what `provision` made, in reverse dependency order."""

from __future__ import annotations

from typing import Annotated, Literal

import typer


def destroy(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking.")] = False,
    delete_data: Annotated[bool, typer.Option("--delete-data", help="Also delete the dataset and table "
                                                                    "(every stored event).")] = False,
    output: Annotated[Literal["table", "json"], typer.Option("--output", "-o", help="Format of the plan.")] = "table",
) -> None:
    """Delete the environment's resources in reverse dependency order; the dataset and table (the data) are kept
    unless --delete-data, and APIs stay enabled.

    Example: ltmctl --env dev destroy --yes
    """
    from ltmctl import ui
    from ltmctl.commands.provision import confirm, render_changes
    from ltmctl.gcp import provisioning
    from ltmctl.gcp.clients import GcpClients

    resolved = ctx.obj.load()
    provisioning.require_gcp(resolved, "destroy")
    with GcpClients.for_env(resolved) as clients:
        target = provisioning.target(resolved, clients, "destroy")
        with ui.err.status(f"Reading what exists in {target.project}…"):
            changes = provisioning.destroy_plan(target, delete_data)
        render_changes(provisioning.change_rows(changes), output)
        doomed = [c for c in changes if c.action == "delete"]
        if not doomed:
            ui.err.print(f"Nothing to delete in {target.project}.")
            return
        data = " including the dataset and every stored event" if delete_data else ""
        confirm(yes, "destroy", f"Delete {len(doomed)} resource(s) from project {target.project}{data}?")
        provisioning.destroy(target, changes, on_change=lambda c: ui.err.print(
            f"  [red]✗[/red] deleted {c.resource.kind} {c.resource.key}"))
    ui.err.print(f"[bold]Destroyed[/bold] {len(doomed)} resource(s) in {target.project}.")
    if not delete_data:
        p = resolved.pipeline
        ui.err.print(f"Kept dataset {p.dataset} and table {p.table} (the data); `--delete-data` deletes them. "
                     "APIs stay enabled.")
