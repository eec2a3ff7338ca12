"""`ltmctl metrics`: latency, request and error rates, Pub/Sub and ingest figures, against the objectives."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any, Literal

import typer


def metrics(
    ctx: typer.Context,
    since: Annotated[str | None, typer.Option(
        help="Window start: 30m, 1h, 1d or an RFC 3339 time [gcp: 1h; local: totals since `local up`].")] = None,
    until: Annotated[str | None, typer.Option(help="Window end, a time ago or an RFC 3339 time [now].")] = None,
    step: Annotated[str | None, typer.Option(
        help="gcp: alignment period, at least 1m [1m]; local: a window's step [the recorder's interval], or "
             "seconds between --watch refreshes [5s].")] = None,
    watch: Annotated[bool, typer.Option(help="Refresh in place every --step.")] = False,
    output: Annotated[Literal["table", "json"], typer.Option("--output", "-o", help="table or json.")] = "table",
    png: Annotated[Path | None, typer.Option(help="Also draw latency and error rate over time to this PNG.")] = None,
) -> None:
    """API p50/p95/p99 latency, request rate, 4xx/5xx rates, Pub/Sub and ingest figures, coloured against the SLOs:
    from Cloud Monitoring in a gcp environment, from the services' /metrics endpoints on the local stack (over a
    window: from the snapshots its recorder keeps). Latency percentiles come from histogram buckets and say so:
    ≤ the bucket's upper bound locally, ≈ Cloud Monitoring's interpolation on gcp.

    Several environments (--env 'prod-*' or dev,prod): one row each, worst first (errors, then SLO breaches, then
    ok); exit 0 when all are ok, 1 when any breaches, 4 when any could not be read.

    Example: ltmctl --env dev metrics --since 6h --step 5m --png latency.png
    """
    from ltmctl import ui
    from ltmctl.errors import UsageError

    fleet = ctx.obj.load_many()
    if len(fleet) > 1:
        from ltmctl.fleet import view

        raise typer.Exit(view.metrics(fleet, since=since, until=until, step=step, watch=watch, png=png,
                                      output=output, debug=ctx.obj.debug))
    if watch and until:
        raise UsageError("--watch follows the present; it cannot be combined with --until.")
    from ltmctl.environments import open_environment

    env = open_environment(fleet[0])
    with env.metrics(since, until, step) as source:
        if output == "json":
            view = source.read()
            ui.emit(view.document, "json")
            _png(png, view.times, view.series, env.resolved.env.slo, source.png_title)
            return

        def render() -> Any:
            view = source.read()
            _png(png, view.times, view.series, env.resolved.env.slo, source.png_title)  # every refresh
            return _table(view.rows, view.title)

        _loop(render, watch, source.every)


def _loop(render: Any, watch: bool, every: float) -> None:
    from ltmctl import ui

    if not watch:
        ui.out.print(render())
        return
    from rich.live import Live

    try:
        with Live(render(), console=ui.out, auto_refresh=False) as live:
            while True:
                time.sleep(every)
                live.update(render(), refresh=True)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _png(path: Path | None, times: list[Any], series: dict[str, list[float | None]], slo: Any,
         title: str = "") -> None:
    if path is None:
        return
    from ltmctl.metrics.figures import draw_png

    draw_png(path, times, series, slo, title)


def _table(rows: list[tuple[Any, list[float | None]]], title: str | None = None) -> Any:
    from rich.table import Table

    from ltmctl.metrics.figures import ESTIMATE_SIGNS, INTERPOLATED, sparkline

    table = Table("metric", "value", "trend", "slo", title=title)
    colours = {"ok": "green", "breach": "red", "info": "white"}
    for row, trend in rows:
        if row.value is None:
            shown = "—"
        elif row.estimate:
            # Never a bare number: say it comes from buckets, and what the sign means in README (#17).
            sign = ESTIMATE_SIGNS[row.estimate]
            how = "interpolated" if row.estimate == INTERPOLATED else "bucket"
            number = f"{row.value:,.1f}" if row.estimate == INTERPOLATED else f"{row.value:,g}"  # a bound: as is
            shown = f"{sign} {number} {row.unit} [dim]({how})[/dim]"
        elif row.unit == "%":
            shown = f"{row.value * 100:.2f} %"
        elif row.unit in ("", "s") and row.value == int(row.value):
            shown = f"{row.value:,.0f} {row.unit}".strip()  # counts and whole seconds
        else:
            shown = f"{row.value:,.1f} {row.unit}".strip()
        mark = {"ok": "ok", "breach": "over", "info": ""}[row.status]
        table.add_row(row.name, f"[{colours[row.status]}]{shown}[/]", sparkline(trend, width=40), mark)
    return table
