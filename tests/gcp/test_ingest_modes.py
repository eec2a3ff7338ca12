"""`pipeline.ingest_mode: bigquery` through the CLI against the fake control plane: provision readies the table and
Pub/Sub's access to it, deploy makes the ingest subscription a BigQuery subscription and deploys no ingest service,
and switching modes updates the subscription in place. The fake refuses a BigQuery subscription whose table lacks
the metadata columns or that Pub/Sub's agent may not write to, as Pub/Sub does."""

from __future__ import annotations

import json

import pytest

from ltmctl.gcp.fake.bigquery import BigQueryApi
from ltmctl.gcp.fake.cloudbuild import CloudBuildApi
from ltmctl.gcp.fake.pubsub import PubSubApi
from ltmctl.gcp.fake.run import CloudRunApi
from tests.gcp.conftest import Ltmctl
from tests.gcp.deploy_support import DEPLOY_CONFIG, INGEST_SERVICE, project_dir
from tests.gcp.support import (
    API_SA,
    DEPLOYER_SA,
    DLQ_TOPIC,
    EXPECTED_GRANTS,
    INGEST_SA,
    INGEST_SUB,
    INVOKER_SA,
    PROJECT,
    PUBSUB_AGENT,
    account,
    grants,
    ours,
)

BIGQUERY_CONFIG = DEPLOY_CONFIG.replace("  table: events\n", "  table: events\n  ingest_mode: bigquery\n")
TABLE = f"{PROJECT}.ltm.events"
# What bigquery mode adds: Pub/Sub's agent may edit the events table (BigQuery's key "project:dataset.table"), and
# the CI deployer may read it and its policy (deploy checks both). What it takes away: the deployer's actAs on the
# ingest and invoker accounts, which only push mode deploys as.
TABLE_GRANT = (f"table {PROJECT}:ltm.events", "roles/bigquery.dataEditor", PUBSUB_AGENT)
TABLE_READER = (f"table {PROJECT}:ltm.events", "roles/bigquery.metadataViewer", DEPLOYER_SA)
PUSH_ONLY = {(account(sa), "roles/iam.serviceAccountUser", DEPLOYER_SA) for sa in (INGEST_SA, INVOKER_SA)}
BIGQUERY_GRANTS = EXPECTED_GRANTS - PUSH_ONLY | {TABLE_GRANT, TABLE_READER}


@pytest.fixture
def run(fake, tmp_path, monkeypatch) -> Ltmctl:
    return Ltmctl(project_dir(tmp_path, fake.endpoint, monkeypatch, BIGQUERY_CONFIG))


def ok(result) -> None:
    assert result.exit_code == 0, result.output


def sub_patches(fake) -> list:
    return fake.find("PATCH", r"/subscriptions/ltm-events-ingest$")


def test_bigquery_mode_on_an_empty_project(run, fake):
    ok(run("provision", "--yes"))
    ok(run("deploy"))

    # The ingest subscription writes into the table: JSON fields by column name, Pub/Sub's metadata beside them,
    # no push endpoint, and the dead-letter policy still there for messages that cannot be written.
    (patch,) = sub_patches(fake)
    assert patch.body["subscription"]["bigqueryConfig"] == {"table": TABLE, "useTableSchema": True,
                                                            "writeMetadata": True}
    assert set(patch.body["updateMask"].split(",")) == {"bigqueryConfig"}  # nothing pushed yet, nothing to clear
    sub = fake.api(PubSubApi).subscriptions[INGEST_SUB]
    assert sub["bigqueryConfig"]["table"] == TABLE and sub["pushConfig"] == {}
    assert sub["deadLetterPolicy"] == {"deadLetterTopic": DLQ_TOPIC, "maxDeliveryAttempts": 5}

    # Pub/Sub's agent may write to that one table, the deployer read it, and nothing broader was granted to anyone;
    # the deployer may act as the API account alone.
    assert ours(grants(fake)) == BIGQUERY_GRANTS
    assert {g[0] for g in ours(grants(fake)) if g[1] == "roles/iam.serviceAccountUser"} == {account(API_SA)}
    table_policy_writes = fake.find("POST", r"/tables/events:setIamPolicy$")
    # Four grants on the table (the ingest account's, Pub/Sub's agent's, the deployer's two: metadata for deploy,
    # data for verify), one write each.
    assert len(table_policy_writes) == 4 and all(w.body["policy"].get("etag") for w in table_policy_writes)

    # No ingest service: nothing built or rolled out for it.
    assert list(fake.api(CloudRunApi).services) == [f"projects/{PROJECT}/locations/us-central1/services/ltm-api"]
    (build,) = fake.api(CloudBuildApi).builds
    assert [image.rsplit("/", 1)[-1].split(":")[0] for image in build["images"]] == ["ltm-api"]

    fake.clear_requests()
    again = run("deploy")
    ok(again)
    assert fake.mutating_requests() == []
    assert "nothing changed" in again.stderr
    fake.clear_requests()
    ok(run("provision", "--yes"))
    assert fake.mutating_requests() == []


