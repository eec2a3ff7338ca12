"""`ltmctl monitoring apply`: the dashboard and alert policies against the fake Cloud Monitoring API (policies are
checked there against the official AlertPolicy message), idempotent like provision."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ltmctl.gcp.fake import FakeGcp
from ltmctl.gcp.fake.monitoring import MonitoringApi
from tests.conftest import TEST_CONFIG
from tests.gcp.support import NUMBER, PROJECT

CHANNELS = [f"projects/{PROJECT}/notificationChannels/111", f"projects/{PROJECT}/notificationChannels/222"]


def write_config(path: Path, latency_ms: int = 500, channels: list[str] = CHANNELS) -> None:
    path.write_text(TEST_CONFIG
                    + f"    slo: {{latency_p99_ms: {latency_ms}, error_rate: 0.02, oldest_unacked_s: 120}}\n"
                    + f"    monitoring:\n      notification_channels: {json.dumps(channels)}\n")


@pytest.fixture
def monitoring(fake: FakeGcp, config_path: Path) -> MonitoringApi:
    fake.enable("monitoring.googleapis.com")
    write_config(config_path)
    return fake.api(MonitoringApi)


def policies(api: MonitoringApi) -> dict[str, dict[str, Any]]:
    return {p["userLabels"]["ltm-item"]: p for p in api.alert_policies.values()}


def test_apply_creates_the_dashboard_and_policies_and_a_second_run_changes_nothing(ltmctl, fake, monitoring):
    first = ltmctl("monitoring", "apply", "--yes")
    assert first.exit_code == 0, first.output
    assert len(fake.find("POST", f"^/v1/projects/{PROJECT}/dashboards$")) == 1
    assert len(fake.find("POST", f"^/v3/projects/{PROJECT}/alertPolicies$")) == 4
    assert set(policies(monitoring)) == {"api-latency-p99", "api-5xx-rate", "pubsub-oldest-unacked", "dead-letters"}

    fake.clear_requests()
    second = ltmctl("monitoring", "apply", "--yes")
    assert second.exit_code == 0, second.output
    assert fake.mutating_requests() == []
    assert "nothing to change" in second.stderr
    assert second.stdout.count("no change") == 5


def test_policies_carry_the_objectives_filters_and_channels(ltmctl, monitoring):
    assert ltmctl("monitoring", "apply", "--yes").exit_code == 0
    got = policies(monitoring)
    latency = got["api-latency-p99"]
    (condition,) = latency["conditions"]
    threshold = condition["conditionThreshold"]
    assert threshold["filter"] == ('metric.type="run.googleapis.com/request_latencies" AND '
                                   'resource.type="cloud_run_revision" AND resource.labels.service_name="ltm-api"')
    assert threshold["aggregations"] == [{"alignmentPeriod": "60s", "perSeriesAligner": "ALIGN_DELTA",
                                          "crossSeriesReducer": "REDUCE_PERCENTILE_99"}]
    assert (threshold["comparison"], threshold["thresholdValue"], threshold["duration"]) == ("COMPARISON_GT", 500,
                                                                                            "300s")
    assert latency["notificationChannels"] == CHANNELS and latency["combiner"] == "OR"
    assert latency["userLabels"] == {"managed-by": "ltmctl", "ltm-env": "dev", "ltm-item": "api-latency-p99"}

    errors = got["api-5xx-rate"]["conditions"][0]["conditionThreshold"]
    assert errors["filter"].endswith('AND metric.labels.response_code_class="5xx"')
    assert errors["denominatorFilter"] == errors["filter"].removesuffix(' AND metric.labels.response_code_class="5xx"')
    assert errors["aggregations"][0]["perSeriesAligner"] == "ALIGN_RATE"
    assert errors["denominatorAggregations"][0]["crossSeriesReducer"] == "REDUCE_SUM"
    assert (errors["thresholdValue"], errors["duration"]) == (0.02, "300s")

    oldest = got["pubsub-oldest-unacked"]["conditions"][0]["conditionThreshold"]
    assert 'resource.labels.subscription_id="ltm-events-ingest"' in oldest["filter"]
    assert oldest["thresholdValue"] == 120

    dead = [c["conditionThreshold"] for c in got["dead-letters"]["conditions"]]
    assert ["dead_letter_message_count" in dead[0]["filter"], 'topic_id="ltm-events-dlq"' in dead[1]["filter"]] == \
        [True, True]
    assert all("thresholdValue" not in c for c in dead)  # > 0: Google leaves a zero out of its JSON


def test_dashboard_shows_every_figure(ltmctl, monitoring):
    assert ltmctl("monitoring", "apply", "--yes").exit_code == 0
    (dashboard,) = monitoring.dashboards.values()
    assert dashboard["name"].startswith(f"projects/{NUMBER}/dashboards/")
    titles = [t["widget"]["title"] for t in dashboard["mosaicLayout"]["tiles"]]
    for wanted in ("API latency", "API error rate", "Pub/Sub published/s and backlog", "Dead letters",
                   "Ingest errors", "Instances"):
        assert any(t.startswith(wanted) for t in titles), wanted
    latency = dashboard["mosaicLayout"]["tiles"][0]["widget"]["xyChart"]
    reducers = [d["timeSeriesQuery"]["timeSeriesFilter"]["aggregation"]["crossSeriesReducer"]
                for d in latency["dataSets"]]
    assert reducers == ["REDUCE_PERCENTILE_50", "REDUCE_PERCENTILE_95", "REDUCE_PERCENTILE_99"]
    assert latency["thresholds"][0]["value"] == 500


def test_plan_shows_creates_and_changes_nothing(ltmctl, fake, monitoring):
    result = ltmctl("monitoring", "apply", "--plan", "-o", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["action"], r["kind"]) for r in rows] == [("create", "dashboard")] + [("create", "alert policy")] * 4
    assert fake.mutating_requests() == []


def test_a_changed_objective_updates_only_what_uses_it(ltmctl, fake, config_path, monitoring):
    assert ltmctl("monitoring", "apply", "--yes").exit_code == 0
    write_config(config_path, latency_ms=800)
    plan = json.loads(ltmctl("monitoring", "apply", "--plan", "-o", "json").stdout)
    assert [(r["action"], r["kind"]) for r in plan if r["action"] != "no change"] == [
        ("update", "dashboard"), ("update", "alert policy")]
    renamed = next(r for r in plan if r["kind"] == "alert policy" and r["action"] == "update")
    assert set(renamed["fields"]) == {"displayName", "documentation.content", "conditions[0].displayName",
                                      "conditions[0].conditionThreshold.thresholdValue"}
    assert renamed["fields"]["conditions[0].conditionThreshold.thresholdValue"] == {"actual": 500, "desired": 800}

    fake.clear_requests()
    assert ltmctl("monitoring", "apply", "--yes").exit_code == 0
    patches = fake.find("PATCH")
    assert len(patches) == 2 and not fake.find("POST")
    dashboard_patch = next(r for r in patches if "/dashboards/" in r.path)
    assert dashboard_patch.body["etag"].startswith("etag-")  # a concurrent console edit fails instead of being lost
    assert policies(monitoring)["api-latency-p99"]["conditions"][0]["conditionThreshold"]["thresholdValue"] == 800
    assert len(monitoring.alert_policies) == 4  # found by label, although its display name changed

    fake.clear_requests()
    assert ltmctl("monitoring", "apply", "--yes").exit_code == 0
    assert fake.mutating_requests() == []


def test_a_policy_edited_in_the_console_is_put_back(ltmctl, fake, monitoring):
    assert ltmctl("monitoring", "apply", "--yes").exit_code == 0
    edited = policies(monitoring)["pubsub-oldest-unacked"]
    edited["conditions"][0]["conditionThreshold"]["thresholdValue"] = 9999
    edited["notificationChannels"] = []
    plan = json.loads(ltmctl("monitoring", "apply", "--plan", "-o", "json").stdout)
    (row,) = [r for r in plan if r["action"] != "no change"]
    assert set(row["fields"]) == {"conditions[0].conditionThreshold.thresholdValue", "notificationChannels"}
    assert ltmctl("monitoring", "apply", "--yes").exit_code == 0
    restored = policies(monitoring)["pubsub-oldest-unacked"]
    assert restored["conditions"][0]["conditionThreshold"]["thresholdValue"] == 120
    assert restored["notificationChannels"] == CHANNELS


def test_without_a_terminal_it_needs_yes(ltmctl, fake, monitoring):
    result = ltmctl("monitoring", "apply")
    assert result.exit_code == 2
    assert "--yes" in result.output
    assert fake.mutating_requests() == []


def test_local_environment_and_bad_channels_are_refused(ltmctl, fake, config_path, monitoring):
    assert ltmctl("monitoring", "apply", "--yes", env="local").exit_code == 2
    write_config(config_path, channels=["my-channel"])
    result = ltmctl("monitoring", "apply", "--yes")
    assert result.exit_code == 3 and "notification_channels" in result.output
    assert fake.mutating_requests() == []
