"""`ltmctl metrics` in a gcp environment: the real requests to Cloud Monitoring's REST API (against the fake, which
aligns and reduces raw series as Cloud Monitoring does), and figures the test works out on its own."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ltmctl.gcp.fake import FakeGcp
from ltmctl.gcp.fake.monitoring import MonitoringApi
from ltmctl.metrics import scrape as metrics_local
from tests.gcp.support import PROJECT

UNTIL = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
WINDOW = ["--since", "2026-11-29T09:55:00Z", "--until", "2026-11-29T10:00:00Z", "--step", "1m"]
BOUNDS = [0, 10, 20, 50, 100, 200, 500, 1000, 2000]  # bucket i+1 is [BOUNDS[i], BOUNDS[i+1]), bucket 0 is < 0
SERIES_PATH = f"^/v3/projects/{PROJECT}/timeSeries$"


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def at(minutes_before: float) -> datetime:
    """A point's end time inside the step that ends `minutes_before` minutes before UNTIL (30 s into it)."""
    return UNTIL - timedelta(minutes=minutes_before, seconds=30)


def delta_point(end: datetime, value: dict[str, Any]) -> dict[str, Any]:
    return {"interval": {"startTime": iso(end - timedelta(seconds=60)), "endTime": iso(end)}, "value": value}


def gauge_point(end: datetime, value: int) -> dict[str, Any]:
    return {"interval": {"endTime": iso(end)}, "value": {"int64Value": str(value)}}


def distribution(counts: dict[int, int]) -> dict[str, Any]:
    """Request latencies: `counts` maps a bucket index to how many requests fell in it."""
    buckets = [0] * (len(BOUNDS) + 1)
    for index, count in counts.items():
        buckets[index] = count
    total = sum(buckets)
    return {"distributionValue": {"count": str(total), "mean": 1.0,
                                  "bucketOptions": {"explicitBuckets": {"bounds": BOUNDS}},
                                  "bucketCounts": [str(c) for c in buckets]}}


def run_series(metric: str, service: str, revision: str, kind: str, value_type: str, points: list[dict[str, Any]],
               **labels: str) -> dict[str, Any]:
    return {"metric": {"type": metric, "labels": labels},
            "resource": {"type": "cloud_run_revision",
                         "labels": {"project_id": PROJECT, "service_name": service, "revision_name": revision,
                                    "location": "us-central1", "configuration_name": service}},
            "metricKind": kind, "valueType": value_type, "points": points}


def pubsub_series(metric: str, resource_type: str, label: str, name: str, kind: str,
                  points: list[dict[str, Any]]) -> dict[str, Any]:
    return {"metric": {"type": metric}, "resource": {"type": resource_type, "labels": {"project_id": PROJECT,
                                                                                      label: name}},
            "metricKind": kind, "valueType": "INT64", "points": points}


LATENCIES = "run.googleapis.com/request_latencies"
COUNT = "run.googleapis.com/request_count"
INSTANCES = "run.googleapis.com/container/instance_count"


