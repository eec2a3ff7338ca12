"""`ltmctl deploy`: build and roll out the services on Cloud Run, wire Pub/Sub delivery and IAP access."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import typer


def deploy(
    ctx: typer.Context,
    which: Annotated[Literal["api", "ingest", "all"], typer.Argument(help="What to deploy.")] = "all",
    image: Annotated[list[str] | None, typer.Option(
        "--image", metavar="[COMPONENT=]URI",
        help="Deploy this image instead of building one: `--image URI` with api or ingest, "
             "`--image api=URI --image ingest=URI` with all.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Build and roll out even what is unchanged.")] = False,
    plan_only: Annotated[bool, typer.Option(
        "--plan", help="Change nothing: read the project and show, per resource, what a deploy would create, "
                       "update (and which fields) or leave alone.")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Send nothing: run the deploy against an in-process fake of a freshly provisioned, empty "
                          "project and show its plan (with --verbose or --output json, every request it would "
                          "send). Needs no credentials.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="With --dry-run: also list every request.")
                       ] = False,
    rollback: Annotated[bool, typer.Option(
        "--rollback", help="Build and deploy nothing: move each service's traffic back to the ready revision before "
                           "the one serving it (with --from, to the one that served before that deploy).")] = False,
    report: Annotated[Path | None, typer.Option(
        "--from", metavar="DEPLOY.json", dir_okay=False, exists=True,
        help="With --rollback: roll back only what this `deploy --output json` report changed.")] = None,
    output: Annotated[Literal["table", "json"], typer.Option("--output", "-o", help="Format on stdout.")] = "table",
    source: Annotated[Path | None, typer.Option(
        help="Repository checkout to package (default: the project directory of the config).",
        file_okay=False, exists=True)] = None,
) -> None:
    """Build the images (Cloud Build), roll out the Cloud Run services, point the push subscription at the ingest
    service (OIDC), or with ingest_mode bigquery make it a BigQuery subscription, and let the configured members
    through IAP. Unchanged components are skipped.

    Example: ltmctl deploy --plan --env dev

    Example: ltmctl deploy all --dry-run --verbose --env dev

    Example: ltmctl deploy api --rollback --env dev
    """
    from ltmctl import ui
    from ltmctl.deploy.deployer import parse_images, select

    _check_rollback_options(rollback, report, image, force, dry_run or plan_only)
    if dry_run and plan_only:
        from ltmctl.errors import UsageError

        raise UsageError("--plan and --dry-run exclude each other: --plan reads your project, --dry-run assumes an "
                         "empty one and needs no credentials.", hint="Pass one of them.")
    env = ctx.obj.environment()
    env.require("gcp", "deploy")
    resolved = env.resolved
    components, images = select(which), parse_images(which, image or [])
    if rollback:
        _rollback(resolved, components, report, output)
        return
    root = source or resolved.root
    if dry_run:
        from ltmctl.deploy.dry_run import plan_requests

        rows, requests = plan_requests(resolved, components=components, images=images, force=force, root=root)
        _show_dry_run(rows, requests, resolved, output, verbose)
        return
    from ltmctl.deploy.clients import DeployClients
    from ltmctl.deploy.deployer import deploy as run_deploy
    from ltmctl.deploy.target import target_for
    from ltmctl.gcp.provisioning import project_number

    with DeployClients.for_env(resolved) as clients:
        target = target_for(resolved, project_number(resolved, clients))
        if plan_only:
            from ltmctl.deploy.plan import plan

            with ui.err.status(f"Reading what runs in {target.project}…"):
                rows, warnings = plan(target, clients, components=components, images=images, force=force,
                                      root=root)
            _show_plan(rows, warnings, resolved, output)
            return
        result = run_deploy(target, clients, components=components, images=images, force=force, root=root,
                            progress=_Progress())
    _show_result(result, output)
    for warning in result.warnings:
        ui.err.print(f"[yellow]![/yellow] {warning}", soft_wrap=True)
    ui.err.print("[green]✓[/green] Deployed." if result.changed else
                 "[green]✓[/green] Everything was already deployed; nothing changed.")


def _check_rollback_options(rollback: bool, report: Path | None, image: list[str] | None, force: bool,
                            dry_run: bool) -> None:
    # dry_run: --dry-run or --plan, neither of which has a rollback to show.
    from ltmctl.errors import UsageError

    if report is not None and not rollback:
        raise UsageError("--from goes with --rollback.", hint="ltmctl deploy all --rollback --from deploy.json")
    clashing = [name for name, given in (("--image", image), ("--force", force), ("--dry-run/--plan", dry_run))
                if given]
    if rollback and clashing:
        # A rollback deploys nothing (no image, no build to force) and the dry run's fake project has no revisions.
        raise UsageError(f"--rollback cannot be combined with {', '.join(clashing)}: it builds and deploys nothing, "
                         "only moves traffic to a revision that exists.",
                         hint="Run `ltmctl deploy [api|ingest|all] --rollback` on its own; `ltmctl status` shows "
                              "what serves now.")


def _rollback(resolved: Any, components: list[str], report: Path | None, output: str) -> None:
    from ltmctl import ui
    from ltmctl.deploy.clients import DeployClients
    from ltmctl.deploy.rollback import read_report, rollback
    from ltmctl.deploy.services import components_of
    from ltmctl.deploy.target import target_for
    from ltmctl.gcp.provisioning import project_number

    recorded = read_report(report) if report is not None else None
    with DeployClients.for_env(resolved) as clients:
        target = target_for(resolved, project_number(resolved, clients))
        result = rollback(target, clients, components=[c for c in components if c in components_of(target)],
                          report=recorded, progress=_Progress())
    if output == "json":
        ui.emit(result.as_dict(), "json")
    else:
        for m in result.moved:
            ui.out.print(f"{m.service}: from {m.from_revision} → {m.to_revision}", highlight=False, soft_wrap=True)
    for line in result.skipped:
        ui.err.print(f"  [dim]•[/dim] {line}", soft_wrap=True)
    ui.err.print("[green]✓[/green] Rolled back." if result.moved else "[green]✓[/green] Nothing to roll back.")


class _Progress:
    def step(self, message: str) -> None:
        from rich.markup import escape

        from ltmctl import ui

        # soft_wrap: URLs and image names stay whole, so they can be copied from the terminal.
        ui.err.print(f"  [green]•[/green] {escape(message)}", soft_wrap=True)

    def log(self, component: str, line: str) -> None:
        from rich.markup import escape

        from ltmctl import ui

        ui.err.print(f"[dim]{component:>6} │[/dim] {escape(line)}", highlight=False, soft_wrap=True)

    @contextlib.contextmanager
    def waiting(self, message: str) -> Iterator[None]:
        from ltmctl import ui

        with ui.err.status(f"{message}…"):
            yield


def _show_result(result: Any, output: str) -> None:
    from ltmctl import ui

    if output == "json":
        ui.emit(result.as_dict(), "json")
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table("component", "service", "action", "url", "revision")
    for o in result.components:
        table.add_row(o.component, o.service, o.action, escape(o.url), o.revision)
    ui.out.print(table)


def _show_plan(rows: list[dict[str, Any]], warnings: list[str], resolved: Any, output: str) -> None:
    from ltmctl import ui
    from ltmctl.commands.provision import render_plan

    render_plan(rows, output)
    for warning in warnings:
        ui.err.print(f"[yellow]![/yellow] {warning}", soft_wrap=True)
    pending = [r for r in rows if r["action"] != "no change"]
    project = resolved.env.project
    if pending:
        ui.err.print(f"{len(pending)} change(s) planned in {project}; nothing was changed. Apply them with "
                     f"`ltmctl deploy --env {resolved.name}`.", soft_wrap=True)
    else:
        ui.err.print(f"[green]✓[/green] What runs in {project} matches this checkout and the config; a deploy "
                     "would change nothing.", soft_wrap=True)


def _show_dry_run(rows: list[dict[str, Any]], requests: list[dict[str, Any]], resolved: Any, output: str,
                  verbose: bool) -> None:
    from ltmctl import ui
    from ltmctl.commands.provision import render_plan

    project = resolved.env.project
    if output == "json":
        ui.emit(requests, "json")  # what scripts have read from `deploy --dry-run -o json`: the requests
    else:
        render_plan(rows, output)
        if verbose:
            _show_requests(requests)
    changes = sum(r["mutating"] for r in requests)
    listed = "marked *" if verbose or output == "json" else "--verbose lists them"
    ui.err.print(f"Dry run: the plan of a first deploy to a freshly provisioned project {project} with nothing "
                 f"deployed ({len(requests)} requests, {changes} that change something; {listed}); nothing was "
                 f"sent. `ltmctl deploy --plan --env {resolved.name}` reads what runs in the project itself.",
                 soft_wrap=True)


def _show_requests(requests: list[dict[str, Any]]) -> None:
    import json
    import sys

    for i, r in enumerate(requests, 1):
        query = "&".join(f"{k}={v}" for k, v in (r.get("query") or {}).items())
        mark = "*" if r["mutating"] else " "
        size = f"  ({r['bytes']} bytes)" if "bytes" in r else ""
        sys.stdout.write(f"{i:3} {mark} {r['method']:6} {r['path']}{'?' + query if query else ''}{size}\n")
        if r.get("body") is not None and r["mutating"]:
            sys.stdout.write("".join(f"          {line}\n" for line in json.dumps(r["body"], indent=2)
                                     .splitlines()))
