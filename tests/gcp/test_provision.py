"""`ltmctl provision` with the real client libraries against the fake control plane: what is sent, in which
order, and that a second run sends nothing that changes anything."""

from __future__ import annotations

import json

from infra.model import REQUIRED_APIS
from ltmctl.gcp.fake.bigquery import BigQueryApi
from ltmctl.gcp.fake.iam import IamApi
from ltmctl.gcp.fake.pubsub import PubSubApi
from ltmctl.gcp.fake.resourcemanager import ResourceManagerApi
from tests.gcp.support import (
    DEPLOYER_GRANTS,
    DEPLOYER_SA,
    DLQ_TOPIC,
    EXPECTED_GRANTS,
    IAP_WEB,
    INGEST_SUB,
    INVOKER_SA,
    NUMBER,
    PROJECT,
    REPOSITORY,
    STAGING_BUCKET,
    VERIFY_GRANTS,
    grants,
    ours,
)


def _first(fake, method, path):
    """Index of the first recorded request with this method whose path matches."""
    return next(i for i, r in enumerate(fake.requests) if r.method == method and __import__("re").search(path, r.path))


def test_provision_on_an_empty_project_creates_everything_in_dependency_order(fake, ltmctl):
    result = ltmctl("provision", "--yes")
    assert result.exit_code == 0, result.output

    # APIs: one batch with every required API that was off (Resource Manager is on in a new project).
    enables = fake.find("POST", r"services:batchEnable$")
    assert len(enables) == 1
    assert set(enables[0].body["serviceIds"]) == set(REQUIRED_APIS) - {"cloudresourcemanager.googleapis.com"}

    # Identities, with what they are for.
    created = {r.body["accountId"]: r.body["serviceAccount"] for r in fake.find("POST", r"/serviceAccounts$")}
    assert set(created) == {"ltm-api", "ltm-ingest", "ltm-push-invoker", "ltm-builder", "ltm-deployer"}
    assert all(sa["displayName"] and sa["description"] for sa in created.values())

    # Artifact Registry: a Docker repository in the region.
    (repo,) = fake.find("POST", r"/locations/us-central1/repositories$")
    assert repo.query["repositoryId"] == "ltm"
    assert repo.body["format"] in (1, "DOCKER")

    # Staging bucket: in the region, uniform access, old sources deleted by a lifecycle rule.
    (bucket,) = fake.find("POST", r"^/storage/v1/b$")
    assert bucket.body["name"] == f"{PROJECT}-ltm-sources"
    assert bucket.body["location"] == "us-central1"
    assert bucket.body["iamConfiguration"]["uniformBucketLevelAccess"]["enabled"] is True
    assert bucket.body["lifecycle"]["rule"] == [{"action": {"type": "Delete"}, "condition": {"age": 30}}]

    # The pipeline: topics, subscriptions with dead-lettering and retries, the partitioned, clustered table.
    subs = {r.path.rsplit("/", 1)[-1]: r.body for r in fake.find("PUT", r"/subscriptions/")}
    ingest = subs["ltm-events-ingest"]
    assert ingest["deadLetterPolicy"] == {"deadLetterTopic": DLQ_TOPIC, "maxDeliveryAttempts": 5}
    assert ingest["retryPolicy"] == {"minimumBackoff": "1s", "maximumBackoff": "5s"}
    assert subs["ltm-events-dlq-keep"]["messageRetentionDuration"] == "604800s"
    (table,) = fake.find("POST", r"/datasets/ltm/tables$")
    assert table.body["timePartitioning"] == {"type": "DAY", "field": "event_time"}
    assert table.body["clustering"] == {"fields": ["action_id", "user_email", "app_id"]}

    # Dependency order: APIs, then accounts, then the resources, then IAM on them.
    order = [
        _first(fake, "POST", r"services:batchEnable$"),
        _first(fake, "POST", r"/serviceAccounts$"),
        _first(fake, "PUT", r"/topics/ltm-events$"),
        _first(fake, "PUT", r"/topics/ltm-events-dlq$"),
        _first(fake, "POST", r"/datasets$"),
        _first(fake, "POST", r"/tables$"),
        _first(fake, "PUT", r"/subscriptions/ltm-events-ingest$"),
    ]
    assert order == sorted(order)
    def is_grant(r) -> bool:  # a policy write, a bucket's (PUT .../iam) or a dataset's access list (PATCH)
        return (r.path.endswith(":setIamPolicy") or (r.method == "PUT" and r.path.endswith("/iam"))
                or (r.method == "PATCH" and "/datasets/" in r.path))

    last_create = max(i for i, r in enumerate(fake.requests) if r.mutating and not is_grant(r)
                      and r.method != "PATCH")
    first_grant = min(i for i, r in enumerate(fake.requests) if is_grant(r))
    assert first_grant > last_create
    # In particular, who may act as an account is set on that account once it exists.
    account_writes = fake.find("POST", r"/serviceAccounts/[^/]+:setIamPolicy$")
    assert account_writes
    for write in account_writes:
        account_id = write.path.split("/serviceAccounts/")[1].split("@")[0]
        made = next(i for i, r in enumerate(fake.requests)
                    if r.method == "POST" and r.path.endswith("/serviceAccounts") and r.body["accountId"] == account_id)
        assert made < fake.requests.index(write)