def load_traffic(monitoring: MonitoringApi) -> None:
    """Known traffic. In the newest step: revision r1 answers 90 requests in 0–10 ms and r2 10 in 500–1000 ms;
    2xx 100 + 20, 4xx 24 + 6, 5xx 6 requests; Pub/Sub 600 published, a backlog peaking at 12, the oldest message
    420 s old. Two steps earlier, r1 answers 20 requests in 10–20 ms. Another service and another topic with
    large figures must not leak into ours."""
    add = monitoring.add_series
    add(run_series(LATENCIES, "ltm-api", "ltm-api-r1", "DELTA", "DISTRIBUTION",
                   [delta_point(at(0), distribution({1: 90})), delta_point(at(2), distribution({2: 20}))],
                   response_code="200", response_code_class="2xx"))
    add(run_series(LATENCIES, "ltm-api", "ltm-api-r2", "DELTA", "DISTRIBUTION",
                   [delta_point(at(0), distribution({7: 10}))], response_code="200", response_code_class="2xx"))
    add(run_series(LATENCIES, "other-service", "other-r1", "DELTA", "DISTRIBUTION",
                   [delta_point(at(0), distribution({9: 5000}))], response_code="200", response_code_class="2xx"))
    for revision, code, cls, count in (("ltm-api-r1", "200", "2xx", 100), ("ltm-api-r2", "200", "2xx", 20),
                                       ("ltm-api-r1", "401", "4xx", 24), ("ltm-api-r1", "404", "4xx", 6),
                                       ("ltm-api-r2", "503", "5xx", 6)):
        add(run_series(COUNT, "ltm-api", revision, "DELTA", "INT64",
                       [delta_point(at(0), {"int64Value": str(count)})], response_code=code,
                       response_code_class=cls))
    add(run_series(COUNT, "ltm-api", "ltm-api-r1", "DELTA", "INT64", [delta_point(at(2), {"int64Value": "30"})],
                   response_code="200", response_code_class="2xx"))
    add(run_series(COUNT, "other-service", "other-r1", "DELTA", "INT64", [delta_point(at(0), {"int64Value": "9000"})],
                   response_code="500", response_code_class="5xx"))
    add(run_series(COUNT, "ltm-ingest", "ltm-ingest-r1", "DELTA", "INT64", [delta_point(at(0), {"int64Value": "60"})],
                   response_code="204", response_code_class="2xx"))
    for revision, state, count in (("ltm-api-r1", "active", 2), ("ltm-api-r1", "idle", 1), ("ltm-api-r2", "active", 1)):
        add(run_series(INSTANCES, "ltm-api", revision, "GAUGE", "INT64", [gauge_point(at(0), count)], state=state))
    topic = ("pubsub_topic", "topic_id")
    add(pubsub_series("pubsub.googleapis.com/topic/send_message_operation_count", *topic, "ltm-events", "DELTA",
                      [delta_point(at(0), {"int64Value": "600"})]))
    add(pubsub_series("pubsub.googleapis.com/topic/send_message_operation_count", *topic, "other-topic", "DELTA",
                      [delta_point(at(0), {"int64Value": "100000"})]))
    add(pubsub_series("pubsub.googleapis.com/topic/send_message_operation_count", *topic, "ltm-events-dlq", "DELTA",
                      [delta_point(at(1), {"int64Value": "4"})]))
    sub = ("pubsub_subscription", "subscription_id", "ltm-events-ingest")
    add(pubsub_series("pubsub.googleapis.com/subscription/num_undelivered_messages", *sub, "GAUGE",
                      [gauge_point(at(0), 5), gauge_point(at(0) + timedelta(seconds=20), 12)]))
    add(pubsub_series("pubsub.googleapis.com/subscription/oldest_unacked_message_age", *sub, "GAUGE",
                      [gauge_point(at(0), 420), gauge_point(at(3), 30)]))
    add(pubsub_series("pubsub.googleapis.com/subscription/dead_letter_message_count", *sub, "DELTA",
                      [delta_point(at(0), {"int64Value": "2"}), delta_point(at(3), {"int64Value": "1"})]))


@pytest.fixture
def monitoring(fake: FakeGcp) -> MonitoringApi:
    fake.enable("monitoring.googleapis.com")
    api = fake.api(MonitoringApi)
    load_traffic(api)
    return api


def figures_of(result) -> dict[str, dict[str, Any]]:
    assert result.exit_code == 0, result.output
    return {f["name"]: f for f in json.loads(result.stdout)["figures"]}


def requests_by_metric(fake: FakeGcp) -> dict[tuple[str, str, str], Any]:
    """(metric type, reducer, service / topic / subscription) -> the request."""
    out = {}
    for req in fake.find("GET", SERIES_PATH):
        text = req.query["filter"]
        out[(text.split('"')[1], req.query.get("aggregation.crossSeriesReducer", ""), text.rsplit('"', 2)[-2])] = req
    return out


