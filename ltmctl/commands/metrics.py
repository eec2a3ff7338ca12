"""`ltmctl metrics`: latency, request and error rates, ingest outcomes."""

from __future__ import annotations

import time
from typing import Annotated

import typer


def metrics(
    ctx: typer.Context,
    watch: Annotated[bool, typer.Option(help="Refresh in place every --step.")] = False,
    step: Annotated[float, typer.Option(min=0.5, help="Seconds between refreshes with --watch.")] = 5.0,
    output: Annotated[str, typer.Option("--output", "-o", help="table or json.")] = "table",
) -> None:
    """API p50/p95/p99 latency, request rate, 4xx/5xx rates and ingest outcomes, coloured against the SLOs.

    Example: ltmctl metrics --watch --step 2
    """
    from datetime import datetime

    from ltmctl import metrics_local, ui
    from ltmctl.errors import UsageError
    from ltmctl.local.stack import running_state

    resolved = ctx.obj.load()
    if resolved.env.backend != "local":
        raise UsageError("Metrics from Cloud Monitoring are not available yet; this build reads the local stack.",
                         hint="Use --env local, or the Cloud Monitoring console for a gcp environment.")
    state = running_state(resolved)
    started_at = datetime.fromisoformat(state.started_at).timestamp()
    if output == "json":
        ui.emit(metrics_local.snapshot(state).as_dict(), "json")
        return
    history: dict[str, list[float | None]] = {}
    previous = None

    def render():
        nonlocal previous
        current = metrics_local.snapshot(state)
        table = _table(metrics_local.rows(current, previous, started_at, resolved.env.slo), history)
        previous = current
        return table

    if not watch:
        ui.out.print(render())
        return
    from rich.live import Live

    with Live(render(), console=ui.out, auto_refresh=False) as live:
        while True:
            time.sleep(step)
            live.update(render(), refresh=True)


def _table(rows, history):
    from rich.table import Table

    from ltmctl.metrics_local import sparkline

    table = Table("metric", "value", "trend", "slo")
    colours = {"ok": "green", "breach": "red", "info": "white"}
    for row in rows:
        history.setdefault(row.name, []).append(row.value)
        del history[row.name][:-30]
        if row.value is None:
            shown = "—"
        elif row.unit == "%":
            shown = f"{row.value * 100:.2f} %"
        else:
            shown = f"{row.value:,.1f} {row.unit}".strip()
        mark = {"ok": "ok", "breach": "over", "info": ""}[row.status]
        table.add_row(row.name, f"[{colours[row.status]}]{shown}[/]", sparkline(history[row.name]), mark)
    return table
