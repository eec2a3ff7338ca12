"""`ltmctl provision`: create or update the pipeline's Google Cloud resources, showing the plan first."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import typer

Output = Annotated[Literal["table", "json"], typer.Option("--output", "-o", help="Format of the plan on stdout.")]

_STYLE = {"create": "green", "update": "yellow", "replace": "red", "delete": "red", "no change": "dim",
          "keep": "cyan", "absent": "dim"}


def provision(
    ctx: typer.Context,
    plan_only: Annotated[bool, typer.Option("--plan", help="Show the changes and stop.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking.")] = False,
    output: Output = "table",
) -> None:
    """Plan and apply the pipeline's resources on Google Cloud: APIs, service accounts, least-privilege IAM,
    Artifact Registry, staging bucket, topics, subscriptions, dataset and table. A second run changes nothing.

    Example: ltmctl --env dev provision --plan
    """
    from ltmctl import ui
    from ltmctl.gcp import provisioning
    from ltmctl.gcp.clients import GcpClients

    env = ctx.obj.environment()
    env.require("gcp", "provision")
    resolved = env.resolved
    with GcpClients.for_env(resolved) as clients:
        target = provisioning.target(resolved, clients,
                                     on_wait=lambda message: ui.err.print(f"  [yellow]…[/yellow] {message}"))
        provisioning.require_iap_possible(resolved, clients)
        with ui.err.status(f"Reading what exists in {target.project}…"):
            changes = provisioning.plan(target)
        pending = review(changes, provisioning.change_rows(changes), output, plan_only,
                         matches=f"Everything in {target.project}", command=f"ltmctl --env {resolved.name} provision")
        if not pending:
            if not plan_only:  # a project provisioned before provision created agents still gets them
                provisioning.ensure_agents(target, on_step=lambda message: ui.err.print(f"  ✓ {message}"))
            return
        confirm(yes, "provision", f"Apply {len(pending)} change(s) to project {target.project}?")
        provisioning.apply(target, changes, on_change=lambda c: ui.err.print(
            f"  [green]✓[/green] {c.action} {c.resource.kind} {c.resource.key}"),
            on_step=lambda message: ui.err.print(f"  [green]✓[/green] {message}"))
    ui.err.print(f"[bold green]Provisioned[/bold green] {target.project}: {len(pending)} change(s) applied.")


def review(changes: list[Any], rows: list[dict[str, Any]], output: str, plan_only: bool, *, matches: str,
           command: str) -> list[Any]:
    """Show a plan; return the changes still to apply, or [] when nothing differs or only the plan was asked."""
    from ltmctl import ui

    render_changes(rows, output)
    pending = [c for c in changes if c.action != "noop"]
    if not pending:
        ui.err.print(f"[green]✓[/green] {matches} matches the config; nothing to change.")
        return []
    if plan_only:
        ui.err.print(f"{len(pending)} change(s) planned; apply them with `{command}`.")
        return []
    return pending


def confirm(yes: bool, action: str, question: str) -> None:
    """ui.confirm with the hint that fits a plan printed above."""
    from ltmctl import ui

    ui.confirm(yes, action, question, hint="Review the plan above, then pass --yes.")


def _fields(fields: dict[str, Any]) -> str:
    from ltmctl.text import cut

    def short(value: Any) -> str:
        text = repr(value) if not isinstance(value, tuple | list) else f"[{len(value)} items]"
        return cut(text, 40)

    return ", ".join(f"{name}: {short(v['actual'])} → {short(v['desired'])}" for name, v in fields.items())


def render_changes(rows: list[dict[str, Any]], output: str) -> None:
    """A plan (or destroy plan) on stdout: a table, or JSON with every field's actual and desired value."""
    from ltmctl import ui

    if output == "json":
        ui.emit(rows, "json")
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table("action", "kind", "resource", "changes")
    for row in rows:
        style = _STYLE.get(row["action"], "")
        table.add_row(f"[{style}]{row['action']}[/{style}]", row["kind"], escape(row["resource"]),
                      escape(_fields(row["fields"])))
    ui.out.print(table)


_MARKS = {"create": ("+", "green"), "update": ("~", "yellow"), "replace": ("!", "red"), "delete": ("-", "red"),
          "no change": ("=", "dim")}


def _value(value: Any) -> str:
    return "none" if value in (None, "", [], {}) else (value if isinstance(value, str) else repr(value))


def render_plan(rows: list[dict[str, Any]], output: str) -> None:
    """A plan on stdout as lines, one per resource (`+ create`, `~ update` with each field that differs, actual →
    desired, in full, `= unchanged`), or JSON as render_changes gives it: for plans whose names and values are too
    long for a table's columns (image URIs, URLs, members)."""
    from ltmctl import ui

    if output == "json":
        ui.emit(rows, "json")
        return
    from rich.markup import escape

    for row in rows:
        mark, style = _MARKS.get(row["action"], (" ", ""))
        word = "unchanged" if row["action"] == "no change" else row["action"]
        ui.out.print(f"[{style}]{mark} {word:<9}[/{style}] {escape(row['kind'])} [bold]{escape(row['resource'])}"
                     "[/bold]", highlight=False)
        for name, v in row["fields"].items():
            have, want = v["actual"], v["desired"]
            if isinstance(have, list) and isinstance(want, list):
                change = ", ".join([f"+{m}" for m in want if m not in have] + [f"-{m}" for m in have if m not in want])
            else:
                change = f"{_value(have)} → {_value(want)}"
            ui.out.print(f"      {escape(name)}: {escape(change)}", highlight=False)