def test_provision_grants_exactly_the_listed_roles_and_keeps_everyone_elses(fake, ltmctl):
    assert ltmctl("provision", "--yes").exit_code == 0
    held = grants(fake)
    assert ours(held) == EXPECTED_GRANTS
    # Nothing broad, anywhere: no basic roles, no project-level data roles, nothing for the invoker yet.
    assert not any(role in ("roles/owner", "roles/editor", "roles/viewer") for _, role, m in ours(held))
    assert not any(r.startswith("project") and "data" in role for r, role, _ in ours(held))
    assert not any(m == INVOKER_SA for *_, m in held)
    # Acting as accounts is granted on each account, never on the project (that would cover every account there).
    assert not any(r.startswith("project ") and role == "roles/iam.serviceAccountUser" for r, role, _ in held)
    # What was there before stays: the project owner, the dataset's default access.
    assert (f"project {PROJECT}", "roles/owner", "user:owner@example.com") in held
    assert (f"dataset {PROJECT}:ltm", "OWNER", "projectOwners") in held
    # Every policy write carried the etag it read (read-modify-write, never a blind overwrite).
    writes = fake.find("POST", r":setIamPolicy$")
    assert writes and all(w.body["policy"].get("etag") for w in writes)
    bucket_writes = fake.find("PUT", r"^/storage/v1/b/[^/]+/iam$")
    assert bucket_writes and all(w.body.get("etag") for w in bucket_writes)
    assert all(r.headers.get("If-Match") for r in fake.find("PATCH", r"/datasets/ltm$"))


def test_the_builder_account_is_configurable_and_only_builds_need_it(fake, ltmctl, config_path):
    from ltmctl import config
    from ltmctl.deploy.target import target_for
    from tests.conftest import TEST_CONFIG

    config_path.write_text(TEST_CONFIG + "    gcp: {service_accounts: {builder: ci-image-builder}}\n")
    assert ltmctl("provision", "--yes").exit_code == 0
    builder = f"serviceAccount:ci-image-builder@{PROJECT}.iam.gserviceaccount.com"
    # Objects of the staging bucket (sources in, build log out) and pushes to the repository: nothing else.
    assert {(r, role) for r, role, m in grants(fake) if m == builder} == {
        (f"bucket {STAGING_BUCKET}", "roles/storage.objectAdmin"), (REPOSITORY, "roles/artifactregistry.writer")}
    assert target_for(config.load(config_path, "dev"), int(NUMBER)).builder == builder.split(":", 1)[1]


