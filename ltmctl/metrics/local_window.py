"""The local stack's figures over a window (`metrics --since/--until`), from the snapshots its recorder keeps, in
the shape Cloud Monitoring's figures have for a gcp environment (`cloud_monitoring.Report`): same names, same
rows, same JSON, one value per step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ltmctl.errors import UsageError
from ltmctl.metrics import history, prometheus
from ltmctl.metrics.cloud_monitoring import Figure, Report, steps
from ltmctl.metrics.figures import Source, View, bucket_row


def _figures_of(total: dict[str, history.Counts], seconds: float, slo: Any) -> list[Figure]:
    """One step's (or the whole window's) figures from the services' increases over `seconds`."""
    api = total.get("api", history.Counts())
    requests = sum(v for k, v in api.counters.items() if k.startswith("requests "))
    by_class = {k.removeprefix("requests "): v for k, v in api.counters.items() if k.startswith("requests ")}

    def share(cls: str) -> float | None:
        return by_class.get(cls, 0.0) / requests if requests else None

    rows = [bucket_row("api latency p50", prometheus.bucket_of(0.5, api.buckets)),
            bucket_row("api latency p95", prometheus.bucket_of(0.95, api.buckets)),
            bucket_row("api latency p99", prometheus.bucket_of(0.99, api.buckets), slo.latency_p99_ms)]
    share_5xx = share("5xx")
    out = [Figure("api requests/s", "/s", requests / seconds if seconds > 0 else None, "info", [])]
    out += [Figure(r.name, r.unit, r.value, r.status, [], r.estimate) for r in rows]
    out += [Figure("api 4xx rate", "%", share("4xx"), "info", []),
            Figure("api 5xx rate", "%", share_5xx, "info" if share_5xx is None else
                   ("breach" if share_5xx > slo.error_rate else "ok"), [])]
    if "ingest" in total:
        c = total["ingest"].counters
        received = sum(c.get(outcome, 0.0) for outcome in history.INGEST_OUTCOMES)
        dead = c.get("dead_lettered", 0.0)
        out += [Figure("ingest received/s", "/s", received / seconds if seconds > 0 else None, "info", []),
                Figure("ingest stored", "", c.get("stored", 0.0), "info", []),
                Figure("ingest dead-lettered", "", dead, "breach" if dead else "ok", []),
                Figure("ingest retried", "", c.get("retried", 0.0), "info", [])]
    return out


def _clock(at: float) -> str:
    return f"{datetime.fromtimestamp(at).astimezone():%Y-%m-%d %H:%M:%S}"


def _increases(snapshots: list[history.Snapshot]) -> dict[str, history.Counts]:
    names = {name for s in snapshots for name in s.services}
    return {name: history.increase(snapshots, name)[0] for name in sorted(names)}


def _span(snapshots: list[history.Snapshot], start: float, end: float, origin: float | None,
          slack: float) -> list[history.Snapshot]:
    """The snapshots that cover [start, end], or [] when the last one at or before start is more than `slack`
    older (the recorder was not running then: counting from it would pass hours off as the window)."""
    if origin is not None and origin <= end and start <= origin:
        # Before `origin` (the stack's start, where its services counted zero) nothing was counted: from there.
        start = origin if not any(s.at <= start for s in snapshots) else start
    covering = history.span(snapshots, start, end)
    if covering and covering[0].at < start - slack:
        return []
    return covering


def report(snapshots: list[history.Snapshot], start: datetime, end: datetime, step_s: int, project: str,
           slo: Any, origin: float | None = None, slack: float = 30.0) -> tuple[Report, tuple[float, float]]:
    """The window's figures, and the interval the snapshots really cover (from the one at or before the start
    to the last one at or before the end)."""
    covering = _span(snapshots, start.timestamp(), end.timestamp(), origin, slack)
    if len(covering) < 2:
        before = [s.at for s in snapshots if s.at <= start.timestamp()]
        reach = (f"the last snapshot before its start is from {_clock(before[-1])}, and none follows until "
                 f"{_clock(min((s.at for s in snapshots if s.at > before[-1]), default=end.timestamp()))}"
                 if before else f"the recorded history starts at {_clock(snapshots[0].at)}" if snapshots
                 else "nothing is recorded yet")
        raise UsageError(f"The local stack's metrics history does not cover {start.astimezone():%H:%M:%S} → "
                         f"{end.astimezone():%H:%M:%S}: {reach} (the recorder was not running).",
                         hint="Choose a window within the recorded history, or drop --since/--until for the "
                              "totals since `ltmctl local up`.")
    covered = (covering[0].at, covering[-1].at)
    figures = _figures_of(_increases(covering), covered[1] - covered[0], slo)
    n = steps(start, end, step_s)
    for i in range(n):
        step_end = end - timedelta(seconds=step_s * (n - 1 - i))
        part = _span(snapshots, (step_end - timedelta(seconds=step_s)).timestamp(), step_end.timestamp(), origin,
                     slack)
        values = ({f.name: f.value for f in _figures_of(_increases(part), part[-1].at - part[0].at, slo)}
                  if len(part) >= 2 else {})
        for figure in figures:
            figure.series.append(values.get(figure.name))
    return Report(project, start, end, step_s, figures), covered


class WindowSource(Source):
    """The recorded history of the local stack over --since/--until; without --until the window ends now, with a
    live read of both services as its last snapshot."""

    def __init__(self, state: Any, resolved: Any, since: str, until: str | None, step_s: int | None) -> None:
        self.state, self.resolved, self.since, self.until = state, resolved, since, until
        h = resolved.env.local_settings.metrics_history
        self.step_s = step_s or max(1, round(h.every_s))
        self.every = float(self.step_s)
        self.png_title = f"local stack ({resolved.name})"
        self.started = datetime.fromisoformat(state.started_at).timestamp()
        self.slack = 2 * h.every_s + 5  # a snapshot may come late when the machine is busy

    def snapshots(self) -> list[history.Snapshot]:
        from ltmctl.local.stack import history_file
        from ltmctl.metrics import scrape

        recorded = history.read(history_file(self.resolved))
        started = self.started
        # The services counted from zero when this run of the stack started: a snapshot of zeros there lets a
        # window that starts before the first recording count from the start.
        recorded.append(history.Snapshot(started, {"api": history.Counts(), "ingest": history.Counts()}))
        if self.until is None:
            live = scrape.raw_snapshot(self.state)
            recorded.append(live)
        return sorted(recorded, key=lambda s: s.at)

    def read(self) -> View:
        from ltmctl.metrics.cloud_monitoring import window

        snapshots = self.snapshots()  # first: the live read must fall inside a window that ends now
        start, end = window(self.since, self.until)
        got, covered = report(snapshots, start, end, self.step_s, self.resolved.env.project,
                              self.resolved.env.slo, self.started, self.slack)
        doc = got.as_dict() | {"covered": {"since": datetime.fromtimestamp(covered[0], UTC).isoformat(),
                                           "until": datetime.fromtimestamp(covered[1], UTC).isoformat()}}
        title = (f"local stack · {got.start.astimezone():%Y-%m-%d %H:%M:%S} → {got.end.astimezone():%H:%M:%S} "
                 f"(snapshots {datetime.fromtimestamp(covered[0]).astimezone():%H:%M:%S} → "
                 f"{datetime.fromtimestamp(covered[1]).astimezone():%H:%M:%S}) · step {self.step_s}s")
        return View([(f.row(), f.series) for f in got.figures], doc, got.times, got.series(), title)
