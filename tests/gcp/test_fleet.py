"""The fleet view against the fake: fifty gcp environments over fifty-one projects, forty of them monitored by one
metrics scope; `metrics`, `status` across them; `--env` as a list or pattern."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ltmctl.gcp.fake.monitoring import MonitoringApi
from ltmctl.metrics import cloud_monitoring as metrics_gcp
from tests.conftest import TEST_CONFIG, make_project
from tests.gcp import fleet_support as fs
from tests.gcp.conftest import Ltmctl
from tests.gcp.test_metrics_gcp import WINDOW

SERIES = r"^/v3/projects/([^/]+)/timeSeries$"


@pytest.fixture
def fleet(fake, config_path: Path, monkeypatch) -> Ltmctl:
    token = fs.set_up(fake)
    monkeypatch.setenv("LTM_GCP_TOKEN", token)
    config_path.write_text(fs.config_text())
    fake.clear_requests()
    return Ltmctl(config_path)


def rows_of(result) -> list[dict]:
    return json.loads(result.stdout)


def test_one_command_answers_for_fifty_environments_worst_first(fleet, fake):
    result = fleet("metrics", "-o", "json", *WINDOW, env="fleet-*")
    assert result.exit_code == 4, result.output  # a row is an error: that decides the exit code
    rows = rows_of(result)
    assert len(rows) == fs.SIZE and {r["environment"] for r in rows} == {fs.name(i) for i in range(fs.SIZE)}
    # Errors, then breaches by how far over (1.9 times, then 1.4 times), then the healthy ones in config order.
    assert [r["environment"] for r in rows[:3]] == [fs.name(fs.LOCKED), fs.name(fs.BREACHING), fs.name(fs.STALE)]
    assert [r["state"] for r in rows[:3]] == ["error", "breach", "breach"]
    healthy = [r["environment"] for r in rows[3:]]
    assert healthy == [fs.name(i) for i in range(fs.SIZE) if i not in (fs.LOCKED, fs.BREACHING, fs.STALE)]
    assert {r["slo"] for r in rows[3:]} == {"ok"} and all(r["breached"] == [] for r in rows[3:])

    worst = rows[1]
    assert worst["p99_ms"] == pytest.approx(950.0) and worst["rate_5xx"] == pytest.approx(0.06)
    # Cloud Monitoring interpolates its percentiles inside buckets: the row says so, as `metrics` does for one.
    assert (worst["p50_estimate"], worst["p99_estimate"]) == ("interpolated from buckets",) * 2
    assert worst["metrics_scope"] == fs.SCOPING
    assert [(b["figure"], b["objective"], b["limit"]) for b in worst["breached"]] == [
        ("api 5xx rate", "error_rate", 0.01), ("api latency p99", "latency_p99_ms", 500)]  # 6 times over, then 1.9
    assert worst["over"] == pytest.approx(6.0)
    stale = rows[2]
    assert stale["oldest_unacked_s"] == 420 and stale["backlog"] == 250
    assert [b["figure"] for b in stale["breached"]] == ["pubsub oldest unacked"]
    assert "metrics_scope" not in stale  # read on its own project


def test_a_scoped_row_holds_its_own_projects_figures(fleet, fake, monkeypatch):
    rows = {r["environment"]: r for r in rows_of(fleet("metrics", "-o", "json", *WINDOW, env="fleet-*"))}
    # The same environment read alone, on its own project (as the owner: the operator reads only the scope).
    monkeypatch.setenv("LTM_GCP_TOKEN", fake.token_for(fake.owner))
    for i in (5, 33):
        alone = fleet("metrics", "-o", "json", *WINDOW, env=fs.name(i))
        assert alone.exit_code == 0, alone.output
        figures = {f["name"]: f["value"] for f in json.loads(alone.stdout)["figures"]}
        row = rows[fs.name(i)]
        assert row["metrics_scope"] == fs.SCOPING
        assert (row["p50_ms"], row["p99_ms"], row["backlog"], row["oldest_unacked_s"], row["dead_letters"]) == (
            figures["api latency p50"], figures["api latency p99"], figures["pubsub backlog"],
            figures["pubsub oldest unacked"], figures["pubsub dead-lettered"] + figures["ingest dead-lettered"])
        assert row["backlog"] == i and row["dead_letters"] == i % 3  # what was seeded for it, not a neighbour's


def test_a_permission_error_is_a_row_in_googles_words(fleet, fake):
    result = fleet("metrics", "-o", "json", *WINDOW, env="fleet-4*")
    rows = rows_of(result)
    (locked,) = [r for r in rows if r["state"] == "error"]
    assert locked["environment"] == fs.name(fs.LOCKED)
    assert "Permission 'monitoring.timeSeries.list' denied on resource 'projects/fleet-proj-49'" in locked["error"]
    assert "roles/monitoring.viewer" in locked["hint"]
    assert {r["state"] for r in rows if r is not locked} <= {"ok", "breach"} and len(rows) == 10
    # The table says it too, and the summary on stderr counts it.
    table = fleet("metrics", *WINDOW, env="fleet-4*")
    assert table.exit_code == 4
    assert "fleet-49" in table.stdout and "monitoring.timeSeries.list" in " ".join(table.stdout.split())
    assert "1 error" in table.stderr


def test_a_shared_scope_is_read_with_one_request_per_figure_not_per_environment(fleet, fake):
    result = fleet("metrics", "-o", "json", *WINDOW, env="fleet-*")
    assert len(rows_of(result)) == fs.SIZE
    by_project: dict[str, list] = {}
    for req in fake.find("GET", SERIES):
        by_project.setdefault(req.path.split("/")[3], []).append(req)
    resolved = _resolved(fleet.config_path, fs.name(0))
    queries = metrics_gcp.queries(resolved)
    distinct = {(q.metric, q.aligner, q.reducer) for q in queries}
    scoped = by_project.pop(fs.SCOPING)
    assert len(scoped) == len(distinct) < len(queries)  # 10 requests answer 40 environments' 17 queries each
    assert {(r.query["filter"], r.query["aggregation.crossSeriesReducer"]) for r in scoped} == {
        (f'metric.type="{m}" AND resource.type="{metrics_gcp.Query("", m, t, (), a, r).resource_type}"', r)
        for q in queries for m, t, a, r in [(q.metric, q.resource_type, q.aligner, q.reducer)]}
    for req in scoped:
        assert req.params["aggregation.groupByFields"][0] == "resource.label.project_id"
    assert not set(by_project) & {fs.project(i) for i in fs.SCOPED}  # no scoped project is read on its own
    assert by_project.pop(fs.project(fs.LOCKED))[0].status == 403  # its first refusal ends its queries
    assert set(by_project) == {fs.project(i) for i in range(fs.SIZE) if i not in fs.SCOPED and i != fs.LOCKED}
    assert {len(reqs) for reqs in by_project.values()} == {len(queries)}


def _resolved(path: Path, name: str):
    from ltmctl import config

    return config.load(path, name)


def test_the_scope_needs_link_on_both_projects_and_reading_needs_the_scoping_project_only(fake, tmp_path):
    fs.add_projects(fake, 2)
    ana = "user:ana@example.com"
    fs.grant(fake, fs.SCOPING, ana, "roles/monitoring.metricsScopesAdmin")
    refused = fs.link(fake, fs.SCOPING, fs.project(0), fake.token_for(ana))
    assert refused.status_code == 403
    assert "monitoring.metricsScopes.link" in refused.text and fs.project(0) in refused.text
    fs.grant(fake, fs.project(0), ana, "roles/monitoring.metricsScopesAdmin")
    made = fs.link(fake, fs.SCOPING, fs.project(0), fake.token_for(ana))
    assert made.status_code == 200 and made.json()["done"] is True
    assert made.json()["response"]["name"] == "locations/global/metricsScopes/900000000001/projects/900000001000"
    assert fs.link(fake, fs.SCOPING, fs.project(0), fake.token_for(ana)).status_code == 409

    from datetime import timedelta

    from google.api_core.exceptions import Forbidden
    from google.oauth2.credentials import Credentials

    from ltmctl.gcp.monitoring_rest import MonitoringRest
    from tests.gcp.test_metrics_gcp import UNTIL

    fs.seed(fake, 2)
    fs.grant(fake, fs.SCOPING, fs.OPERATOR, "roles/monitoring.viewer")
    backlog = 'metric.type="pubsub.googleapis.com/subscription/num_undelivered_messages"'
    window = (UNTIL - timedelta(minutes=5), UNTIL)
    with MonitoringRest(Credentials(fake.token_for(fs.OPERATOR)), fake.endpoint) as client:
        seen = client.list_time_series(f"projects/{fs.SCOPING}", backlog, *window)
        # The monitored project's series, not the unlinked one's.
        assert {s["resource"]["labels"]["project_id"] for s in seen} == {fs.project(0)}
        with pytest.raises(Forbidden):
            client.list_time_series(f"projects/{fs.project(0)}", backlog, *window)
    with MonitoringRest(Credentials(fake.token_for(fake.owner)), fake.endpoint) as client:
        # A project's own timeSeries.list answers its own series only.
        alone = client.list_time_series(f"projects/{fs.project(1)}", backlog, *window)
        assert {s["resource"]["labels"]["project_id"] for s in alone} == {fs.project(1)}


def test_the_fake_refuses_a_scope_link_named_for_another_scope(fake):
    fs.add_projects(fake, 1)
    from google.auth.transport.requests import AuthorizedSession
    from google.oauth2.credentials import Credentials

    with AuthorizedSession(Credentials(fake.token_for(fake.owner))) as session:
        answer = session.post(f"{fake.endpoint}/v1/locations/global/metricsScopes/{fs.SCOPING}/projects",
                              json={"name": f"locations/global/metricsScopes/{fs.project(0)}/projects/{fs.SCOPING}"})
        assert answer.status_code == 400
        unknown = session.post(f"{fake.endpoint}/v1/locations/global/metricsScopes/{fs.SCOPING}/projects",
                               json={"name": f"locations/global/metricsScopes/{fs.SCOPING}/projects/nowhere-at-all",
                                     "bogus": 1})
        assert unknown.status_code == 400  # a field MonitoredProject does not have: Google's discovery check


# --- status across environments, and what --env selects ----------------------------------------------------------

STATUS_CONFIG = TEST_CONFIG + """\
  stage:
    backend: gcp
    project: fleet-proj-01
    region: us-central1
