"""`ltmctl verify` against the strict fake, as cloudbuild.yaml runs it: as the build's account (ltm-deployer) right
after `deploy`, with exactly what provision granted it. Pub/Sub push and IAP are played by tests.gcp.verify_support."""

from __future__ import annotations

import base64
import json

import pytest

from ltmctl.gcp.fake.pubsub import PubSubApi
from tests.gcp.conftest import Ltmctl
from tests.gcp.support import DEPLOYER_SA, DLQ_KEEP_SUB, DLQ_TOPIC, INGEST_SA, MAIN_TOPIC, PROJECT, VERIFY_GRANTS
from tests.gcp.verify_support import Pipeline

DEPLOYER = DEPLOYER_SA.split(":", 1)[1]
IMAGES = [f"--image=api=us-central1-docker.pkg.dev/{PROJECT}/ltm/ltm-api:b1",
          f"--image=ingest=us-central1-docker.pkg.dev/{PROJECT}/ltm/ltm-ingest:b1"]
VERIFY = ("verify", "--service-account", DEPLOYER, "--timeout", "30", "--metrics-wait", "10", "-o", "json")


@pytest.fixture
def deployed(fake, tmp_path, monkeypatch):
    """Provisioned by the owner, deployed by the deployer (as CI does), the API's URL where the stand-in IAP is;
    ltmctl then acts as the deployer."""
    from tests.gcp.deploy_support import project_dir

    owner = Ltmctl(project_dir(tmp_path, fake.endpoint, monkeypatch))
    assert owner("provision", "--yes").exit_code == 0
    monkeypatch.setenv("LTM_GCP_TOKEN", fake.token_for(DEPLOYER_SA))
    result = owner("deploy", "all", *IMAGES)
    assert result.exit_code == 0, result.output
    pipeline = Pipeline(fake)
    monkeypatch.setenv("LTM_API_URL", pipeline.url)
    fake.clear_requests()
    yield owner, pipeline
    pipeline.close()


def _report(result) -> dict:
    """verify's JSON report (the ingest function, running in this process, also logs to stdout)."""
    return json.loads(result.stdout[result.stdout.index('{\n  "environment"'):])


def _foreign_dead_letter(fake) -> None:
    """Someone else's dead letter, already waiting in the dead-letter subscription."""
    owner = fake.token_for(fake.owner)
    import urllib.request

    body = json.dumps({"messages": [{"data": base64.b64encode(b"not json").decode(),
                                     "attributes": {"error": "not_json"}}]}).encode()
    request = urllib.request.Request(f"{fake.endpoint}/v1/{DLQ_TOPIC}:publish", body,
                                     {"Content-Type": "application/json", "Authorization": f"Bearer {owner}"})
    urllib.request.urlopen(request).read()


def test_verify_passes_as_the_deployer_and_sends_the_right_requests(fake, deployed):
    ltmctl, pipeline = deployed
    _foreign_dead_letter(fake)
    fake.clear_requests()

    result = ltmctl(*VERIFY)

    assert result.exit_code == 0, result.output
    report = _report(result)
    assert [c for c in report["checks"] if not c["ok"]] == []
    # Every request verify sent was as the build's account (the rest are the ingest function's), none refused.
    assert not [r for r in fake.requests if r.status in (401, 403)]
    ours = [r for r in fake.requests if r.method_id and r.principal == DEPLOYER_SA]
    theirs = {r.method_id for r in fake.requests if r.method_id and r.principal != DEPLOYER_SA}
    assert theirs == {"bigquery.tabledata.insertAll", "pubsub.projects.topics.publish"}
    assert {r.principal for r in fake.requests if r.method_id} == {DEPLOYER_SA, INGEST_SA}
    # Three events and one invalid one to the main topic, nowhere else.
    (publish, *more) = [r for r in ours if r.path.endswith(":publish")]
    assert {r.path for r in [publish, *more]} == {f"/v1/{MAIN_TOPIC}:publish"}
    sent = [json.loads(base64.b64decode(m["data"])) for r in [publish, *more] for m in r.body["messages"]]
    assert len(sent) == 4 and all(e["app_id"] == "ltm-verify" for e in sent)
    # Read back with parameterized queries, never the value in the SQL.
    jobs = fake.find("POST", r"/projects/my-project-id/jobs$")
    assert jobs and all("@event_id" in r.body["configuration"]["query"]["query"] for r in jobs)
    assert all(sent[0]["event_id"] not in r.body["configuration"]["query"]["query"] for r in jobs)
    # The JWT for IAP signed by the deployer for itself, sent as a bearer token, and let through by IAP.
    (sign,) = fake.find("POST", r":signJwt$")
    assert sign.path == f"/v1/projects/-/serviceAccounts/{DEPLOYER}:signJwt"
    assert {p.split("?")[0] for p, _, s in pipeline.seen if s == 200} == {
        "/readyz", f"/get_data/{sent[0]['action_id']}:{sent[0]['user_email']}",
        f"/get_data/{sent[1]['action_id']}:{sent[1]['user_email']}"}
    refused = [(p, h) for p, h, s in pipeline.seen if s == 401]
    assert len(refused) == 1 and refused[0][0] == "/app_info/ltm-verify:verify"
    assert "Authorization" not in refused[0][1]
    # Dead letters: its own acknowledged, the other one left for `ltmctl dlq` (released, not acknowledged).
    assert fake.find("POST", f"/v1/{DLQ_KEEP_SUB}:pull$")
    left = list(fake.api(PubSubApi).backlog[DLQ_KEEP_SUB].values())
    assert [(m["attributes"]["error"], leased) for m, leased in left] == [("not_json", False)]
    # The API's requests read from Cloud Monitoring.
    assert fake.find("GET", r"/v3/projects/my-project-id/timeSeries$")