def test_the_ci_deployer_gets_what_ci_needs_and_nothing_broader(fake, ltmctl):
    assert ltmctl("provision", "--yes").exit_code == 0
    held = {(r, role) for r, role, m in grants(fake) if m == DEPLOYER_SA}
    assert held == {(r, role) for r, role, _ in DEPLOYER_GRANTS | VERIFY_GRANTS}
    # On the project only what has no narrower place: Cloud Run (the services come with the first deploy),
    # writing the build's log, and for verify creating query jobs and reading metrics.
    assert {role for r, role in held if r.startswith("project ")} == {
        "roles/run.admin", "roles/logging.logWriter", "roles/bigquery.jobUser", "roles/monitoring.viewer"}

    # actAs on the three accounts deploy runs something as, each through that account's own policy, read at
    # version 3 (a query parameter: IAM's getIamPolicy takes no body) and written back with its etag; none on the
    # builder; on itself only signJwt (verify's JWT for IAP).
    reads = fake.find("POST", r"/serviceAccounts/[^/]+:getIamPolicy$")
    assert reads and all(r.query == {"options.requestedPolicyVersion": "3"} and r.body is None and not r.raw
                         for r in reads)
    writes = fake.find("POST", r"/serviceAccounts/[^/]+:setIamPolicy$")
    assert sorted(w.path.split("/serviceAccounts/")[1].split("@")[0] for w in writes) == [
        "ltm-api", "ltm-deployer", "ltm-ingest", "ltm-push-invoker"]
    for w in writes:
        role = "roles/iam.serviceAccountTokenCreator" if "/ltm-deployer@" in w.path else "roles/iam.serviceAccountUser"
        assert w.body["policy"]["bindings"] == [{"role": role, "members": [DEPLOYER_SA]}]
        assert w.body["policy"]["etag"]

    # IAP policies of the project's web services (IAP names the project by number), not IAP on the whole project.
    # One grant per write: IAP policies, then IAP settings (deploy writes the API service's programmatic clients).
    *_, last = iap_writes = fake.find("POST", r"/iap_web:setIamPolicy$")
    assert len(iap_writes) == 3 and {w.path for w in iap_writes} == {f"/v1/{IAP_WEB}:setIamPolicy"}
    assert sorted(b["role"] for b in last.body["policy"]["bindings"]) == [
        "roles/iap.admin", "roles/iap.httpsResourceAccessor", "roles/iap.settingsAdmin"]
    assert all(b["members"] == [DEPLOYER_SA] for b in last.body["policy"]["bindings"])


def test_the_deployer_account_is_configurable(fake, ltmctl, config_path):
    from tests.conftest import TEST_CONFIG

    config_path.write_text(TEST_CONFIG + "    gcp: {service_accounts: {deployer: ci-deployer}}\n")
    assert ltmctl("provision", "--yes").exit_code == 0
    deployer = f"serviceAccount:ci-deployer@{PROJECT}.iam.gserviceaccount.com"
    assert {(r, role) for r, role, m in grants(fake) if m == deployer} == {
        (r.replace("ltm-deployer@", "ci-deployer@"), role) for r, role, _ in DEPLOYER_GRANTS | VERIFY_GRANTS}
    assert not any(m == DEPLOYER_SA for *_, m in grants(fake))


def test_a_grant_on_a_new_account_waits_until_iam_sees_it(fake):
    """IAM is eventually consistent: an account created a moment ago may answer NotFound to getIamPolicy."""
    from infra.providers.iam import ServiceAccountGrants, gapic_grants
    from ltmctl.gcp.clients import GcpClients
    from ltmctl.gcp.fake.server import not_found

    fake.enable("iam.googleapis.com")
    name = f"projects/{PROJECT}/serviceAccounts/ltm-api@{PROJECT}.iam.gserviceaccount.com"
    with GcpClients.for_endpoint(PROJECT, fake.endpoint) as c:
        grants_on = gapic_grants(c.iam, kind=ServiceAccountGrants)
        sleeps: list[float] = []
        grants_on.sleep = sleeps.append
        assert grants_on.has(name, "roles/iam.serviceAccountUser", "user:a@example.com") is None  # no account yet
        grants_on.remove(name, "roles/iam.serviceAccountUser", "user:a@example.com")  # nothing to revoke, no wait
        assert sleeps == []

        c.iam.create_service_account(request={"name": f"projects/{PROJECT}", "account_id": "ltm-api",
                                              "service_account": {}})
        fake.fail(r"/serviceAccounts/ltm-api@[^/]+:getIamPolicy$", not_found(name), times=2)
        fake.clear_requests()
        grants_on.add(name, "roles/iam.serviceAccountUser", "user:a@example.com")

    assert [r.path.rsplit(":", 1)[1] for r in fake.requests] == [
        "getIamPolicy", "getIamPolicy", "getIamPolicy", "setIamPolicy"]
    assert sleeps == [1.0, 2.0]
    assert ("serviceAccount " + name.rsplit("/", 1)[1], "roles/iam.serviceAccountUser", "user:a@example.com") in (
        grants(fake))


