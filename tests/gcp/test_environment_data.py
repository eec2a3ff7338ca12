"""A gcp environment's data clients (`ltmctl.environments.gcp`) reach LTM_GCP_ENDPOINT with LTM_GCP_TOKEN, as the
control plane's do: `publish` stores its events in the fake's topic, `query` asks the fake for a dry run first and
refuses what is over budget. (#16 covers these paths in full.)"""

from __future__ import annotations

import base64
import json

import pytest

from ltmctl import synthetic
from ltmctl.gcp.fake.bigquery import BigQueryApi
from ltmctl.gcp.fake.pubsub import PubSubApi
from tests.gcp.support import PROJECT

TOPIC = f"projects/{PROJECT}/topics/ltm-events"
# Backticked: the fake reads only the tables a query names so (not `FROM events` through the default dataset).
SQL = "SELECT app_id FROM `ltm.events`"


def test_publish_stores_the_events_in_the_topic(fake, ltmctl):
    assert ltmctl("provision", "--yes").exit_code == 0
    result = ltmctl("publish", "--count", "3", "--seed", "5", "-o", "json")
    assert result.exit_code == 0, result.output
    stored = fake.api(PubSubApi).published[TOPIC]
    sent = [json.loads(base64.b64decode(m["data"])) for m in stored]
    assert [e["event_id"] for e in sent] == [e["event_id"] for e in synthetic.events(3, seed=5)]
    summary = json.loads(result.stdout)
    assert (summary["published"], summary["first_message_id"], summary["last_message_id"]) == (
        3, stored[0]["messageId"], stored[-1]["messageId"])
    (publish,) = fake.find("POST", r"/topics/ltm-events:publish$")
    assert publish.principal == fake.owner  # with the bearer token of LTM_GCP_TOKEN


def test_query_runs_its_cost_gate_as_a_dry_run(fake, ltmctl):
    assert ltmctl("provision", "--yes").exit_code == 0
    events = list(synthetic.events(20, seed=2))
    fake.api(BigQueryApi).rows[f"{PROJECT}:ltm.events"] = [{"insertId": e["event_id"], "json": e} for e in events]
    fake.clear_requests()

    refused = ltmctl("query", SQL, "--max-bytes", "100")
    assert refused.exit_code == 2, refused.output
    assert "more than the limit of 100 B" in refused.output
    (dry,) = fake.find("POST", r"/bigquery/v2/projects/[^/]+/jobs$")
    assert dry.body["configuration"]["dryRun"] is True
    assert fake.api(BigQueryApi).jobs == {}  # nothing ran

    fake.clear_requests()
    result = ltmctl("query", SQL, "-o", "json")
    assert result.exit_code == 0, result.output
    assert "Dry run: the SQL is valid (SELECT)" in result.output
    dry, run = fake.find("POST", r"/bigquery/v2/projects/[^/]+/jobs$")
    assert dry.body["configuration"]["dryRun"] is True and "dryRun" not in run.body["configuration"]
    assert int(run.body["configuration"]["query"]["maximumBytesBilled"]) > 100


def test_query_over_its_max_bytes_runs_with_yes_capped_near_the_estimate(fake, ltmctl):
    assert ltmctl("provision", "--yes").exit_code == 0
    events = list(synthetic.events(20, seed=3))
    fake.api(BigQueryApi).rows[f"{PROJECT}:ltm.events"] = [{"insertId": e["event_id"], "json": e} for e in events]
    fake.clear_requests()

    result = ltmctl("query", SQL, "--max-bytes", "100", "--yes", "-o", "json")

    assert result.exit_code == 0, result.output
    dry, run = fake.find("POST", r"/bigquery/v2/projects/[^/]+/jobs$")
    assert dry.body["configuration"]["dryRun"] is True and "dryRun" not in run.body["configuration"]
    # Confirmed past the limit, the query is still capped: at the estimate plus a margin, not left unbounded.
    cap = int(run.body["configuration"]["query"]["maximumBytesBilled"])
    assert 100 * 2**20 < cap < 200 * 2**20


@pytest.mark.parametrize("command", [["publish", "--count", "1"], ["query", SQL], ["dlq", "list"]])
def test_without_credentials_every_data_command_says_the_same_and_how_to_get_them(tmp_path, monkeypatch,
                                                                                   config_path, command):
    # No endpoint override: the real ADC lookup, hermetically finding nothing.
    monkeypatch.delenv("LTM_GCP_ENDPOINT")
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    from typer.testing import CliRunner

    from ltmctl.cli import app
    from ltmctl.gcp.clients import ADC_HINT

    result = CliRunner().invoke(app, ["--config", str(config_path), "--env", "dev", *command])
    assert result.exit_code == 4, result.output
    assert "No Application Default Credentials" in result.output
    assert " ".join(ADC_HINT.split()) in " ".join(result.output.split())  # the hint, however it is wrapped
    assert "Traceback" not in result.output