def test_latency_percentiles_come_from_merged_distributions_not_averaged_percentiles(ltmctl, fake, monitoring):
    got = figures_of(ltmctl("metrics", "-o", "json", *WINDOW))
    # Newest step, both revisions merged: 100 requests, 90 in [0, 10) and 10 in [500, 1000).
    # p50: rank 50 lies in the first bucket: 0 + 10 · 50/90. p95: rank 95 is the 5th of 10 in [500, 1000):
    # 500 + 500 · 5/10. p99: the 9th of 10: 500 + 500 · 9/10.
    assert got["api latency p50"]["value"] == pytest.approx(10 * 50 / 90)
    assert got["api latency p95"]["value"] == pytest.approx(750.0)
    assert got["api latency p99"]["value"] == pytest.approx(950.0)
    # An average of the revisions' own p99s would say (9.9 + 995) / 2 ≈ 502 ms.
    assert abs(got["api latency p99"]["value"] - (9.9 + 995) / 2) > 400
    assert got["api latency p99"]["status"] == "breach"  # objective 500 ms
    assert {got[f"api latency p{pct}"]["estimate"] for pct in (50, 95, 99)} == {"interpolated from buckets"}
    assert got["api requests/s"]["estimate"] is None  # a count is not an estimate
    # Two steps earlier: 20 requests in [10, 20): p50 = 10 + 10 · 10/20.
    series = [p["value"] for p in got["api latency p50"]["series"]]
    assert len(series) == 5 and series[-3] == pytest.approx(15.0) and series[-2] is None

    sent = requests_by_metric(fake)
    for pct in (50, 95, 99):
        req = sent[(LATENCIES, f"REDUCE_PERCENTILE_{pct}", "ltm-api")]
        assert req.query["filter"] == ('metric.type="run.googleapis.com/request_latencies" AND '
                                       'resource.type="cloud_run_revision" AND resource.labels.service_name="ltm-api"')
        assert req.query["aggregation.perSeriesAligner"] == "ALIGN_DELTA"
        assert req.query["aggregation.alignmentPeriod"] == "60s"
        assert "aggregation.groupByFields" not in req.params
        assert (req.query["interval.startTime"], req.query["interval.endTime"]) == ("2026-11-29T09:55:00Z",
                                                                                    "2026-11-29T10:00:00Z")
    assert not any("ALIGN_PERCENTILE" in r.query.get("aggregation.perSeriesAligner", "")
                   or r.query.get("aggregation.crossSeriesReducer") == "REDUCE_MEAN"
                   for r in fake.find("GET", SERIES_PATH))


def test_request_and_error_rates_by_response_class(ltmctl, fake, monitoring):
    got = figures_of(ltmctl("metrics", "-o", "json", *WINDOW))
    per_class = {"2xx": (100 + 20) / 60, "4xx": (24 + 6) / 60, "5xx": 6 / 60}  # requests per second in the step
    total = sum(per_class.values())
    assert got["api requests/s"]["value"] == pytest.approx(total)
    assert got["api 4xx rate"]["value"] == pytest.approx(per_class["4xx"] / total)
    assert got["api 5xx rate"]["value"] == pytest.approx(per_class["5xx"] / total)
    assert got["api 5xx rate"]["status"] == "breach"  # 3.8 % > 1 %
    rates = [p["value"] for p in got["api requests/s"]["series"]]
    assert rates == pytest.approx([0.0, 0.0, 30 / 60, 0.0, total])
    assert got["ingest received/s"]["value"] == pytest.approx(1.0)
    assert got["ingest 5xx rate"]["value"] == 0.0 and got["ingest 5xx rate"]["status"] == "ok"
    assert got["api instances"]["value"] == 4  # 2 active + 1 idle on r1, 1 active on r2

    sent = requests_by_metric(fake)
    counts = sent[(COUNT, "REDUCE_SUM", "ltm-api")]
    assert counts.query["aggregation.perSeriesAligner"] == "ALIGN_RATE"
    assert counts.params["aggregation.groupByFields"] == ["metric.labels.response_code_class"]
    services = {r.query["filter"].rsplit('"', 2)[-2] for r in fake.find("GET", SERIES_PATH)
                if COUNT in r.query["filter"]}
    assert services == {"ltm-api", "ltm-ingest"}
    instances = sent[(INSTANCES, "REDUCE_SUM", "ltm-api")]
    assert instances.query["aggregation.perSeriesAligner"] == "ALIGN_MAX"


def test_pubsub_backlog_age_and_dead_letters(ltmctl, fake, monitoring):
    got = figures_of(ltmctl("metrics", "-o", "json", *WINDOW))
    assert got["pubsub published/s"]["value"] == pytest.approx(600 / 60)
    assert got["pubsub backlog"]["value"] == 12
    assert got["pubsub oldest unacked"]["value"] == 420 and got["pubsub oldest unacked"]["status"] == "breach"
    assert got["pubsub dead-lettered"]["value"] == 3 and got["pubsub dead-lettered"]["status"] == "breach"
    assert got["ingest dead-lettered"]["value"] == 4

    sent = requests_by_metric(fake)
    published = sent[("pubsub.googleapis.com/topic/send_message_operation_count", "REDUCE_SUM", "ltm-events")]
    assert published.query["filter"] == (
        'metric.type="pubsub.googleapis.com/topic/send_message_operation_count" AND resource.type="pubsub_topic" '
        'AND resource.labels.topic_id="ltm-events"')
    assert published.query["aggregation.perSeriesAligner"] == "ALIGN_RATE"
    backlog = sent[("pubsub.googleapis.com/subscription/num_undelivered_messages", "REDUCE_SUM",
                    "ltm-events-ingest")]
    assert backlog.query["aggregation.perSeriesAligner"] == "ALIGN_MAX"
    assert 'resource.type="pubsub_subscription"' in backlog.query["filter"]
    oldest = sent[("pubsub.googleapis.com/subscription/oldest_unacked_message_age", "REDUCE_MAX",
                   "ltm-events-ingest")]
    assert oldest.query["aggregation.perSeriesAligner"] == "ALIGN_MAX"
    dead = sent[("pubsub.googleapis.com/subscription/dead_letter_message_count", "REDUCE_SUM", "ltm-events-ingest")]
    assert dead.query["aggregation.perSeriesAligner"] == "ALIGN_DELTA"