def test_the_grant_comes_before_the_subscription_that_needs_it(run, fake):
    # Pub/Sub checks the agent's access when the subscription becomes a BigQuery one; the fake refuses it too.
    ok(run("provision", "--yes"))
    grant = fake.find("POST", r"/tables/events:setIamPolicy$")
    table = fake.find("POST", r"/datasets/ltm/tables$")
    assert fake.requests.index(table[0]) < fake.requests.index(grant[0])
    fake.clear_requests()
    ok(run("deploy", "ingest"))
    assert len(sub_patches(fake)) == 1


def test_deploy_before_provision_for_bigquery_mode_says_to_provision_and_changes_nothing(fake, tmp_path,
                                                                                          monkeypatch):
    path = project_dir(tmp_path, fake.endpoint, monkeypatch, DEPLOY_CONFIG)
    run = Ltmctl(path)
    ok(run("provision", "--yes"))  # push mode: no table grant for Pub/Sub
    path.write_text(BIGQUERY_CONFIG)
    fake.clear_requests()

    result = run("deploy", "ingest")

    assert result.exit_code == 4, result.output
    err = " ".join(result.stderr.split())
    assert "ltmctl provision" in err and "roles/bigquery.dataEditor" in err
    assert fake.mutating_requests() == []


def test_switching_push_to_bigquery_to_push_updates_the_subscription_in_place(fake, tmp_path, monkeypatch):
    path = project_dir(tmp_path, fake.endpoint, monkeypatch, DEPLOY_CONFIG)
    run = Ltmctl(path)
    ok(run("provision", "--yes"))
    ok(run("deploy"))
    ingest = fake.api(CloudRunApi).services[INGEST_SERVICE]
    assert fake.api(PubSubApi).subscriptions[INGEST_SUB]["pushConfig"]["pushEndpoint"] == ingest["uri"]

    # push → bigquery: provision adds only the table grants and takes the deployer's push-only actAs away; deploy
    # turns push off and BigQuery on in one update, and leaves the ingest service alone, saying how to remove it.
    path.write_text(BIGQUERY_CONFIG)
    fake.clear_requests()
    ok(run("provision", "--yes"))
    table_iam = f"/bigquery/v2/projects/{PROJECT}/datasets/ltm/tables/events:setIamPolicy"
    accounts_iam = f"/v1/projects/{PROJECT}/serviceAccounts/{{}}@{PROJECT}.iam.gserviceaccount.com:setIamPolicy"
    agent = f"/v1beta1/projects/{PROJECT}/services/{{}}.googleapis.com:generateServiceIdentity"
    assert [r.path for r in fake.mutating_requests()] == [
        table_iam, table_iam, accounts_iam.format("ltm-push-invoker"), accounts_iam.format("ltm-ingest")]
    # A provision that changes anything makes sure of the agents first (get-or-create, so not a change).
    assert [r.path for r in fake.find("POST", ":generateServiceIdentity$")] == [agent.format("pubsub"),
                                                                             agent.format("iap")]
    assert ours(grants(fake)) == BIGQUERY_GRANTS
    fake.clear_requests()
    switched = run("deploy")
    ok(switched)
    (patch,) = sub_patches(fake)
    assert set(patch.body["updateMask"].split(",")) == {"bigqueryConfig", "pushConfig"}
    assert patch.body["subscription"]["pushConfig"] == {}
    sub = fake.api(PubSubApi).subscriptions[INGEST_SUB]
    assert sub["bigqueryConfig"]["table"] == TABLE and sub["pushConfig"] == {}
    assert sub["deadLetterPolicy"]["maxDeliveryAttempts"] == 5
    assert INGEST_SERVICE in fake.api(CloudRunApi).services
    assert not fake.find("DELETE") and not fake.find("PUT", r"/subscriptions/")
    warning = " ".join(switched.stderr.split())
    assert ("gcloud run services delete ltm-ingest --region=us-central1 --project=my-project-id"
            in warning.replace("\n", ""))

    # status shows the service as unused, and how to remove it.
    rows = {r["component"]: r for r in json.loads(run("status", "--output", "json").stdout)["services"]}
    assert rows["ingest"]["state"] == "unused" and rows["ingest"]["url"] == ingest["uri"]
    assert "gcloud run services delete ltm-ingest" in rows["ingest"]["reason"]
    assert rows["api"]["state"] == "ok"

    # bigquery → push: provision revokes the table grant, deploy points the subscription back at the service.
    path.write_text(DEPLOY_CONFIG)
    fake.clear_requests()
    plan = json.loads(run("provision", "--plan", "--output", "json").stdout)
    sa_key = f"iam.service_account:projects/{PROJECT}/serviceAccounts/{{}}@{PROJECT}.iam.gserviceaccount.com"
    assert [(r["action"], r["resource"]) for r in plan if r["action"] != "no change"] == [
        ("create", f"{sa_key.format('ltm-ingest')} roles/iam.serviceAccountUser {DEPLOYER_SA}"),
        ("create", f"{sa_key.format('ltm-push-invoker')} roles/iam.serviceAccountUser {DEPLOYER_SA}"),
        ("delete", f"bigquery.table:{TABLE} roles/bigquery.metadataViewer {DEPLOYER_SA}"),
        ("delete", f"bigquery.table:{TABLE} roles/bigquery.dataEditor {PUBSUB_AGENT}")]
    ok(run("provision", "--yes"))
    assert TABLE_GRANT not in grants(fake) and TABLE_READER not in grants(fake)
    assert ours(grants(fake)) == EXPECTED_GRANTS
    fake.clear_requests()
    ok(run("deploy"))
    (patch,) = sub_patches(fake)
    assert set(patch.body["updateMask"].split(",")) == {"pushConfig", "bigqueryConfig"}
    sub = fake.api(PubSubApi).subscriptions[INGEST_SUB]
    assert "bigqueryConfig" not in sub
    assert sub["pushConfig"]["pushEndpoint"] == ingest["uri"]
    assert not fake.find("DELETE") and not fake.find("PUT", r"/subscriptions/")


