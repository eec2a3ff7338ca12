"""`ltmctl logs`: the services' logs, one line per entry, coloured by severity."""

from __future__ import annotations

from typing import Annotated

import typer

COLOURS = {"DEBUG": "dim", "INFO": "white", "NOTICE": "cyan", "WARNING": "yellow", "ERROR": "red",
           "CRITICAL": "bold red", "ALERT": "bold red", "EMERGENCY": "bold red"}


def logs(
    ctx: typer.Context,
    service: Annotated[str, typer.Argument(help="api, ingest or all.")] = "all",
    since: Annotated[str | None, typer.Option(
        help="Only entries newer than 30m, 1h, 2d or an RFC 3339 time [local: all; gcp: 1h].")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new entries.")] = False,
    severity: Annotated[str | None, typer.Option(help="Minimum severity: INFO, WARNING, ERROR, ...")] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="text or json (one object per line).")] = "text",
) -> None:
    """Show the logs of the API and the ingest function: from Cloud Logging in a gcp environment (--follow polls
    every few seconds), from .ltm/<env>/logs/ on the local stack.

    Example: ltmctl logs api --since 10m --severity WARNING --follow
    """
    import json

    from rich.markup import escape

    from ltmctl import ui
    from ltmctl.logs.entries import SEVERITIES, format_entry

    if service not in ("api", "ingest", "all"):
        raise typer.BadParameter("must be api, ingest or all", param_hint="SERVICE")
    level = severity.upper() if severity else None
    if level is not None and level not in SEVERITIES:
        raise typer.BadParameter(f"must be one of {', '.join(SEVERITIES)}", param_hint="--severity")
    entries = ctx.obj.environment().logs(service, since, follow, level)
    try:
        for entry in entries:
            if output == "json":
                typer.echo(json.dumps(entry.as_dict(), default=str))
            else:
                colour = COLOURS.get(entry.severity, "white")
                ui.out.print(f"[{colour}]{escape(format_entry(entry))}[/]", highlight=False)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
