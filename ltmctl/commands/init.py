"""`ltmctl init`: record a Google Cloud environment in the config and check the project is ready for it."""

from __future__ import annotations

from typing import Annotated

import typer


def init(
    ctx: typer.Context,
    project: Annotated[str | None, typer.Option("--project", "-p", metavar="PROJECT_ID",
                                                help="Google Cloud project id.")] = None,
    region: Annotated[str | None, typer.Option(
        "--region", "-r", metavar="REGION",
        help="Region for Cloud Run, Artifact Registry and the staging bucket.")] = None,
    enable_apis: Annotated[bool, typer.Option("--enable-apis", help="Enable the APIs the pipeline needs that "
                                                                    "are off (one batch request).")] = False,
) -> None:
    """Write or update a gcp environment in the config, after checking that Application Default Credentials can
    read the project; list (or with --enable-apis, enable) the APIs it still needs. Prompts only on a terminal.
    The environment written is the one --env names (default: dev).

    Example: ltmctl init --project my-project --region us-central1 --env dev --enable-apis
    """
    import re
    import sys

    from ltmctl import ui
    from ltmctl.errors import UsageError
    from ltmctl.gcp import bootstrap, config_edit
    from ltmctl.gcp.clients import GcpClients

    tty = sys.stdin.isatty()
    if project is None or region is None:
        if not tty:
            missing = [f for f, v in (("--project", project), ("--region", region)) if v is None]
            raise UsageError(f"{' and '.join(missing)} {'are' if len(missing) > 1 else 'is'} required when there is "
                             "no terminal to ask on.",
                             hint="Example: ltmctl init --project my-project --region us-central1")
        project = project or typer.prompt("Google Cloud project id", err=True)
        region = region or typer.prompt("Region", default="us-central1", err=True)
    if not re.match(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$", project):
        raise UsageError(f"{project!r} is not a project id (6-30 lower-case letters, digits and hyphens).",
                         hint="Use the id, not the display name: `gcloud projects list` shows both.")
    if not re.match(r"^[a-z]+-[a-z]+[0-9]+$", region):
        raise UsageError(f"{region!r} is not a region name.", hint="For example us-central1 or europe-west1.")
    # The global --env (given before or after `init`, or LTM_ENV): init names the environment it writes with it.
    name = ctx.obj.env or "dev"
    path = config_edit.config_path(ctx.obj.config)

    with GcpClients.for_project(project) as clients:
        with ui.err.status(f"Checking project {project}…"):
            check = bootstrap.check_project(clients, project)
        ui.err.print(f"[green]✓[/green] Credentials can read project [bold]{project}[/bold] "
                     f"(number {check.number}).")
        created = bootstrap.write_environment(path, name, project, region, check.number)
        ui.err.print(f"[green]✓[/green] {'Created' if created else 'Updated'} environment [bold]{name}[/bold] "
                     f"in {path}.")
        missing = check.missing_apis
        if missing and enable_apis:
            with ui.err.status(f"Enabling {len(missing)} API(s)…"):
                bootstrap.enable_apis(clients, project, missing)
            ui.err.print(f"[green]✓[/green] Enabled {', '.join(missing)}.")
            missing = []
    if missing:
        ui.err.print(f"[yellow]![/yellow] Not enabled yet: {', '.join(missing)}\n"
                     f"  Enable them with `ltmctl --env {name} init --project {project} --region {region} "
                     f"--enable-apis`, or `gcloud services enable {' '.join(missing)} --project {project}`; "
                     "`ltmctl provision` also enables them.")
    else:
        ui.err.print("[green]✓[/green] Every API the pipeline needs is enabled.")
    ui.err.print(f"Next: ltmctl --env {name} provision --plan")
