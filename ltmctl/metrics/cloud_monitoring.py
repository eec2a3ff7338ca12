"""A gcp environment's figures from Cloud Monitoring: one time-series query per figure (filters and aggregations,
not MQL, which is deprecated), reduced by Cloud Monitoring itself, then shaped into the rows `ltmctl metrics` shows
for the local stack too (same names where they mean the same thing).

The client is passed in: anything with `list_time_series(name, filter, start, end, aggregation)` answering REST
JSON time series (`ltmctl.gcp.monitoring_rest.MonitoringRest`).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ltmctl.metrics.figures import INTERPOLATED, Row, Source, View

REQUEST_LATENCIES = "run.googleapis.com/request_latencies"  # DELTA DISTRIBUTION, milliseconds
REQUEST_COUNT = "run.googleapis.com/request_count"  # DELTA INT64, labels response_code, response_code_class
INSTANCE_COUNT = "run.googleapis.com/container/instance_count"  # GAUGE INT64, label state (active, idle)
PUBLISHED = "pubsub.googleapis.com/topic/send_message_operation_count"  # DELTA INT64, one per message
BACKLOG = "pubsub.googleapis.com/subscription/num_undelivered_messages"  # GAUGE INT64
OLDEST_UNACKED = "pubsub.googleapis.com/subscription/oldest_unacked_message_age"  # GAUGE INT64, seconds
DEAD_LETTERED = "pubsub.googleapis.com/subscription/dead_letter_message_count"  # DELTA INT64

CLASS_LABEL = "metric.labels.response_code_class"


@dataclass(frozen=True)
class Query:
    """One timeSeries.list request: a metric of one monitored resource, aligned per series, reduced across."""

    key: str
    metric: str
    resource_type: str
    resource_labels: tuple[tuple[str, str], ...]
    aligner: str
    reducer: str
    group_by: tuple[str, ...] = ()

    @property
    def filter(self) -> str:
        parts = [f'metric.type="{self.metric}"', f'resource.type="{self.resource_type}"']
        parts += [f'resource.labels.{key}="{value}"' for key, value in self.resource_labels]
        return " AND ".join(parts)

    def aggregation(self, step_s: int) -> dict[str, Any]:
        out: dict[str, Any] = {"alignmentPeriod": f"{step_s}s", "perSeriesAligner": self.aligner,
                               "crossSeriesReducer": self.reducer}
        if self.group_by:
            out["groupByFields"] = list(self.group_by)
        return out


def services(resolved: Any) -> list[tuple[str, str]]:
    """(short name, Cloud Run service) of the pipeline's services; no ingest service when Pub/Sub writes to
    BigQuery itself."""
    out = [("api", resolved.env.api.service)]
    if resolved.pipeline.ingest_mode == "push":
        out.append(("ingest", resolved.env.ingest.service))
    return out


def queries(resolved: Any) -> list[Query]:
    pipeline = resolved.pipeline
    out: list[Query] = []
    for short, service in services(resolved):
        run = (("service_name", service),)
        # Percentiles of the merged distribution of every revision's delta: a true p99 of all requests. Never
        # ALIGN_PERCENTILE_99 per series followed by a mean, which averages percentiles.
        for pct in (50, 95, 99):
            out.append(Query(f"{short} latency p{pct}", REQUEST_LATENCIES, "cloud_run_revision", run, "ALIGN_DELTA",
                             f"REDUCE_PERCENTILE_{pct}"))
        out.append(Query(f"{short} requests", REQUEST_COUNT, "cloud_run_revision", run, "ALIGN_RATE", "REDUCE_SUM",
                         (CLASS_LABEL,)))
        # Peak instances per step across revisions and states: scale-out, and each step up from zero a cold start.
        out.append(Query(f"{short} instances", INSTANCE_COUNT, "cloud_run_revision", run, "ALIGN_MAX", "REDUCE_SUM"))
    topic = (("topic_id", pipeline.topic),)
    subscription = (("subscription_id", pipeline.subscription),)
    out += [
        Query("pubsub published", PUBLISHED, "pubsub_topic", topic, "ALIGN_RATE", "REDUCE_SUM"),
        Query("pubsub backlog", BACKLOG, "pubsub_subscription", subscription, "ALIGN_MAX", "REDUCE_SUM"),
        Query("pubsub oldest unacked", OLDEST_UNACKED, "pubsub_subscription", subscription, "ALIGN_MAX",
              "REDUCE_MAX"),
        Query("pubsub dead-lettered", DEAD_LETTERED, "pubsub_subscription", subscription, "ALIGN_DELTA",
              "REDUCE_SUM"),
        # What reaches the dead-letter topic at all: the events the function refuses, which it publishes there
        # itself (acknowledged, so the subscription's dead_letter_message_count never sees them).
        Query("dead-letter topic", PUBLISHED, "pubsub_topic", (("topic_id", pipeline.dead_letter_topic),),
              "ALIGN_DELTA", "REDUCE_SUM"),
    ]
    return out


def fetch(client: Any, project: str, wanted: list[Query], start: datetime, end: datetime, step_s: int,
          workers: int = 6) -> dict[str, list[dict[str, Any]]]:
    """Every query's time series; the queries are independent, so they run side by side."""

    def one(query: Query) -> list[dict[str, Any]]:
        return client.list_time_series(f"projects/{project}", query.filter, start, end, query.aggregation(step_s))

    with ThreadPoolExecutor(max_workers=min(workers, len(wanted)) or 1) as pool:
        return dict(zip((q.key for q in wanted), pool.map(one, wanted), strict=True))


