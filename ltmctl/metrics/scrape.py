"""The local stack's figures, read from the services' Prometheus endpoints and reduced to what Cloud
Monitoring gives in GCP: API latency percentiles, request rate, 4xx/5xx rates; ingest outcomes."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from ltmctl.errors import BackendError
from ltmctl.metrics import prometheus
from ltmctl.metrics.figures import ABOVE_BUCKETS, UPPER_BOUND, Row, Source, View, bucket_row

DATA_ROUTES = ("/get_data/{action_id}:{user_email}", "/app_info/{app_id}:{app_department}")


@dataclass
class ApiFigures:
    requests: float = 0.0
    by_class: dict[str, float] = field(default_factory=dict)  # "2xx" -> count
    # Bounds in seconds of the histogram bucket each percentile falls in: all the histogram knows of it.
    p50: tuple[float, float] | None = None
    p95: tuple[float, float] | None = None
    p99: tuple[float, float] | None = None

    @property
    def p50_ms(self) -> float | None:
        return _shown_ms(self.p50)

    @property
    def p99_ms(self) -> float | None:
        return _shown_ms(self.p99)

    @property
    def rate_4xx(self) -> float:
        return self.by_class.get("4xx", 0.0) / self.requests if self.requests else 0.0

    @property
    def rate_5xx(self) -> float:
        return self.by_class.get("5xx", 0.0) / self.requests if self.requests else 0.0


def _shown_ms(bounds: tuple[float, float] | None) -> float | None:
    """The value a latency row shows: the bucket's upper bound, or past the last bucket its lower one."""
    if bounds is None:
        return None
    return (bounds[0] if bounds[1] == float("inf") else bounds[1]) * 1000


@dataclass
class IngestFigures:
    stored: float = 0.0
    dead_lettered: float = 0.0
    retried: float = 0.0
    dead_letters_by_error: dict[str, float] = field(default_factory=dict)
    inserts: float = 0.0

    @property
    def received(self) -> float:
        return self.stored + self.dead_lettered + self.retried


@dataclass
class Snapshot:
    taken_at: float  # time.time()
    api: ApiFigures
    ingest: IngestFigures | None  # None: the ingest function exposes no metrics endpoint

    def as_dict(self) -> dict[str, Any]:
        api = asdict(self.api) | {"rate_4xx": self.api.rate_4xx, "rate_5xx": self.api.rate_5xx}
        for name in ("p50", "p95", "p99"):
            # JSON has no infinity: a bucket past the last bound is open (null) at the top.
            bounds = api.pop(name)
            api[f"{name}_ms"] = _shown_ms(bounds)
            api[f"{name}_bucket_ms"] = None if bounds is None else [
                bounds[0] * 1000, None if bounds[1] == float("inf") else bounds[1] * 1000]
            api[f"{name}_estimate"] = None if bounds is None else (
                ABOVE_BUCKETS if bounds[1] == float("inf") else UPPER_BOUND)
        ingest = None if self.ingest is None else asdict(self.ingest) | {"received": self.ingest.received}
        return {"time": datetime.fromtimestamp(self.taken_at).astimezone().isoformat(timespec="seconds"),
                "api": api, "ingest": ingest}


def reduce_api(text: str, routes: tuple[str, ...] = DATA_ROUTES) -> ApiFigures:
    """Requests and latency of the data routes (health checks and /metrics itself are left out)."""
    samples = prometheus.parse(text)
    figures = ApiFigures()
    cumulative: dict[float, float] = {}
    for route in routes:
        for name, labels, value in samples:
            if name == "ltm_api_requests_total" and labels.get("route") == route:
                figures.by_class[labels["status_class"]] = figures.by_class.get(labels["status_class"], 0) + value
                figures.requests += value
        for bound, count in prometheus.buckets(samples, "ltm_api_request_duration_seconds", route=route):
            cumulative[bound] = cumulative.get(bound, 0.0) + count
    ordered = sorted(cumulative.items())
    for q, attr in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
        setattr(figures, attr, prometheus.bucket_of(q, ordered))
    return figures


