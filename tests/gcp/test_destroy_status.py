"""`ltmctl status` reports ok / missing / drifted; `ltmctl destroy` removes what provision made, data last."""

from __future__ import annotations

import json

from ltmctl.gcp.fake.artifactregistry import ArtifactRegistryApi
from ltmctl.gcp.fake.bigquery import BigQueryApi
from ltmctl.gcp.fake.iam import IamApi
from ltmctl.gcp.fake.pubsub import PubSubApi
from ltmctl.gcp.fake.storage import StorageApi
from tests.gcp.support import EXPECTED_GRANTS, INGEST_SUB, PROJECT, grants, ours


def test_status_before_and_after_provision_and_after_drift(fake, ltmctl):
    rows = json.loads(ltmctl("status", "--output", "json").stdout)["resources"]
    assert {r["state"] for r in rows if "cloudresourcemanager" not in r["resource"]} == {"missing"}

    assert ltmctl("provision", "--yes").exit_code == 0
    result = ltmctl("status", "--output", "json")
    assert result.exit_code == 0
    assert {r["state"] for r in json.loads(result.stdout)["resources"]} == {"ok"}

    fake.api(PubSubApi).subscriptions[INGEST_SUB]["deadLetterPolicy"]["maxDeliveryAttempts"] = 9
    fake.clear_requests()
    result = ltmctl("status")
    assert result.exit_code == 0
    assert "drifted" in result.stdout
    assert "1 drifted" in result.output
    rows = json.loads(ltmctl("status", "--output", "json").stdout)["resources"]
    (drifted,) = [r for r in rows if r["state"] == "drifted"]
    assert drifted["resource"] == INGEST_SUB
    assert drifted["drift"] == {"max_delivery_attempts": {"actual": 9, "desired": 5}}
    assert fake.mutating_requests() == []  # status only reads


def test_destroy_removes_what_provision_made_and_keeps_the_data(fake, ltmctl):
    assert ltmctl("provision", "--yes").exit_code == 0
    fake.clear_requests()

    refused = ltmctl("destroy")
    assert refused.exit_code == 2 and "--yes" in refused.output
    assert fake.mutating_requests() == []

    result = ltmctl("destroy", "--yes")
    assert result.exit_code == 0, result.output
    assert "Kept dataset ltm" in result.output
    assert fake.api(PubSubApi).topics == {} and fake.api(PubSubApi).subscriptions == {}
    assert fake.api(IamApi).accounts == {}
    assert fake.api(ArtifactRegistryApi).repositories == {}
    assert fake.api(StorageApi).buckets == {}
    assert set(fake.api(BigQueryApi).datasets) == {f"{PROJECT}:ltm"}
    assert set(fake.api(BigQueryApi).tables) == {f"{PROJECT}:ltm.events"}
    # The grants went too (the kept dataset's included), and only those; the CI deployer's on IAP's web services,
    # which outlive everything provision made, by a policy write of their own.
    assert ours(grants(fake)) == set()
    *_, iap_revoke = fake.find("POST", r"/iap_web:setIamPolicy$")  # one write per grant
    assert iap_revoke.body["policy"].get("bindings", []) == []
    assert (f"project {PROJECT}", "roles/owner", "user:owner@example.com") in grants(fake)
    assert (f"dataset {PROJECT}:ltm", "OWNER", "projectOwners") in grants(fake)
    # APIs stay enabled: other workloads may use them.
    assert not fake.find("POST", r":disable$")
    # Reverse order: the subscription that uses the topic goes before the topic.
    paths = [r.path for r in fake.requests if r.method == "DELETE"]
    assert paths.index(f"/v1/{INGEST_SUB}") < paths.index(f"/v1/projects/{PROJECT}/topics/ltm-events")

    again = ltmctl("destroy", "--yes")
    assert again.exit_code == 0 and "Nothing to delete" in again.output

    gone = ltmctl("destroy", "--yes", "--delete-data")
    assert gone.exit_code == 0, gone.output
    assert fake.api(BigQueryApi).datasets == {} and fake.api(BigQueryApi).tables == {}


def test_provision_after_destroy_restores_everything(fake, ltmctl):
    assert ltmctl("provision", "--yes").exit_code == 0
    assert ltmctl("destroy", "--yes").exit_code == 0
    assert ltmctl("provision", "--yes").exit_code == 0
    assert ours(grants(fake)) == EXPECTED_GRANTS
    assert {r["state"] for r in json.loads(ltmctl("status", "-o", "json").stdout)["resources"]} == {"ok"}