# --- shaping the answers into rows ---------------------------------------------------------------------------------


@dataclass
class Figure:
    name: str
    unit: str  # "ms", "/s", "%", "s" or "" (a count)
    value: float | None  # the newest step that has data, or the window's total for counts
    status: str  # ok | breach | info
    series: list[float | None]  # one value per step, oldest first
    estimate: str | None = None  # how a latency percentile was had (ltmctl.metrics.figures.ESTIMATE_SIGNS)

    def row(self) -> Row:
        return Row(self.name, self.value, self.unit, self.status, self.estimate)

    def as_dict(self, times: list[datetime]) -> dict[str, Any]:
        return {"name": self.name, "unit": self.unit, "value": self.value, "status": self.status,
                "estimate": self.estimate,
                "series": [{"time": t.isoformat(), "value": v} for t, v in zip(times, self.series, strict=True)]}


@dataclass
class Report:
    project: str
    start: datetime
    end: datetime
    step_s: int
    figures: list[Figure]

    @property
    def times(self) -> list[datetime]:
        """End time of each step, oldest first."""
        n = steps(self.start, self.end, self.step_s)
        return [self.end - timedelta(seconds=self.step_s * (n - 1 - i)) for i in range(n)]

    def rows(self) -> list[Row]:
        return [f.row() for f in self.figures]

    def series(self) -> dict[str, list[float | None]]:
        return {f.name: f.series for f in self.figures}

    def as_dict(self) -> dict[str, Any]:
        times = self.times
        return {"project": self.project, "since": self.start.isoformat(), "until": self.end.isoformat(),
                "step_s": self.step_s, "figures": [f.as_dict(times) for f in self.figures]}


def steps(start: datetime, end: datetime, step_s: int) -> int:
    return max(1, math.ceil((end - start).total_seconds() / step_s))


def parse_time(text: str) -> datetime:
    """RFC 3339 as Google writes it, with up to nanoseconds (Python keeps microseconds)."""
    import re

    m = re.fullmatch(r"([^.Zz+]+?)(?:\.(\d+))?(Z|z|[+-]\d\d:\d\d)", text.strip())
    if not m:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    zone = "+00:00" if m.group(3) in ("Z", "z") else m.group(3)
    return datetime.fromisoformat(f"{m.group(1)}.{(m.group(2) or '0')[:6].ljust(6, '0')}{zone}")


def point_value(point: dict[str, Any]) -> float:
    value = point["value"]
    if "int64Value" in value:
        return float(int(value["int64Value"]))
    if "doubleValue" in value:
        return float(value["doubleValue"])
    raise ValueError(f"unexpected value type in a reduced time series: {sorted(value)}")


def slots(series: dict[str, Any], end: datetime, step_s: int, n: int) -> list[float | None]:
    """A series' points on the step grid that ends at `end` (Cloud Monitoring answers newest first)."""
    out: list[float | None] = [None] * n
    for point in series.get("points", []):
        ended = parse_time(point["interval"]["endTime"])
        back = round((end - ended).total_seconds() / step_s)
        if 0 <= back < n:
            out[n - 1 - back] = point_value(point)
    return out


def _latest(values: list[float | None]) -> float | None:
    return next((v for v in reversed(values) if v is not None), None)


def _single(answer: list[dict[str, Any]], end: datetime, step_s: int, n: int) -> list[float | None]:
    """The one series an ungrouped reduction answers (none when the window had no data)."""
    return slots(answer[0], end, step_s, n) if answer else [None] * n


def _rate(raw: list[float | None]) -> tuple[float | None, list[float | None]]:
    """A rate's newest value, and its series with steps without a point as 0 (nothing happened then)."""
    return _latest(raw), [v or 0.0 for v in raw]


def _over(value: float | None, limit: float) -> str:
    return "info" if value is None else ("breach" if value > limit else "ok")


