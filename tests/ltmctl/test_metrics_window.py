"""`ltmctl metrics --since/--until` on the local stack: snapshots its recorder keeps, windows computed from them,
and latency figures that say they come from histogram buckets."""

import json
import time
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

import httpx
import pytest
from typer.testing import CliRunner

from ltmctl.cli import app
from ltmctl.local.stack import history_file, mint_token
from ltmctl.metrics import history, prometheus
from ltmctl.metrics.figures import bucket_row
from ltmctl.metrics.local_window import report
from tests.conftest import TEST_CONFIG, running_stack

runner = CliRunner()
SLO = SimpleNamespace(latency_p99_ms=500, error_rate=0.01, oldest_unacked_s=300)
BUCKETS = (0.05, 0.1, 0.25, float("inf"))


def api(at: float, ok: float, bad: float, under_100ms: float = 0.0) -> history.Snapshot:
    """The API's counters at `at`: `ok` 2xx and `bad` 4xx, every one between 50 and 100 ms unless said."""
    n = ok + bad
    cumulative = [(0.05, 0.0), (0.1, under_100ms or n), (0.25, n), (float("inf"), n)]
    return history.Snapshot(at, {"api": history.Counts({"requests 2xx": ok, "requests 4xx": bad}, cumulative)})


def figure(rep, name):
    return next(f for f in rep.figures if f.name == name)


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def test_one_request_between_50_and_100_ms_is_a_bucket_not_a_measurement():
    one = [(0.05, 0.0), (0.1, 1.0), (float("inf"), 1.0)]
    assert prometheus.bucket_of(0.5, one) == prometheus.bucket_of(0.99, one) == (0.05, 0.1)
    assert prometheus.shown_bucket((0.05, 0.1)) == "≤ 100 ms"
    assert prometheus.shown_bucket((30.0, float("inf"))) == "> 30000 ms"
    # judged only where the bucket decides: (250, 500] is under 500; (250, 1000] could be either
    assert bucket_row("p99", (0.25, 0.5), 500).status == "ok"
    assert bucket_row("p99", (0.5, 1.0), 500).status == "breach"
    assert bucket_row("p99", (0.25, 1.0), 500).status == "info"


def test_a_window_counts_only_the_increase_between_its_snapshots():
    snaps = [api(0, 0, 0), api(10, 100, 50), api(20, 103, 50), api(30, 110, 60)]
    rep, covered = report(snaps, at(10), at(20), 10, "p", SLO)
    assert covered == (10, 20)
    assert figure(rep, "api requests/s").value == pytest.approx(3 / 10)
    assert figure(rep, "api 4xx rate").value == 0.0
    rep, _ = report(snaps, at(0), at(30), 10, "p", SLO)
    assert figure(rep, "api requests/s").value == pytest.approx(170 / 30)
    assert [round(v, 3) for v in figure(rep, "api requests/s").series] == [15.0, 0.3, 1.7]


def test_a_counter_that_goes_down_is_a_restart_not_a_negative_count():
    # 100 requests, a restart (the API counts from 0 again), then 4 more: 104 in all, none negative.
    snaps = [api(0, 0, 0), api(10, 100, 0), api(20, 1, 0), api(30, 4, 0)]
    total, restarts = history.increase(snaps, "api")
    assert restarts == 1
    assert total.counters["requests 2xx"] == 104
    rep, _ = report(snaps, at(10), at(30), 10, "p", SLO)
    assert figure(rep, "api requests/s").value == pytest.approx(4 / 20)


def test_a_window_the_history_does_not_reach_is_refused():
    from ltmctl.errors import UsageError

    snaps = [api(0, 0, 0), api(1000, 5, 0), api(1010, 6, 0)]
    with pytest.raises(UsageError, match="does not cover"):
        report(snaps, at(990), at(1010), 10, "p", SLO, slack=25)
    # before the stack's start (origin) nothing was counted: a window from earlier counts from there
    rep, covered = report(snaps[1:], at(900), at(1010), 10, "p", SLO, origin=1000, slack=25)
    assert covered == (1000, 1010)


def test_latency_of_a_window_is_the_bucket_of_its_requests_only():
    # Before the window: 100 slow requests (250 ms+); in it: 10 between 50 and 100 ms.
    slow = history.Snapshot(10, {"api": history.Counts({"requests 2xx": 100},
                                                       [(0.05, 0), (0.1, 0), (0.25, 0), (float("inf"), 100)])})
    later = history.Snapshot(20, {"api": history.Counts({"requests 2xx": 110},
                                                        [(0.05, 0), (0.1, 10), (0.25, 10), (float("inf"), 110)])})
    rep, _ = report([history.Snapshot(0, {"api": history.Counts()}), slow, later], at(10), at(20), 10, "p", SLO)
    p99 = figure(rep, "api latency p99")
    assert (p99.value, p99.estimate, p99.status) == (100.0, "bucket upper bound", "ok")


