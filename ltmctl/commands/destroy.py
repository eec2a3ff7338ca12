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
    """Delete the environment's resources in reverse dependency order: the Cloud Run services deploy made first
    (they run as the accounts deleted next), then what provision made. The dataset and table (the data) are
    kept unless --delete-data, and APIs stay enabled.

    Example: ltmctl --env dev destroy --yes
    """
    from ltmctl import ui
    from ltmctl.commands.provision import confirm, render_changes
    from ltmctl.deploy.clients import DeployClients
    from ltmctl.deploy.services import delete_services, managed_services
    from ltmctl.deploy.target import target_for
    from ltmctl.gcp import provisioning
    from ltmctl.gcp.errors import google_errors

    env = ctx.obj.environment()
    env.require("gcp", "destroy")
    resolved = env.resolved
    with DeployClients.for_env(resolved) as clients:
        target = provisioning.target(resolved, clients)
        services = target_for(resolved, target.spec.project_number)
        with ui.err.status(f"Reading what exists in {target.project}…"):
            with google_errors(target.project, "reading the Cloud Run services"):
                running = managed_services(services, clients)
            changes = provisioning.destroy_plan(target, delete_data)
        rows = [{"action": "delete", "kind": "run_service", "resource": services.service_name(c), "fields": {}}
                for c in running]
        render_changes(rows + provisioning.change_rows(changes), output)
        doomed = len(running) + sum(c.action == "delete" for c in changes)
        if not doomed:
            ui.err.print(f"Nothing to delete in {target.project}.")
            return
        data = " including the dataset and every stored event" if delete_data else ""
        confirm(yes, "destroy", f"Delete {doomed} resource(s) from project {target.project}{data}?")
        with google_errors(target.project, "deleting the Cloud Run services"):
            delete_services(services, clients, running, on_delete=lambda name: ui.err.print(
                f"  [red]✗[/red] deleted run_service {name}"))
        provisioning.destroy(target, changes, on_change=lambda c: ui.err.print(
            f"  [red]✗[/red] deleted {c.resource.kind} {c.resource.key}"))
    ui.err.print(f"[bold]Destroyed[/bold] {doomed} resource(s) in {target.project}.")
    if not delete_data:
        p = resolved.pipeline
        ui.err.print(f"Kept dataset {p.dataset} and table {p.table} (the data); `--delete-data` deletes them. "
                     "APIs stay enabled.")