def test_verify_fails_with_exit_4_and_names_the_check_when_iap_refuses(fake, deployed):
    from tests.gcp.support import IAP_WEB, revoke

    ltmctl, pipeline = deployed
    revoke(fake, (IAP_WEB, "roles/iap.httpsResourceAccessor", DEPLOYER_SA))

    result = ltmctl(*VERIFY)

    assert result.exit_code == 4, result.output
    report = _report(result)
    failed = {c["name"]: c for c in report["checks"] if not c["ok"]}
    assert set(failed) == {"API ready", "GET /get_data with a credential answers the event",
                           "an event published twice is counted once"}
    assert "HTTP 403" in failed["API ready"]["saw"]
    assert "roles/iap.httpsResourceAccessor" in failed["GET /get_data with a credential answers the event"]["hint"]


# --- least privilege: each grant provision gives the deployer for verify is needed --------------------------------

# The check each grant serves, and the permission its removal must be refused on.
NEEDS = {
    "roles/pubsub.publisher": ("event stored exactly once, as sent", "pubsub.topics.publish"),
    "roles/bigquery.jobUser": ("event stored exactly once, as sent", "bigquery.jobs.create"),
    "roles/bigquery.dataViewer": ("event stored exactly once, as sent", "bigquery.tables.getData"),
    "roles/iam.serviceAccountTokenCreator": ("API ready", "iam.serviceAccounts.signJwt"),
    "roles/iap.httpsResourceAccessor": ("API ready", "iap.webServiceVersions.accessViaIAP"),
    "roles/pubsub.subscriber": ("an invalid event is dead-lettered with its reason", "pubsub.subscriptions.consume"),
    "roles/monitoring.viewer": ("the API's requests show in metrics", "monitoring.timeSeries.list"),
}


def test_every_verify_grant_has_its_need_named():
    assert {role for _, role, _ in VERIFY_GRANTS} == set(NEEDS)


REMOVED = sorted(VERIFY_GRANTS)  # the meta-test in test_least_privilege.py reads this


@pytest.mark.parametrize("grant", REMOVED, ids=lambda g: f"{g[1]} on {g[0]}")
def test_each_verify_grant_is_needed_by_a_named_check(grant, fake, deployed):
    from ltmctl.gcp.iamdata import role_permissions
    from tests.gcp.support import revoke

    ltmctl, _ = deployed
    revoke(fake, grant)

    result = ltmctl(*VERIFY)

    assert result.exit_code == 4, f"verify passes without {grant[1]} on {grant[0]}: provision should not grant it"
    check, permission = NEEDS[grant[1]]
    failed = {c["name"]: c for c in _report(result)["checks"] if not c["ok"]}
    assert check in failed, failed
    if permission.startswith("iap."):  # refused by IAP, not by an API: the stand-in asked IAM
        assert "HTTP 403" in failed[check]["saw"]
    else:
        assert permission in failed[check]["saw"], failed[check]["saw"]
        assert any(r.denied_permission == permission for r in fake.requests if r.status == 403)
    assert permission in role_permissions()[grant[1]]
