"""`ltmctl query`: ad-hoc SQL, or the two queries the API runs, with a cost check first in GCP."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import typer

Output = Literal["table", "json", "jsonl", "csv"]


def query(
    ctx: typer.Context,
    sql: Annotated[str | None, typer.Argument(
        help="SQL (standard dialect; `FROM events` names the pipeline's table); - reads it from stdin.",
        metavar="SQL", show_default=False)] = None,
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", metavar="NAME=VALUE[:TYPE]",
        help="Value for @name in the SQL; TYPE e.g. INT64, TIMESTAMP (default STRING). Repeatable.")] = None,
    action_id: Annotated[str | None, typer.Option(help="Shortcut: the API's get_data query (with --user-email).")]
    = None,
    user_email: Annotated[str | None, typer.Option(help="Shortcut: with --action-id.")] = None,
    app_id: Annotated[str | None, typer.Option(help="Shortcut: the API's app_info query (with --department).")]
    = None,
    department: Annotated[str | None, typer.Option(help="Shortcut: with --app-id.")] = None,
    days: Annotated[int | None, typer.Option(min=1, help="Shortcuts: look-back window in days (default 30).")]
    = None,
    top: Annotated[int | None, typer.Option(min=1, max=100, help="--app-id: top actions to list (default 5).")]
    = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only validate and estimate bytes and cost.")] = False,
    max_bytes: Annotated[int | None, typer.Option(
        min=1, help="Refuse queries above this many bytes (default: query.max_bytes of the environment).")] = None,
    yes: Annotated[bool, typer.Option(
        "--yes", "-y", help="Run even above --max-bytes; confirm a write allowed by --allow-writes.")] = False,
    allow_writes: Annotated[bool, typer.Option(
        "--allow-writes", help="Allow one statement that changes data or schema (DELETE, DROP, INSERT, CREATE ...); "
                               "asks first on a terminal, else needs --yes.")] = False,
    output: Annotated[Output, typer.Option("--output", "-o", help="Row format on stdout.")] = "table",
    limit: Annotated[int | None, typer.Option(
        min=1, help="Fetch at most N rows (default 1000; 100 for --action-id, as the API).")] = None,
) -> None:
    """Query the events table: free SQL with --param values, or the API's own queries; in GCP a dry run
    estimates the cost first.

    Example: ltmctl query "SELECT app_id, COUNT(*) AS n FROM events WHERE source = @s GROUP BY 1" --param s=iot
    """
    import sys

    from api_service.queries import table_id
    from ltmctl import querying, ui

    env = ctx.obj.environment()
    resolved = env.resolved
    p, settings = resolved.pipeline, resolved.env.query
    planned = querying.plan(table_id(resolved.env.project, p.dataset, p.table),
                            sql=sys.stdin.read() if sql == "-" else sql, params=param or [], action_id=action_id,
                            user_email=user_email, app_id=app_id, department=department, days=days, top=top,
                            limit=limit)
    c = env.clients()
    try:
        cap = max_bytes or settings.max_bytes
        # Always a dry run first: it validates the SQL and names the statement type, so nothing that writes runs
        # unasked. Where the backend counts no bytes (the emulator), only --dry-run shows the estimate.
        env.check_query(planned.sql)
        checked = querying.dry_run(c.bigquery, planned)
        writes = querying.check_statement(checked.statement_type, allow_writes=allow_writes)
        est = querying.estimate(checked.bytes_processed, settings.usd_per_tib, cap)
        if dry_run or env.counts_bytes:
            ui.err.print(f"Dry run: the SQL is valid ({checked.statement_type}); "
                         f"{querying.describe(est, settings.usd_per_tib)}{env.dry_run_note}.")
            if dry_run:
                return
            cap = querying.bytes_cap(est, yes)
        if writes:
            ui.confirm(yes, f"run a {checked.statement_type}", f"Run this {checked.statement_type} on "
                       f"{resolved.env.project}? It may change data or schema.")
            ui.err.print(f"Running a {checked.statement_type} (--allow-writes).")
        result = querying.run(c.bigquery, planned, max_bytes=cap)
    finally:
        c.close()
    _show(result, output)


def _show(result: Any, output: str) -> None:
    from rich.table import Table
    from rich.text import Text

    from ltmctl import querying, ui

    if output == "table":
        table = Table(*result.columns)
        for row in result.rows:
            table.add_row(*(Text("NULL", style="dim") if row[c] is None else Text(querying.cell(row[c]))
                            for c in result.columns))
        ui.out.print(table)
    else:
        typer.echo(querying.render(result, output), nl=False)
    shown, total = len(result.rows), result.total_rows
    more = f" of {total} (raise --limit for more)" if total is not None and total > shown else ""
    billed = f", {querying.human_bytes(result.bytes_billed)} billed" if result.bytes_billed else ""
    ui.err.print(f"{shown} row{'s' if shown != 1 else ''}{more} in {result.seconds:.2f}s{billed}.")