def test_table_shows_values_trends_and_objectives(ltmctl, monitoring):
    result = ltmctl("metrics", *WINDOW)
    assert result.exit_code == 0, result.output
    lines = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.count("│") >= 4}
    # Cloud Monitoring's percentile of bucketed distributions: interpolated, and shown as such (#17).
    assert "≈ 950.0 ms (interpolated)" in lines["api latency p99"] and "over" in lines["api latency p99"]
    assert "3.85 %" in lines["api 5xx rate"]
    assert "ok" in lines["ingest 5xx rate"]
    assert "420 s" in lines["pubsub oldest unacked"]


def test_png_draws_the_time_series(ltmctl, monitoring, tmp_path):
    pytest.importorskip("matplotlib")
    image = tmp_path / "latency.png"
    result = ltmctl("metrics", *WINDOW, "--png", str(image))
    assert result.exit_code == 0, result.output
    data = image.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(image) as picture:
        picture.verify()
        assert picture.format == "PNG" and picture.size[0] > 300 and picture.size[1] > 200


def test_row_names_match_the_local_stack_where_they_mean_the_same(ltmctl, monitoring):
    got = figures_of(ltmctl("metrics", "-o", "json", *WINDOW))
    snapshot = metrics_local.Snapshot(10.0, metrics_local.ApiFigures(), metrics_local.IngestFigures())
    local = {r.name for r in metrics_local.rows(snapshot, None, 0.0, type("S", (), {"latency_p99_ms": 500,
                                                                                    "error_rate": 0.01})())}
    # The local stack counts stored and retried events itself; Cloud Monitoring has no such figure.
    assert local - set(got) == {"ingest stored", "ingest retried"}


def test_bad_windows_are_usage_errors(ltmctl, fake):
    assert ltmctl("metrics", "--step", "30s").exit_code == 2
    assert ltmctl("metrics", "--since", "1h", "--until", "2h").exit_code == 2
    assert ltmctl("metrics", "--watch", "--until", "1h").exit_code == 2
    assert ltmctl("metrics", "--since", "1h", "--until", "2h", env="local").exit_code == 2
    assert not fake.requests


def test_disabled_monitoring_api_says_how_to_enable_it(ltmctl, fake):
    result = ltmctl("metrics", *WINDOW)
    assert result.exit_code == 4
    assert "gcloud services enable monitoring.googleapis.com" in " ".join(result.output.split())


def test_the_fake_refuses_aggregations_cloud_monitoring_refuses(fake, monitoring):
    from google.api_core.exceptions import BadRequest
    from google.oauth2.credentials import Credentials

    from ltmctl.gcp.monitoring_rest import MonitoringRest

    gauge = 'metric.type="pubsub.googleapis.com/subscription/num_undelivered_messages"'
    with MonitoringRest(Credentials(fake.token_for(fake.owner)), fake.endpoint) as client:
        for filter_, aggregation in (
                (gauge, {"alignmentPeriod": "60s", "perSeriesAligner": "ALIGN_RATE"}),  # a rate of a gauge
                (f'metric.type="{LATENCIES}"', {"alignmentPeriod": "60s", "perSeriesAligner": "ALIGN_MEAN"}),
                (f'metric.type="{LATENCIES}"', {"alignmentPeriod": "30s", "perSeriesAligner": "ALIGN_DELTA"}),
                (gauge, {"crossSeriesReducer": "REDUCE_SUM"})):
            with pytest.raises(BadRequest):
                client.list_time_series(f"projects/{PROJECT}", filter_, UNTIL - timedelta(minutes=5), UNTIL,
                                        aggregation)
        raw = client.list_time_series(f"projects/{PROJECT}", gauge, UNTIL - timedelta(minutes=5), UNTIL)
        assert [p["value"]["int64Value"] for p in raw[0]["points"]] == ["12", "5"]  # newest first, as Google