def test_the_file_is_bounded_in_snapshots_and_in_bytes(tmp_path):
    path = tmp_path / "history.jsonl"
    held = None
    for i in range(200):
        # Snapshots that grow (counters gain digits): the count bound holds whatever their size.
        held = history.append(path, api(i, 10 ** (i // 20), 0), max_bytes=1_000_000, max_count=40, count=held)
        assert held == len(history.read(path)) <= 40
    kept = history.read(path)
    assert 20 <= len(kept) <= 40 and kept[-1].at == 199  # the newest kept, oldest dropped
    for i in range(200, 400):
        history.append(path, api(i, i, 0), max_bytes=10_000, max_count=10_000)
    assert path.stat().st_size <= 10_000 and history.read(path)[-1].at == 399
    path.write_text(path.read_text() + '{"at": 400, "serv')  # a recorder killed mid-line
    assert history.read(path)[-1].at == 399


def test_the_local_window_has_the_gcp_shape():
    from ltmctl.metrics.cloud_monitoring import Figure, Report

    rep, _ = report([api(0, 0, 0), api(10, 1, 0)], at(0), at(10), 10, "p", SLO)
    gcp = Report("p", at(0), at(10), 10, [Figure("api requests/s", "/s", 1.0, "info", [1.0])])
    assert set(rep.as_dict()) == set(gcp.as_dict())
    assert {k for f in rep.as_dict()["figures"] for k in f} == set(gcp.as_dict()["figures"][0])


FAST_RECORDER = TEST_CONFIG.replace("    project: ltm-test\n", "    project: ltm-test\n"
                                    "    local: {metrics_history: {every_s: 0.5}}\n", 1)


def _requests_recorded(resolved, at_least: float, after: float) -> float:
    """Wait for a snapshot taken after `after` that counts at least `at_least` requests; its time."""
    deadline = time.monotonic() + 30
    while True:
        snaps = [s for s in history.read(history_file(resolved)) if s.at > after and "api" in s.services]
        done = [s for s in snaps if sum(v for k, v in s.services["api"].counters.items()
                                        if k.startswith("requests ")) >= at_least]
        if done:
            return done[0].at
        assert time.monotonic() < deadline, "the recorder never recorded the requests"
        time.sleep(0.1)


def test_metrics_since_until_on_the_local_stack_counts_only_the_window(tmp_path):
    with running_stack(tmp_path, FAST_RECORDER) as s:
        base = s.state.api_url
        action = f"w-{uuid.uuid4().hex[:8]}"
        row = {"event_id": str(uuid.uuid4()), "action_id": action, "user_email": "w@example.com", "app_id": "a",
               "app_department": "d", "event_time": "2026-11-29T10:00:00Z", "message_id": "m",
               "publish_time": "2026-11-29T10:00:00Z", "ingest_time": "2026-11-29T10:00:00Z"}
        assert s.clients.bigquery.insert_rows_json(s.table_id, [row]) == []
        token = {"x-goog-iap-jwt-assertion": mint_token(s.resolved, "w@example.com", 300)}
        with httpx.Client(base_url=base) as client:
            for _ in range(7):  # before the window: 7 refused
                assert client.get(f"/get_data/{action}:w@example.com").status_code == 401
            first = _requests_recorded(s.resolved, 7, 0)
            start = _requests_recorded(s.resolved, 7, first)  # a snapshot after them: the window's start
            for _ in range(3):  # in the window: 3 answered
                assert client.get(f"/get_data/{action}:w@example.com", params={"days": 365},
                                  headers=token).status_code == 200
            end = _requests_recorded(s.resolved, 10, start)
        window = ["--since", at(start).isoformat(), "--until", at(end + 0.01).isoformat()]
        result = runner.invoke(app, ["--config", str(s.resolved.path), "metrics", *window, "-o", "json"])
        assert result.exit_code == 0, result.output
        doc = json.loads(result.stdout)
        values = {f["name"]: f for f in doc["figures"]}
        covered = (datetime.fromisoformat(doc["covered"]["until"]) -
                   datetime.fromisoformat(doc["covered"]["since"])).total_seconds()
        assert values["api requests/s"]["value"] * covered == pytest.approx(3)
        assert values["api 4xx rate"]["value"] == 0.0  # the 7 refused ones are before the window
        assert values["api latency p99"]["estimate"] == "bucket upper bound"
        # The same window as a table, and a window ending now (a live read as its last snapshot).
        table = runner.invoke(app, ["--config", str(s.resolved.path), "metrics", *window])
        assert table.exit_code == 0 and "(bucket)" in table.stdout and "≤" in table.stdout
        now = runner.invoke(app, ["--config", str(s.resolved.path), "metrics", "--since", "1m", "-o", "json"])
        assert now.exit_code == 0, now.output
        recent = {f["name"]: f["value"] for f in json.loads(now.stdout)["figures"]}
        assert recent["api 4xx rate"] == pytest.approx(0.7)  # since the stack started (under a minute ago)


def test_a_fleet_row_marks_bucket_estimates_and_judges_them_as_the_figure_does():
    from ltmctl.fleet import metrics as fleet_metrics
    from ltmctl.fleet.render import METRICS_COLUMNS, metrics_detail
    from ltmctl.metrics.figures import Row

    resolved = SimpleNamespace(name="local", env=SimpleNamespace(slo=SLO, backend="local", project="p"))
    straddling = bucket_row("api latency p99", (0.25, 1.0), 500)  # the p99 may be under 500 ms, or over
    over = bucket_row("api latency p99", (0.5, 1.0), 500)
    for p99, state in ((straddling, "ok"), (over, "breach")):
        figures = [Row("api latency p50", 100.0, "ms", "info", "bucket upper bound"), p99]
        got = fleet_metrics._row_of(resolved, figures)
        assert got["state"] == state
        shown = dict((name, show(got)) for name, show in METRICS_COLUMNS)
        assert shown["p50"] == "≤ 100.0 ms" and shown["p99"] == "≤ 1,000.0 ms"
    assert "api latency p99 ≤ 1,000 ms > 500 ms" in metrics_detail(got)
