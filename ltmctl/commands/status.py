"""`ltmctl status`: what exists on Google Cloud, and whether it matches the config."""

from __future__ import annotations

from typing import Annotated, Literal

import typer


def status(
    ctx: typer.Context,
    output: Annotated[Literal["table", "json"], typer.Option("--output", "-o", help="Format on stdout.")] = "table",
) -> None:
    """Show each resource of the environment: ok (exists, matches the config), missing, or drifted (and which
    fields); then each Cloud Run service: its URL, ready revision and traffic split, and whether it runs what a
    deploy of this checkout and config would (drift: source, settings, iap members). Read-only.

    Several environments (--env 'prod-*' or dev,prod): one row each with its counts, worst first; exit 0 when all
    are ok, 1 when any is missing or drifted, 4 when any could not be read.

    Example: ltmctl --env dev status --output json
    """
    from ltmctl import ui
    from ltmctl.deploy.clients import DeployClients
    from ltmctl.deploy.services import service_rows
    from ltmctl.deploy.target import target_for
    from ltmctl.gcp import provisioning
    from ltmctl.gcp.errors import google_errors

    fleet = ctx.obj.load_many()
    if len(fleet) > 1:
        from ltmctl.fleet import view

        raise typer.Exit(view.status(fleet, output=output, debug=ctx.obj.debug))
    from ltmctl.environments import open_environment

    env = open_environment(fleet[0])
    env.require("gcp", "status")
    resolved = env.resolved
    with DeployClients.for_env(resolved) as clients:
        target = provisioning.target(resolved, clients)
        with ui.err.status(f"Reading {target.project}…"):
            rows = provisioning.status_rows(provisioning.plan(target))
            deploy_target = target_for(resolved, target.spec.project_number)
            with google_errors(target.project, "reading the Cloud Run services"):
                services = service_rows(deploy_target, clients, resolved.root)
    if output == "json":
        ui.emit({"resources": rows, "services": services}, "json")
    else:
        from rich.markup import escape
        from rich.table import Table

        styles = {"ok": "green", "missing": "red", "drifted": "yellow", "not ready": "red", "unused": "yellow"}
        table = Table("kind", "resource", "state", "drifted fields")
        for row in rows:
            s = styles[row["state"]]
            table.add_row(row["kind"], escape(row["resource"]), f"[{s}]{row['state']}[/{s}]",
                          ", ".join(row["drift"]))
        ui.out.print(table)
        table = Table("service", "state", "url", "ready revision", "traffic", "drifted fields")
        for row in services:
            s = styles[row["state"]]
            split = ", ".join(f"{t['revision']} {t['percent']}%" for t in row["traffic"])
            table.add_row(row["service"], f"[{s}]{row['state']}[/{s}]", row["url"], row["ready_revision"], split,
                          ", ".join(row["drift"]))
        ui.out.print(table)
    counts = {state: sum(r["state"] == state for r in rows) for state in ("ok", "missing", "drifted")}
    ui.err.print(f"{counts['ok']} ok, {counts['missing']} missing, {counts['drifted']} drifted"
                 + ("" if counts["ok"] == len(rows) else f"; `ltmctl --env {resolved.name} provision` fixes that."))
    for row in services:
        if row["state"] == "unused":
            ui.err.print(f"{row['service']}: {row['reason']}", soft_wrap=True)
    stale = [r["service"] for r in services if r["state"] not in ("ok", "unused")]
    if stale:
        ui.err.print(f"Services not as configured: {', '.join(stale)}; `ltmctl --env {resolved.name} deploy` "
                     "fixes that.")
