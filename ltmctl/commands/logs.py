"""`ltmctl logs`: the services' logs, one line per entry, coloured by severity."""

from __future__ import annotations

from typing import Annotated

import typer

COLOURS = {"DEBUG": "dim", "INFO": "white", "NOTICE": "cyan", "WARNING": "yellow", "ERROR": "red",
           "CRITICAL": "bold red", "ALERT": "bold red", "EMERGENCY": "bold red"}


def logs(
    ctx: typer.Context,
    service: Annotated[str, typer.Argument(help="api, ingest or all.")] = "all",
    since: Annotated[str | None, typer.Option(help="Only entries newer than 30m, 1h, 2d or an RFC 3339 time.")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new entries.")] = False,
    severity: Annotated[str | None, typer.Option(help="Minimum severity: INFO, WARNING, ERROR, ...")] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="text or json (one object per line).")] = "text",
) -> None:
    """Show the logs of the API and the ingest function.

    Example: ltmctl logs api --since 10m --severity WARNING --follow
    """
    import json

    from rich.markup import escape

    from ltmctl import logs_local, ui
    from ltmctl.errors import UsageError
    from ltmctl.local.stack import running_state

    if service not in ("api", "ingest", "all"):
        raise typer.BadParameter("must be api, ingest or all", param_hint="SERVICE")
    level = severity.upper() if severity else None
    if level is not None and level not in logs_local.SEVERITIES:
        raise typer.BadParameter(f"must be one of {', '.join(logs_local.SEVERITIES)}", param_hint="--severity")
    resolved = ctx.obj.load()
    if resolved.env.backend != "local":
        raise UsageError("Logs from Cloud Logging are not available yet; this build reads the local stack.",
                         hint="Use --env local, or `gcloud logging read` for a gcp environment.")
    state = running_state(resolved)
    log_dir = next(iter(state.pieces.values())).log.rsplit("/", 1)[0]
    from pathlib import Path

    paths = logs_local.files(Path(log_dir), service)
    start = logs_local.parse_since(since) if since else None
    try:
        for entry in logs_local.read(paths, since=start, min_severity=level, follow=follow):
            if output == "json":
                typer.echo(json.dumps(entry.as_dict(), default=str))
            else:
                colour = COLOURS.get(entry.severity, "white")
                ui.out.print(f"[{colour}]{escape(logs_local.format_entry(entry))}[/]", highlight=False)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