def reduce_ingest(text: str) -> IngestFigures:
    samples = prometheus.parse(text)
    figures = IngestFigures(
        stored=prometheus.total(samples, "ltm_ingest_messages_total", outcome="stored"),
        dead_lettered=prometheus.total(samples, "ltm_ingest_messages_total", outcome="dead_lettered"),
        retried=prometheus.total(samples, "ltm_ingest_messages_total", outcome="retried"),
        inserts=prometheus.total(samples, "ltm_ingest_inserts_total"),
    )
    for name, labels, value in samples:
        if name == "ltm_ingest_dead_letters_total":
            figures.dead_letters_by_error[labels["error"]] = value
    return figures


def _get(url: str) -> str:
    import httpx

    try:
        response = httpx.get(url, timeout=5.0)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise BackendError(f"Cannot read metrics from {url}: {exc}",
                           hint="Check the stack with `ltmctl local status`.") from None
    return response.text


def snapshot(state: Any) -> Snapshot:
    """Read both endpoints of a running local stack now."""
    api = reduce_api(_get(state.api_url + "/metrics"))
    ingest = reduce_ingest(_get(state.ingest_metrics_url)) if state.ingest_metrics_url else None
    return Snapshot(time.time(), api, ingest)


def raw_snapshot(state: Any) -> Any:
    """Both endpoints' cumulative counters now, as the recorder keeps them (`ltmctl.metrics.history`)."""
    from ltmctl.metrics import history

    services = {"api": history.api_counts(_get(state.api_url + "/metrics"))}
    if state.ingest_metrics_url:
        services["ingest"] = history.ingest_counts(_get(state.ingest_metrics_url))
    return history.Snapshot(time.time(), services)


def rate(before: Snapshot, after: Snapshot, pick: Any) -> float:
    """Per-second rate of a counter between two snapshots."""
    elapsed = after.taken_at - before.taken_at
    return (pick(after) - pick(before)) / elapsed if elapsed > 0 else 0.0


def rows(current: Snapshot, previous: Snapshot | None, started_at: float, slo: Any) -> list[Row]:
    """The figures of one refresh; rates are per second since `previous`, or since the stack started."""
    since = previous or Snapshot(started_at, ApiFigures(), IngestFigures() if current.ingest else None)
    api = current.api
    request_rate = rate(since, current, lambda s: s.api.requests)
    out = [
        Row("api requests/s", request_rate, "/s", "info"),
        bucket_row("api latency p50", api.p50),
        bucket_row("api latency p95", api.p95),
        bucket_row("api latency p99", api.p99, slo.latency_p99_ms),
        Row("api 4xx rate", api.rate_4xx, "%", "info"),
        Row("api 5xx rate", api.rate_5xx, "%", "breach" if api.rate_5xx > slo.error_rate else "ok"),
    ]
    if current.ingest is not None:
        ingest = current.ingest
        out += [
            Row("ingest received/s", rate(since, current, lambda s: s.ingest.received), "/s", "info"),
            Row("ingest stored", ingest.stored, "", "info"),
            Row("ingest dead-lettered", ingest.dead_lettered, "", "breach" if ingest.dead_lettered else "ok"),
            Row("ingest retried", ingest.retried, "", "info"),
        ]
    return out


class StackSource(Source):
    """The running local stack, read after read: rates since the previous read (the first: since the stack
    started), and each figure's history for its trend and the PNG."""

    png_title = "local stack"

    def __init__(self, state: Any, slo: Any, every: float) -> None:
        self.state, self.slo, self.every = state, slo, every
        self.started_at = datetime.fromisoformat(state.started_at).timestamp()
        self.previous: Snapshot | None = None
        self.times: list[datetime] = []
        self.history: dict[str, list[float | None]] = {}

    def read(self) -> View:
        current = snapshot(self.state)
        figures = rows(current, self.previous, self.started_at, self.slo)
        self.previous = current
        self.times.append(datetime.fromtimestamp(current.taken_at).astimezone())
        for row in figures:
            self.history.setdefault(row.name, []).append(row.value)
        return View([(row, self.history[row.name][-30:]) for row in figures],
                     current.as_dict() | {"figures": [asdict(r) for r in figures]},
                     list(self.times), {name: list(values) for name, values in self.history.items()})
