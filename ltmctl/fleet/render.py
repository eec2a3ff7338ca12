"""The fleet view on the terminal: one table row per environment on stdout (or JSON), progress on stderr."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

STYLES = {"error": "red", "breach": "red", "failed": "red", "drifted": "yellow", "no data": "dim", "ok": "green"}


@contextmanager
def progress(command: str, total: int) -> Iterator[Callable[[int, int], None]]:
    """`on_done(done, total)` for the runner, shown as one updating line on stderr."""
    from ltmctl import ui

    with ui.err.status(f"{command}: 0/{total} environments…") as status:
        yield lambda done, of: status.update(f"{command}: {done}/{of} environments…")


def emit(rows: list[dict[str, Any]], output: str, columns: list[tuple[str, Callable[[dict[str, Any]], str]]],
         detail: Callable[[dict[str, Any]], str], title: str | None = None) -> None:
    from ltmctl import ui

    if output == "json":
        ui.emit(rows, "json")
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table("environment", *(name for name, _ in columns), "state", "detail", title=title)
    for row in rows:
        style = STYLES[row["state"]]
        cells = ["" if row["state"] == "error" else escape(show(row)) for _, show in columns]
        said = row["error"] if row["state"] == "error" else detail(row)
        table.add_row(escape(row["environment"]), *cells, f"[{style}]{row['state']}[/{style}]", escape(said))
    console = ui.out
    if not console.is_terminal:
        from rich.console import Console

        # Off a terminal (a pipe, a CI log) rich assumes 80 columns: too few for a row per environment.
        console = Console(file=console.file, width=200, soft_wrap=True)
    console.print(table)


def summary(rows: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    return f"{len(rows)} environments: " + ", ".join(f"{n} {state}" for state, n in counts.items())


def number(value: float | None, unit: str = "", digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}{unit}"


def latency(value: float | None, estimate: str | None) -> str:
    """A latency percentile with the sign of how it was estimated from buckets (≤ a bucket's bound, ≈ interpolated)."""
    from ltmctl.metrics.figures import ESTIMATE_SIGNS

    if value is None or estimate is None:
        return number(value, " ms", 1)
    return f"{ESTIMATE_SIGNS[estimate]} {value:,.1f} ms"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.2f}%"


METRICS_COLUMNS: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
    ("p50", lambda r: latency(r["p50_ms"], r.get("p50_estimate"))),
    ("p99", lambda r: latency(r["p99_ms"], r.get("p99_estimate"))),
    ("4xx", lambda r: percent(r["rate_4xx"])),
    ("5xx", lambda r: percent(r["rate_5xx"])),
    ("backlog", lambda r: number(r["backlog"])),
    ("oldest unacked", lambda r: number(r["oldest_unacked_s"], " s")),
    ("dead letters", lambda r: number(r["dead_letters"])),
]

STATUS_COLUMNS: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
    ("ok", lambda r: str(r["resources"]["ok"])),
    ("missing", lambda r: str(r["resources"]["missing"])),
    ("drifted", lambda r: str(r["resources"]["drifted"])),
    ("services", lambda r: ", ".join(f"{c} {s}" for c, s in r["services"].items())),
]

VERIFY_COLUMNS: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
    ("passed", lambda r: str(r["passed"])),
    ("failed", lambda r: str(r["failed"])),
]


def metrics_detail(row: dict[str, Any]) -> str:
    """Which objectives an environment breaches, worst first."""
    from ltmctl.metrics.figures import ESTIMATE_SIGNS

    units = {"latency_p99_ms": " ms", "oldest_unacked_s": " s"}
    parts = []
    for b in row.get("breached", []):
        if b["objective"] == "error_rate":
            parts.append(f"{b['figure']} {b['value'] * 100:.2f}% > {b['limit'] * 100:g}%")
        else:
            unit = units[b["objective"]]
            sign = {"api latency p99": row.get("p99_estimate")}.get(b["figure"])
            shown = f"{ESTIMATE_SIGNS[sign]} " if sign else ""
            parts.append(f"{b['figure']} {shown}{b['value']:,.0f}{unit} > {b['limit']:g}{unit}")
    return "; ".join(parts)


def status_detail(row: dict[str, Any]) -> str:
    return row.get("first_problem", "")


def verify_detail(row: dict[str, Any]) -> str:
    first = row.get("first_failed")
    return f"{first['check']}: {first['saw']}" if first else ""