"""


@pytest.fixture
def two(fake, config_path: Path) -> Ltmctl:
    fake.projects["fleet-proj-01"] = "900000001001"
    # Google's owner role lacks bigquery.tables.get (owners read tables through a dataset's projectOwners entry):
    # without a BigQuery role a table of a dataset not yet made answers 403 rather than 404 (ltmctl.gcp.fake.authz).
    fs.grant(fake, "fleet-proj-01", fake.owner, "roles/bigquery.dataViewer")
    make_project(config_path.parent.parent, STATUS_CONFIG)
    return Ltmctl(config_path)


def test_status_across_a_provisioned_and_a_bare_environment(two, fake):
    assert two("provision", "--yes", env="dev").exit_code == 0
    fake.clear_requests()
    result = two("status", "-o", "json", env="dev,stage")
    assert result.exit_code == 1, result.output  # not all ok, none failed to answer
    rows = rows_of(result)
    assert [r["environment"] for r in rows] == ["stage", "dev"]  # the one with more missing first
    stage, dev = rows
    assert dev["resources"]["missing"] == 0 and dev["resources"]["drifted"] == 0 and dev["resources"]["ok"] > 10
    assert stage["resources"]["missing"] > 10 and stage["resources"]["ok"] < dev["resources"]["ok"]
    assert dev["services"] == {"api": "missing", "ingest": "missing"}  # provisioned, not deployed
    assert stage["first_problem"].endswith("missing")
    assert fake.mutating_requests() == []  # status only reads
    table = two("status", env="stage,dev")
    assert table.stdout.index("stage") < table.stdout.index("dev")
    assert "2 environments: 2 drifted" in table.stderr


def test_a_local_environment_in_a_status_selection_is_a_row(two):
    result = two("status", "-o", "json", env="*")
    rows = rows_of(result)
    assert [r["environment"] for r in rows][0] == "local" and rows[0]["state"] == "error"
    assert "works on gcp environments only" in rows[0]["error"]
    assert result.exit_code == 4


def test_a_pattern_matching_nothing_names_the_defined_environments(two, fake):
    result = two("metrics", env="prod-*,dev")
    assert result.exit_code == 3
    text = " ".join(result.output.split())
    assert "'prod-*' matches no environment" in text and "defined: local, dev, stage" in text
    assert two("status", env="dev,,stage").exit_code == 2
    assert not fake.requests


@pytest.mark.parametrize("command", [("provision", "--plan"), ("query", "SELECT 1"), ("config", "show"),
                                     ("logs",), ("api", "get-data", "a", "b@example.com")])
def test_single_environment_commands_refuse_a_selection_of_several(two, fake, command):
    result = two(*command, env="dev,st*")
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert f"`ltmctl {command[0]}` acts on one environment; --env selects 2: dev, stage" in text
    assert not fake.requests


def test_a_selection_of_one_acts_as_that_environment(two):
    shown = two("config", "show", "-o", "json", env="st*")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["environment"] == "stage"


def test_fleet_metrics_refuses_what_only_one_environment_can_show(two, fake):
    assert two("metrics", "--watch", env="dev,stage").exit_code == 2
    assert two("metrics", "--png", "x.png", env="dev,stage").exit_code == 2
    assert not fake.requests


def test_the_monitoring_api_disabled_is_a_row_per_environment(two, fake):
    result = two("metrics", "-o", "json", *WINDOW, env="dev,stage")
    assert result.exit_code == 4
    rows = rows_of(result)
    assert {r["state"] for r in rows} == {"error"} and len(rows) == 2
    assert all("gcloud services enable monitoring.googleapis.com" in r["hint"] for r in rows)
    assert fake.api(MonitoringApi).series == []



def test_an_environment_the_scope_does_not_monitor_has_no_data_rather_than_a_neighbours(fake, config_path, monkeypatch):
    token = fs.set_up(fake, size=3, scoped=range(0, 2), locked=None)
    monkeypatch.setenv("LTM_GCP_TOKEN", token)
    # fleet-02 names the scope too, but its project was never added to it.
    config_path.write_text(fs.config_text(size=3, scoped=range(0, 3)))
    rows = {r["environment"]: r for r in rows_of(Ltmctl(config_path)("metrics", "-o", "json", *WINDOW,
                                                                     env="fleet-*"))}
    assert rows[fs.name(2)]["state"] == "no data" and rows[fs.name(2)]["backlog"] is None
    assert rows[fs.name(1)]["state"] == "ok" and rows[fs.name(1)]["backlog"] == 1


def test_verify_across_environments_is_a_row_each(two, fake):
    # Neither environment names an account to pass IAP as: each is a row saying so, and the run goes on.
    result = two("verify", "-o", "json", env="dev,stage")
    assert result.exit_code == 4
    rows = rows_of(result)
    assert [r["environment"] for r in rows] == ["dev", "stage"] and {r["state"] for r in rows} == {"error"}
    assert all("no service account to call the API through IAP" in r["error"] for r in rows)
    assert "2 environments: 2 error" in result.stderr