def _service_figures(short: str, answers: dict[str, list[dict[str, Any]]], slo: Any, end: datetime, step_s: int,
                     n: int) -> list[Figure]:
    latency = {pct: _single(answers[f"{short} latency p{pct}"], end, step_s, n) for pct in (50, 95, 99)}
    by_class = {s.get("metric", {}).get("labels", {}).get("response_code_class", "?"): slots(s, end, step_s, n)
                for s in answers[f"{short} requests"]}
    raw_total: list[float | None] = [
        sum(v[i] or 0.0 for v in by_class.values()) if any(v[i] is not None for v in by_class.values()) else None
        for i in range(n)]

    def ratio(cls: str) -> list[float | None]:
        # Of the requests in each step; a step without requests has no ratio.
        values = by_class.get(cls, [None] * n)
        return [(values[i] or 0.0) / raw_total[i] if raw_total[i] else None for i in range(n)]

    current_rate, total = _rate(raw_total)
    rate_4xx, rate_5xx = ratio("4xx"), ratio("5xx")
    p99, share_5xx = _latest(latency[99]), _latest(rate_5xx)
    instances = _single(answers[f"{short} instances"], end, step_s, n)
    return [
        # The ingest service's requests are Pub/Sub's pushes: what the local stack calls received.
        Figure("api requests/s" if short == "api" else "ingest received/s", "/s", current_rate, "info", total),
        # REDUCE_PERCENTILE_* interpolates inside the buckets of Cloud Run's latency distributions.
        Figure(f"{short} latency p50", "ms", _latest(latency[50]), "info", latency[50], INTERPOLATED),
        Figure(f"{short} latency p95", "ms", _latest(latency[95]), "info", latency[95], INTERPOLATED),
        Figure(f"{short} latency p99", "ms", p99, _over(p99, slo.latency_p99_ms), latency[99], INTERPOLATED),
        Figure(f"{short} 4xx rate", "%", _latest(rate_4xx), "info", rate_4xx),
        Figure(f"{short} 5xx rate", "%", share_5xx, _over(share_5xx, slo.error_rate), rate_5xx),
        Figure(f"{short} instances", "", _latest(instances), "info", instances),
    ]


def figures(answers: dict[str, list[dict[str, Any]]], resolved: Any, end: datetime, step_s: int,
            n: int) -> list[Figure]:
    slo = resolved.env.slo
    out: list[Figure] = []
    for short, _ in services(resolved):
        out += _service_figures(short, answers, slo, end, step_s, n)
    published_now, published = _rate(_single(answers["pubsub published"], end, step_s, n))
    backlog = _single(answers["pubsub backlog"], end, step_s, n)
    oldest = _single(answers["pubsub oldest unacked"], end, step_s, n)
    oldest_now = _latest(oldest)
    _, dead = _rate(_single(answers["pubsub dead-lettered"], end, step_s, n))
    _, dlq = _rate(_single(answers["dead-letter topic"], end, step_s, n))
    dead_total, dlq_total = sum(v or 0.0 for v in dead), sum(v or 0.0 for v in dlq)
    return out + [
        Figure("pubsub published/s", "/s", published_now, "info", published),
        Figure("pubsub backlog", "", _latest(backlog), "info", backlog),
        Figure("pubsub oldest unacked", "s", oldest_now, _over(oldest_now, slo.oldest_unacked_s), oldest),
        # Counts over the whole window: any dead letter is worth a look.
        Figure("pubsub dead-lettered", "", dead_total, "breach" if dead_total else "ok", dead),
        Figure("ingest dead-lettered", "", dlq_total, "breach" if dlq_total else "ok", dlq),
    ]


def report(client: Any, resolved: Any, start: datetime, end: datetime, step_s: int) -> Report:
    """Query every figure of the window [start, end] at `step_s` resolution."""
    project = resolved.env.project
    answers = fetch(client, project, queries(resolved), start, end, step_s)
    n = steps(start, end, step_s)
    return Report(project, start, end, step_s, figures(answers, resolved, end, step_s, n))


def window(since: str, until: str | None) -> tuple[datetime, datetime]:
    """[since, until] measured back from now, as in `ltmctl logs --since`."""
    from datetime import UTC

    from ltmctl.errors import UsageError
    from ltmctl.logs.entries import parse_since

    now = datetime.now(UTC)
    end = parse_since(until, now) if until else now
    start = parse_since(since, now)
    if start >= end:
        raise UsageError(f"--since ({start:%Y-%m-%d %H:%M:%S}) must be before --until ({end:%Y-%m-%d %H:%M:%S}).")
    return start, end


class MonitoringSource(Source):
    """A gcp environment's window of Cloud Monitoring, read again (the window moved on to now) on each read."""

    def __init__(self, client: Any, resolved: Any, since: str, until: str | None, step_s: int) -> None:
        self.client, self.resolved, self.since, self.until = client, resolved, since, until
        self.step_s = step_s
        self.every = float(step_s)
        self.png_title = f"{resolved.env.project} ({resolved.name})"

    def read(self) -> View:
        from ltmctl.gcp.errors import google_errors

        with google_errors(self.resolved.env.project, "reading metrics from Cloud Monitoring"):
            got = report(self.client, self.resolved, *window(self.since, self.until), self.step_s)
        title = f"{got.project} · {got.start:%Y-%m-%d %H:%M} → {got.end:%H:%M} UTC · step {self.step_s}s"
        return View([(f.row(), f.series) for f in got.figures], got.as_dict(), got.times, got.series(), title)
