"""The fleet branch of `metrics`, `status` and `verify`: collect the rows with progress on stderr, write them, and
answer the exit code (rows.EXIT_HELP)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ltmctl.errors import UsageError
from ltmctl.fleet import render
from ltmctl.fleet import rows as fleet_rows


def _finish(rows: list[dict[str, Any]], output: str, columns: Any, detail: Any, title: str | None = None) -> int:
    from ltmctl import ui

    render.emit(rows, output, columns, detail, title)
    ui.err.print(render.summary(rows))
    return fleet_rows.exit_code(rows)


def metrics(envs: list[Any], *, since: str | None, until: str | None, step: str | None, watch: bool,
            png: Path | None, output: str, debug: bool = False) -> int:
    from datetime import UTC, datetime

    from ltmctl.fleet import metrics as fleet_metrics
    from ltmctl.logs.entries import parse_since
    from ltmctl.metrics.figures import parse_duration

    if watch or png:
        raise UsageError("--watch and --png show one environment; a selection of several shows one row each.",
                         hint="Drop them, or name one environment with --env NAME.")
    step_s = parse_duration(step) if step else 60.0
    if step_s < 60 or step_s != int(step_s):
        raise UsageError("--step: Cloud Monitoring aligns to whole seconds, at least 1m.")
    now = datetime.now(UTC)
    end = parse_since(until, now) if until else now
    start = parse_since(since or "1h", now)
    if start >= end:
        raise UsageError(f"--since ({start:%Y-%m-%d %H:%M:%S}) must be before --until ({end:%Y-%m-%d %H:%M:%S}).")
    with render.progress("metrics", len(envs)) as on_done:
        rows = fleet_metrics.collect(envs, start, end, int(step_s), on_done=on_done, debug=debug)
    title = f"{len(envs)} environments · gcp {start:%Y-%m-%d %H:%M} → {end:%H:%M} UTC, newest step of {int(step_s)}s"
    return _finish(rows, output, render.METRICS_COLUMNS, render.metrics_detail, title)


def status(envs: list[Any], *, output: str, debug: bool = False) -> int:
    from ltmctl.fleet import status as fleet_status

    with render.progress("status", len(envs)) as on_done:
        rows = fleet_status.collect(envs, on_done=on_done, debug=debug)
    return _finish(rows, output, render.STATUS_COLUMNS, render.status_detail)


def verify(envs: list[Any], *, timeout_s: float, metrics_wait_s: float | None, service_account: str | None,
           output: str, debug: bool = False) -> int:
    from ltmctl.fleet import verify as fleet_verify

    with render.progress("verify", len(envs)) as on_done:
        rows = fleet_verify.collect(envs, timeout_s=timeout_s, metrics_wait_s=metrics_wait_s,
                                    service_account=service_account, on_done=on_done, debug=debug)
    return _finish(rows, "json" if output == "json" else "table", render.VERIFY_COLUMNS, render.verify_detail)
