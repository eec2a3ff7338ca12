"""What both metrics sources give and how figures are shown: a row against its objective, a sparkline, a
duration option, the PNG of latency and error rates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

# How a latency figure was had from a histogram, and the sign it is shown with (#17): a percentile of bucketed
# latencies is never a measurement, and must not read like one.
UPPER_BOUND = "bucket upper bound"  # the value is the upper bound of the bucket that holds the percentile
ABOVE_BUCKETS = "above the last bucket"  # the value is the last finite bound; the percentile is past it
INTERPOLATED = "interpolated from buckets"  # Cloud Monitoring's percentile reducer interpolates inside a bucket
ESTIMATE_SIGNS = {UPPER_BOUND: "≤", ABOVE_BUCKETS: ">", INTERPOLATED: "≈"}


@dataclass(frozen=True)
class Row:
    name: str
    value: float | None
    unit: str
    status: str  # ok | breach | info
    estimate: str | None = None  # None: counted; else one of ESTIMATE_SIGNS' keys


def bucket_row(name: str, bounds: tuple[float, float] | None, limit_ms: float | None = None) -> Row:
    """A latency percentile (bounds in seconds) as a row in ms: the bucket's upper bound, marked as such; judged
    against `limit_ms` only where the bucket decides it (all of it under the objective, or all of it over)."""
    if bounds is None:
        return Row(name, None, "ms", "info")
    lower, upper = bounds[0] * 1000, bounds[1] * 1000
    status = "info"
    if limit_ms is not None:
        status = "ok" if upper <= limit_ms else ("breach" if lower >= limit_ms else "info")
    if upper == float("inf"):
        return Row(name, lower, "ms", status, ABOVE_BUCKETS)
    return Row(name, upper, "ms", status, UPPER_BOUND)


@dataclass
class View:
    """One read of a metrics source, ready to show: rows with their trend, the JSON document, and the series over
    time for the PNG."""

    rows: list[tuple[Row, list[float | None]]]
    document: dict[str, Any]
    times: list[datetime]
    series: dict[str, list[float | None]]
    title: str | None = None


class Source:
    """What `ltmctl metrics` reads an environment's figures from (the local stack's /metrics, Cloud Monitoring)."""

    every: float  # seconds between reads with --watch
    png_title: str

    def read(self) -> View:
        raise NotImplementedError


SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float | None], width: int | None = None) -> str:
    if width and len(values) > width:
        # Each character stands for a run of steps and shows its peak: a spike must not vanish in the average.
        size = -(-len(values) // width)
        chunks = [[v for v in values[i:i + size] if v is not None] for i in range(0, len(values), size)]
        values = [max(chunk) if chunk else None for chunk in chunks]
    present = [v for v in values if v is not None]
    if not present:
        return ""
    low, high = min(present), max(present)
    span = (high - low) or 1.0
    return "".join(" " if v is None else SPARK[int((v - low) / span * (len(SPARK) - 1))] for v in values)


def parse_duration(text: str) -> float:
    """`90`, `30s`, `5m`, `1h`, `1d` → seconds."""
    import re

    from ltmctl.errors import UsageError

    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd]?)", text.strip())
    if not m:
        raise UsageError(f"{text!r} is not a duration such as 30s, 1m, 1h or 1d.")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


PNG_PANELS = (
    ("API latency (ms)", ("api latency p50", "api latency p95", "api latency p99"), 1.0, "latency_p99_ms"),
    ("API error rate (%)", ("api 4xx rate", "api 5xx rate"), 100.0, "error_rate"),
)


def draw_png(path: Any, times: list[datetime], series: dict[str, list[float | None]], slo: Any,
             title: str = "") -> None:
    """Latency percentiles and error rates over time, with the objectives as dashed lines, as a PNG.

    matplotlib is optional (imported here only) and drawn with Agg, so no display is needed."""
    try:
        import matplotlib
    except ImportError:
        from ltmctl.errors import UsageError

        raise UsageError("--png needs matplotlib, which is not installed.",
                         hint="Install it into ltmctl's environment: `pip install matplotlib`.") from None
    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(PNG_PANELS), 1, figsize=(9, 6), sharex=True, constrained_layout=True)
    try:
        for ax, (label, names, scale, objective) in zip(axes, PNG_PANELS, strict=True):
            for name in names:
                values = series.get(name) or [None] * len(times)
                shown = [float("nan") if v is None else v * scale for v in values]
                # Markers: a single sample (metrics without --watch) is a point, not an invisible line.
                ax.plot(times, shown, marker="o", markersize=3, label=name.removeprefix("api "))
            ax.axhline(getattr(slo, objective) * scale, color="red", linestyle="--", linewidth=1, label="objective")
            ax.set_ylabel(label)
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
            ax.legend(loc="upper left", fontsize="small")
        axes[-1].xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S" if len(times) < 2 or
                                                                (times[-1] - times[0]).total_seconds() < 3600
                                                                else "%d %H:%M"))
        if len(times) > 1:
            axes[-1].set_xlim(times[0], times[-1])  # the whole window, also where it has no data
        zone = times[0].tzname() if times and times[0].tzinfo else None
        axes[-1].set_xlabel(f"time ({zone})" if zone else "time")
        if title:
            fig.suptitle(title)
        fig.savefig(path, format="png", dpi=100)
    finally:
        plt.close(fig)