def test_dry_run_shows_the_bigquery_subscription_request(run, fake):
    result = run("deploy", "--dry-run", "--output", "json")
    ok(result)
    requests = json.loads(result.stdout)
    (patch,) = [r for r in requests
                if r["method"] == "PATCH" and r["path"].endswith("/subscriptions/ltm-events-ingest")]
    assert patch["body"]["subscription"]["bigqueryConfig"] == {"table": TABLE, "useTableSchema": True,
                                                               "writeMetadata": True}
    assert not any(r.get("query", {}).get("serviceId") == "ltm-ingest" for r in requests)
    assert fake.requests == []  # the dry run used a fake of its own


def test_the_fake_refuses_what_pubsub_refuses(fake, run):
    """What the tests above rely on: the fake says no to a BigQuery subscription Pub/Sub would refuse (over REST,
    FAILED_PRECONDITION and INVALID_ARGUMENT are both HTTP 400)."""
    from google.api_core.exceptions import BadRequest, NotFound

    from ltmctl.gcp.clients import GcpClients

    ok(run("provision", "--yes"))
    bigquery = fake.api(BigQueryApi)
    with GcpClients.for_endpoint(PROJECT, fake.endpoint) as c:
        def make(name: str, **config) -> None:
            c.subscriber.create_subscription(request={
                "name": f"projects/{PROJECT}/subscriptions/{name}", "topic": f"projects/{PROJECT}/topics/ltm-events",
                "bigquery_config": {"use_table_schema": True, "write_metadata": True, **config}})

        make("fits", table=TABLE)
        with pytest.raises(NotFound):
            make("no-table", table=f"{PROJECT}.ltm.nothing")
        with pytest.raises(BadRequest, match="does not have permission"):
            make("other-writer", table=TABLE, service_account_email=f"someone@{PROJECT}.iam.gserviceaccount.com")
        fields = bigquery.tables[f"{PROJECT}:ltm.events"]["schema"]["fields"]
        bigquery.tables[f"{PROJECT}:ltm.events"]["schema"]["fields"] = [
            f for f in fields if f["name"] != "subscription_name"]
        with pytest.raises(BadRequest, match="subscription_name"):
            make("old-schema", table=TABLE)
        bigquery.policies.policies.clear()  # the agent's table grant gone
        bigquery.tables[f"{PROJECT}:ltm.events"]["schema"]["fields"] = fields
        with pytest.raises(BadRequest, match=PUBSUB_AGENT.split(":", 1)[1]):
            make("no-grant", table=TABLE)


