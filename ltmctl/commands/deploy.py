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
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Send nothing: run the deploy against an in-process fake of a freshly provisioned, empty "
                          "project and print the requests it would send. Needs no credentials.")] = False,
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

    Example: ltmctl --env dev deploy all --dry-run --output json

    Example: ltmctl --env dev deploy api --rollback
    """
    from ltmctl import ui
    from ltmctl.deploy.deployer import parse_images, select

    _check_rollback_options(rollback, report, image, force, dry_run)
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

        _, requests = plan_requests(resolved, components=components, images=images, force=force, root=root)
        _show_requests(requests, resolved.env.project, output)
        return
    from ltmctl.deploy.clients import DeployClients
    from ltmctl.deploy.deployer import deploy as run_deploy
    from ltmctl.deploy.target import target_for
    from ltmctl.gcp.provisioning import project_number

    with DeployClients.for_env(resolved) as clients:
        target = target_for(resolved, project_number(resolved, clients))
        result = run_deploy(target, clients, components=components, images=images, force=force, root=root,
                            progress=_Progress())
    _show_result(result, output)
    for warning in result.warnings:
        ui.err.print(f"[yellow]![/yellow] {warning}", soft_wrap=True)
    ui.err.print("[green]✓[/green] Deployed." if result.changed else
                 "[green]✓[/green] Everything was already deployed; nothing changed.")


def _check_rollback_options(rollback: bool, report: Path | None, image: list[str] | None, force: bool,
                            dry_run: bool) -> None:
    from ltmctl.errors import UsageError

    if report is not None and not rollback:
        raise UsageError("--from goes with --rollback.", hint="ltmctl deploy all --rollback --from deploy.json")
    clashing = [name for name, given in (("--image", image), ("--force", force), ("--dry-run", dry_run)) if given]
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


def _show_requests(requests: list[dict[str, Any]], project: str, output: str) -> None:
    import json
    import sys

    from ltmctl import ui

    if output == "json":
        ui.emit(requests, "json")
    else:
        for i, r in enumerate(requests, 1):
            query = "&".join(f"{k}={v}" for k, v in (r.get("query") or {}).items())
            mark = "*" if r["mutating"] else " "
            size = f"  ({r['bytes']} bytes)" if "bytes" in r else ""
            sys.stdout.write(f"{i:3} {mark} {r['method']:6} {r['path']}{'?' + query if query else ''}{size}\n")
            if r.get("body") is not None and r["mutating"]:
                sys.stdout.write("".join(f"          {line}\n" for line in json.dumps(r["body"], indent=2)
                                         .splitlines()))
    changes = sum(r["mutating"] for r in requests)
    ui.err.print(f"Dry run: {len(requests)} requests ({changes} that change something, marked *) that deploy would "
                 f"send to a freshly provisioned project {project} with nothing deployed; nothing was sent.")
