"""`ltmctl logs`: the services' logs, one line per entry, coloured by severity."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

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
    from ltmctl.logs import entries as logs_local

    if service not in ("api", "ingest", "all"):
        raise typer.BadParameter("must be api, ingest or all", param_hint="SERVICE")
    level = severity.upper() if severity else None
    if level is not None and level not in logs_local.SEVERITIES:
        raise typer.BadParameter(f"must be one of {', '.join(logs_local.SEVERITIES)}", param_hint="--severity")
    resolved = ctx.obj.load()
    if resolved.env.backend == "local":
        entries = _local(resolved, service, since, follow, level)
    else:
        entries = _gcp(resolved, service, since, follow, level)
    try:
        for entry in entries:
            if output == "json":
                typer.echo(json.dumps(entry.as_dict(), default=str))
            else:
                colour = COLOURS.get(entry.severity, "white")
                ui.out.print(f"[{colour}]{escape(logs_local.format_entry(entry))}[/]", highlight=False)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _local(resolved: Any, service: str, since: str | None, follow: bool, level: str | None) -> Iterator[Any]:
    from pathlib import Path

    from ltmctl.local.stack import running_state
    from ltmctl.logs import entries, files

    state = running_state(resolved)
    log_dir = next(iter(state.pieces.values())).log.rsplit("/", 1)[0]
    paths = files.files(Path(log_dir), service)
    start = entries.parse_since(since) if since else None
    return files.read(paths, since=start, min_severity=level, follow=follow)


def _gcp(resolved: Any, service: str, since: str | None, follow: bool, level: str | None) -> Iterator[Any]:
    from ltmctl.errors import UsageError
    from ltmctl.gcp.clients import GcpClients
    from ltmctl.gcp.errors import google_errors
    from ltmctl.logs import cloud_logging as logs_gcp
    from ltmctl.logs.entries import parse_since

    names = logs_gcp.services(resolved, service)
    if not names:
        raise UsageError(f"{resolved.name!r} has no {service} service: with ingest_mode bigquery, Pub/Sub writes to "
                         "BigQuery itself.", hint="Use `ltmctl logs api`.")
    start = parse_since(since or "1h")
    project = resolved.env.project
    with GcpClients.for_env(resolved) as clients, google_errors(project, "reading logs from Cloud Logging"):
        from google.cloud import logging as cloud_logging

        options = {"api_endpoint": clients.endpoint} if clients.endpoint else None
        client = cloud_logging.Client(project=project, credentials=clients.credentials, _use_grpc=False,
                                      client_options=options)
        yield from logs_gcp.read(client, project, names, since=start, min_severity=level, follow=follow)