def test_second_provision_sends_no_mutating_request(fake, ltmctl):
    assert ltmctl("provision", "--yes").exit_code == 0
    fake.clear_requests()
    result = ltmctl("provision", "--yes")
    assert result.exit_code == 0, result.output
    assert "nothing to change" in result.output
    assert fake.requests  # it did read
    assert fake.mutating_requests() == []
    assert not fake.find(None, r":setIamPolicy$")
    assert not fake.find("PUT", r"/iam$")


def test_plan_shows_creates_then_no_change(fake, ltmctl):
    result = ltmctl("provision", "--plan", "--output", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    # Everything is to be created, but Resource Manager's API, which a new project has on.
    assert [r["resource"] for r in rows if r["action"] != "create"] == [
        f"projects/{PROJECT}/services/cloudresourcemanager.googleapis.com"]
    assert len(rows) == 12 + 5 + 2 + 6 + 9 + 9 + 7  # APIs, accounts, repository + bucket, pipeline, grants, deployer,
    # and the deployer's for `ltmctl verify`
    assert fake.mutating_requests() == []

    table = ltmctl("provision", "--plan")
    assert "create" in table.stdout and "iam.service_account" in table.stdout

    assert ltmctl("provision", "--yes").exit_code == 0
    fake.clear_requests()
    rows = json.loads(ltmctl("provision", "--plan", "--output", "json").stdout)
    assert {r["action"] for r in rows} == {"no change"}
    assert fake.mutating_requests() == []


def test_plan_shows_the_fields_an_update_changes(fake, ltmctl):
    assert ltmctl("provision", "--yes").exit_code == 0
    fake.api(PubSubApi).subscriptions[INGEST_SUB]["ackDeadlineSeconds"] = 99
    fake.api(IamApi).accounts[f"ltm-api@{PROJECT}.iam.gserviceaccount.com"]["displayName"] = "renamed"
    rows = json.loads(ltmctl("provision", "--plan", "--output", "json").stdout)
    updates = {r["resource"]: r["fields"] for r in rows if r["action"] == "update"}
    assert updates[INGEST_SUB] == {"ack_deadline_s": {"actual": 99, "desired": 20}}
    sa_key = f"projects/{PROJECT}/serviceAccounts/ltm-api@{PROJECT}.iam.gserviceaccount.com"
    assert updates[sa_key] == {"display_name": {"actual": "renamed", "desired": "LTM API runtime"}}

    assert ltmctl("provision", "--yes").exit_code == 0
    (patch,) = fake.find("PATCH", r"/subscriptions/ltm-events-ingest$")
    assert patch.body["updateMask"] == "ackDeadlineSeconds"
    assert fake.find("PATCH", r"/serviceAccounts/ltm-api@")[0].body["updateMask"] == "displayName"


def test_applying_without_a_terminal_needs_yes(fake, ltmctl):
    result = ltmctl("provision")
    assert result.exit_code == 2
    assert "--yes" in result.output
    assert fake.mutating_requests() == []


def test_a_local_environment_is_a_usage_error(fake, ltmctl):
    for command in (["provision", "--plan"], ["status"], ["destroy", "--yes"]):
        result = ltmctl(*command, env="local")
        assert result.exit_code == 2, result.output
        assert "ltmctl local up" in result.output
    assert fake.requests == []


def test_pending_operations_are_waited_on(fake, ltmctl):
    fake.lro_polls = 1  # every operation answers done=false once
    result = ltmctl("provision", "--yes")
    assert result.exit_code == 0, result.output
    polls = [r for r in fake.requests if r.method == "GET" and "/operations/" in r.path]
    assert len(polls) >= 2  # the batch enable and the repository creation
    assert fake.api(ResourceManagerApi).policies.policies  # and provisioning went on to the end
    assert fake.api(BigQueryApi).tables


def test_a_provisioned_project_whose_iap_agent_was_never_created_gets_it_from_provision(fake, ltmctl):
    # As a project provisioned by an ltmctl that left agents to deploy: nothing to change, but no IAP agent.
    assert ltmctl("provision", "--yes").exit_code == 0
    iap_agent = f"service-{NUMBER}@gcp-sa-iap.iam.gserviceaccount.com"
    del fake.agents[iap_agent]

    result = ltmctl("provision", "--yes")

    assert result.exit_code == 0, result.output
    assert "nothing to change" in result.output and iap_agent in fake.agents
    assert fake.member_exists(f"serviceAccount:{iap_agent}")
