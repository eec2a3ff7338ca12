"""`ltmctl monitoring`: the pipeline's Cloud Monitoring dashboard and alert policies."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

app = typer.Typer(help="Cloud Monitoring: the pipeline's dashboard and alert policies.", no_args_is_help=True)


@app.command("apply")
def apply(
    ctx: typer.Context,
    plan_only: Annotated[bool, typer.Option("--plan", help="Show the changes and stop.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking.")] = False,
    output: Annotated[Literal["table", "json"], typer.Option("--output", "-o", help="Format of the plan.")] = "table",
) -> None:
    """Create or update the dashboard (latency, error rates, Pub/Sub published and backlog, dead letters, ingest
    errors, instances) and alert policies (p99 latency and 5xx rate above objective for 5 minutes, oldest
    unacknowledged message older than objective, any dead letter) with the config's notification channels.
    A second run changes nothing.

    Example: ltmctl --env dev monitoring apply --plan
    """
    from ltmctl import ui
    from ltmctl.commands.provision import confirm, review
    from ltmctl.gcp.clients import GcpClients
    from ltmctl.gcp.errors import google_errors
    from ltmctl.gcp.monitoring_rest import MonitoringRest
    from ltmctl.metrics import dashboards

    env = ctx.obj.environment()
    env.require("gcp", "monitoring apply")
    resolved = env.resolved
    project = resolved.env.project
    with GcpClients.for_env(resolved) as clients, MonitoringRest(clients.credentials, clients.endpoint) as client:
        with ui.err.status(f"Reading the dashboards and alert policies of {project}…"), \
                google_errors(project, "reading Cloud Monitoring dashboards and alert policies"):
            changes = dashboards.plan(client, resolved)
        pending = review(changes, dashboards.change_rows(changes), output, plan_only,
                         matches=f"Cloud Monitoring in {project}",
                         command=f"ltmctl --env {resolved.name} monitoring apply")
        if not pending:
            return
        confirm(yes, "change Cloud Monitoring", f"Apply {len(pending)} change(s) to project {project}?")
        with google_errors(project, "writing Cloud Monitoring dashboards and alert policies"):
            dashboards.apply(client, resolved, changes, on_change=lambda c: ui.err.print(
                f"  [green]✓[/green] {c.action} {c.kind} {c.display_name}"))
    ui.err.print(f"[bold green]Applied[/bold green] {len(pending)} change(s) to Cloud Monitoring in {project}. "
                 f"Dashboard: https://console.cloud.google.com/monitoring/dashboards?project={project}")
