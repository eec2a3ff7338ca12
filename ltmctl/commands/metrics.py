"""`ltmctl metrics`: latency, request and error rates, Pub/Sub and ingest figures, against the objectives."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any, Literal

import typer


def metrics(
    ctx: typer.Context,
    since: Annotated[str | None, typer.Option(help="gcp: window start, 30m, 1h, 1d or an RFC 3339 time [1h].")] = None,
    until: Annotated[str | None, typer.Option(help="gcp: window end, a time ago or an RFC 3339 time [now].")] = None,
    step: Annotated[str | None, typer.Option(
        help="gcp: alignment period, at least 1m [1m]; local: seconds between --watch refreshes [5s].")] = None,
    watch: Annotated[bool, typer.Option(help="Refresh in place every --step.")] = False,
    output: Annotated[Literal["table", "json"], typer.Option("--output", "-o", help="table or json.")] = "table",
    png: Annotated[Path | None, typer.Option(help="Also draw latency and error rate over time to this PNG.")] = None,
) -> None:
    """API p50/p95/p99 latency, request rate, 4xx/5xx rates, Pub/Sub and ingest figures, coloured against the SLOs:
    from Cloud Monitoring in a gcp environment, from the services' /metrics endpoints on the local stack.

    Several environments (--env 'prod-*' or dev,prod): one row each, worst first (errors, then SLO breaches, then
    ok); exit 0 when all are ok, 1 when any breaches, 4 when any could not be read.

    Example: ltmctl --env dev metrics --since 6h --step 5m --png latency.png
    """
    from ltmctl import metrics_local
    from ltmctl.errors import UsageError

    fleet = ctx.obj.load_many()
    if len(fleet) > 1:
        from ltmctl.fleet import view

        raise typer.Exit(view.metrics(fleet, since=since, until=until, step=step, watch=watch, png=png,
                                      output=output, debug=ctx.obj.debug))
    resolved = fleet[0]
    if watch and until:
        raise UsageError("--watch follows the present; it cannot be combined with --until.")
    if resolved.env.backend == "local":
        if since or until:
            raise UsageError("The local stack's counters run from its start; --since and --until apply to a gcp "
                             "environment.", hint="Drop them, or choose a gcp environment with --env NAME.")
        refresh = metrics_local.parse_duration(step) if step else 5.0
        if refresh < 0.5:
            raise typer.BadParameter("must be at least 0.5s on the local stack", param_hint="--step")
        _local(resolved, watch, refresh, output, png)
    else:
        step_s = metrics_local.parse_duration(step) if step else 60.0
        if step_s < 60 or step_s != int(step_s):
            raise typer.BadParameter("Cloud Monitoring aligns to whole seconds, at least 1m", param_hint="--step")
        _gcp(resolved, since or "1h", until, int(step_s), watch, output, png)


def _local(resolved: Any, watch: bool, refresh: float, output: str, png: Path | None) -> None:
    from dataclasses import asdict
    from datetime import datetime

    from ltmctl import metrics_local, ui
    from ltmctl.local.stack import running_state

    state = running_state(resolved)
    started_at = datetime.fromisoformat(state.started_at).timestamp()
    slo = resolved.env.slo
    if output == "json":
        current = metrics_local.snapshot(state)
        rows = metrics_local.rows(current, None, started_at, slo)
        ui.emit(current.as_dict() | {"figures": [asdict(r) for r in rows]}, "json")
        _png(png, [datetime.fromtimestamp(current.taken_at).astimezone()], {r.name: [r.value] for r in rows}, slo)
        return
    history: dict[str, list[float | None]] = {}
    times: list[datetime] = []
    previous = None

    def render() -> Any:
        nonlocal previous
        current = metrics_local.snapshot(state)
        rows = metrics_local.rows(current, previous, started_at, slo)
        previous = current
        times.append(datetime.fromtimestamp(current.taken_at).astimezone())
        for row in rows:
            history.setdefault(row.name, []).append(row.value)
        _png(png, times, history, slo, "local stack")  # every refresh, so the picture is there when stopped
        return _table([(row, history[row.name][-30:]) for row in rows])

    _loop(render, watch, refresh)


def _gcp(resolved: Any, since: str, until: str | None, step_s: int, watch: bool, output: str,
         png: Path | None) -> None:
    from datetime import UTC, datetime

    from ltmctl import metrics_gcp, ui
    from ltmctl.errors import UsageError
    from ltmctl.gcp.clients import GcpClients
    from ltmctl.gcp.errors import google_errors
    from ltmctl.logs_local import parse_since
    from ltmctl.monitoring_rest import MonitoringRest

    def window() -> tuple[Any, Any]:
        now = datetime.now(UTC)  # durations are measured back from now, as in `ltmctl logs --since`
        end = parse_since(until, now) if until else now
        start = parse_since(since, now)
        if start >= end:
            raise UsageError(f"--since ({start:%Y-%m-%d %H:%M:%S}) must be before --until ({end:%Y-%m-%d %H:%M:%S}).")
        return start, end

    window()  # a bad window fails before any credentials are looked for
    with GcpClients.for_env(resolved) as clients, MonitoringRest(clients.credentials, clients.endpoint) as client:

        def fetch() -> Any:
            with google_errors(resolved.env.project, "reading metrics from Cloud Monitoring"):
                report = metrics_gcp.report(client, resolved, *window(), step_s)
            _png(png, report.times, report.series(), resolved.env.slo, f"{resolved.env.project} ({resolved.name})")
            return report

        if output == "json":
            ui.emit(fetch().as_dict(), "json")
            return

        def render() -> Any:
            report = fetch()
            title = (f"{report.project} · {report.start:%Y-%m-%d %H:%M} → {report.end:%H:%M} UTC · "
                     f"step {step_s}s")
            return _table([(f.row(), f.series) for f in report.figures], title)

        _loop(render, watch, step_s)


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
    from ltmctl import metrics_local

    metrics_local.draw_png(path, times, series, slo, title)


def _table(rows: list[tuple[Any, list[float | None]]], title: str | None = None) -> Any:
    from rich.table import Table

    from ltmctl.metrics_local import sparkline

    table = Table("metric", "value", "trend", "slo", title=title)
    colours = {"ok": "green", "breach": "red", "info": "white"}
    for row, trend in rows:
        if row.value is None:
            shown = "—"
        elif row.unit == "%":
            shown = f"{row.value * 100:.2f} %"
        elif row.unit in ("", "s") and row.value == int(row.value):
            shown = f"{row.value:,.0f} {row.unit}".strip()  # counts and whole seconds
        else:
            shown = f"{row.value:,.1f} {row.unit}".strip()
        mark = {"ok": "ok", "breach": "over", "info": ""}[row.status]
        table.add_row(row.name, f"[{colours[row.status]}]{shown}[/]", sparkline(trend, width=40), mark)
    return table