def test_status_and_destroy_know_the_table_grant(run, fake):
    ok(run("provision", "--yes"))
    status = run("status", "--output", "json")
    ok(status)
    rows = json.loads(status.stdout)["resources"]
    assert {r["state"] for r in rows} == {"ok"}
    assert f"bigquery.table:{TABLE} roles/bigquery.dataEditor {PUBSUB_AGENT}" in {r["resource"] for r in rows}

    ok(run("destroy", "--yes"))
    assert ours(grants(fake)) == set()
    assert f"{PROJECT}:ltm.events" in fake.api(BigQueryApi).tables  # the data stays unless --delete-data


def test_ci_s_deploy_with_both_images_works_in_bigquery_mode(run, fake):
    # cloudbuild.yaml passes --image api=… --image ingest=… whatever the mode.
    ok(run("provision", "--yes"))
    result = run("deploy", "all", "--image", "api=r/api:1", "--image", "ingest=r/ingest:1")
    ok(result)
    assert "the ingest image is not used" in " ".join(result.stderr.split())
    assert list(fake.api(CloudRunApi).services) == [f"projects/{PROJECT}/locations/us-central1/services/ltm-api"]
    assert fake.api(PubSubApi).subscriptions[INGEST_SUB]["bigqueryConfig"]["table"] == TABLE


def test_the_mode_set_on_the_environment_alone_is_the_one_used(fake, tmp_path, monkeypatch):
    # The pipeline stays push (the local stack can use the same file); dev says bigquery for itself.
    text = DEPLOY_CONFIG.replace("    region: us-central1\n", "    region: us-central1\n    ingest_mode: bigquery\n")
    assert "  ingest_mode" not in text.split("environments:")[0]
    run = Ltmctl(project_dir(tmp_path, fake.endpoint, monkeypatch, text))
    ok(run("provision", "--yes"))
    assert TABLE_GRANT in grants(fake)
    ok(run("deploy"))
    assert fake.api(PubSubApi).subscriptions[INGEST_SUB]["bigqueryConfig"]["table"] == TABLE
    assert INGEST_SERVICE not in fake.api(CloudRunApi).services
