"""Google's timing and defaults where they bite (issue 11): IAM's delay for new accounts, service agents that must
be created, old projects' push auth, subscription expiry, and the shapes and answers Google gives that a laxer fake
let through. The fake's clock stands in for waiting: nothing here sleeps."""

from __future__ import annotations

import json

import pytest
from google.api_core.exceptions import BadRequest, NotFound

from ltmctl.gcp.fake import FakeGcp
from ltmctl.gcp.fake.bigquery import BigQueryApi
from ltmctl.gcp.fake.iap import ServiceIdentityApi
from ltmctl.gcp.fake.pubsub import PubSubApi
from ltmctl.gcp.fake.resourcemanager import ResourceManagerApi
from ltmctl.gcp.fake.serviceusage import ServiceUsageApi
from ltmctl.gcp.fake.storage import StorageApi
from tests.gcp.support import (
    DEPLOYER_SA,
    EXPECTED_GRANTS,
    INGEST_SA,
    INVOKER_SA,
    NUMBER,
    PROJECT,
    PUBSUB_AGENT,
    STAGING_BUCKET,
    account,
    grants,
    ours,
)

TOPIC = f"projects/{PROJECT}/topics/t1"
IAP_AGENT = f"serviceAccount:service-{NUMBER}@gcp-sa-iap.iam.gserviceaccount.com"
DAY = 24 * 3600


@pytest.fixture
def clients(fake):
    from ltmctl.gcp.clients import GcpClients

    fake.enable("iam.googleapis.com", "pubsub.googleapis.com")
    with GcpClients.for_endpoint(PROJECT, fake.endpoint) as c:
        c.publisher.create_topic(request={"name": TOPIC})
        yield c


def _new_account(clients, account_id: str) -> str:
    clients.iam.create_service_account(request={"name": f"projects/{PROJECT}", "account_id": account_id,
                                                "service_account": {}})
    return f"serviceAccount:{account_id}@{PROJECT}.iam.gserviceaccount.com"


def _topic_grants(fake, clients):
    from infra.providers.iam import gapic_grants

    grants_on = gapic_grants(clients.publisher)
    sleeps: list[float] = []
    said: list[str] = []
    grants_on.sleep = lambda s: (sleeps.append(s), fake.advance(s))
    grants_on.on_wait = said.append
    return grants_on, sleeps, said


# --- 1, 2: IAM's delay for a new account ----------------------------------------------------------------------

def test_the_fake_refuses_a_new_account_in_bindings_until_iams_delay_has_passed(fake, clients):
    fake.iam_delay_s = 60
    member = _new_account(clients, "fresh-one")
    policy = clients.publisher.get_iam_policy(request={"resource": TOPIC})
    policy.bindings.add(role="roles/pubsub.publisher", members=[member])
    with pytest.raises(BadRequest, match=f"Service account {member.split(':')[1]} does not exist."):
        clients.publisher.set_iam_policy(request={"resource": TOPIC, "policy": policy})
    fake.advance(59)
    with pytest.raises(BadRequest):
        clients.publisher.set_iam_policy(request={"resource": TOPIC, "policy": policy})
    fake.advance(1)
    clients.publisher.set_iam_policy(request={"resource": TOPIC, "policy": policy})
    # An account that was never created stays refused, however long one waits.
    policy = clients.publisher.get_iam_policy(request={"resource": TOPIC})
    policy.bindings.add(role="roles/pubsub.subscriber", members=[f"serviceAccount:ghost@{PROJECT}.iam."
                                                                  "gserviceaccount.com"])
    fake.advance(DAY)
    with pytest.raises(BadRequest, match="does not exist"):
        clients.publisher.set_iam_policy(request={"resource": TOPIC, "policy": policy})


def test_a_grant_to_an_account_iam_does_not_see_yet_waits_with_backoff_and_says_so(fake, clients):
    fake.iam_delay_s = 45  # over REST the 400 is a BadRequest, not InvalidArgument
    member = _new_account(clients, "fresh-one")
    grants_on, sleeps, said = _topic_grants(fake, clients)
    grants_on.add(TOPIC, "roles/pubsub.publisher", member)

    assert sleeps == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0]  # doubling, capped; done once 45 s had passed
    assert len(said) == len(sleeps) and all(member.split(":")[1] in line for line in said)
    assert [r.status for r in fake.find("POST", r"t1:setIamPolicy$")] == [400] * 6 + [200]
    assert (TOPIC, "roles/pubsub.publisher", member) in grants(fake)


def test_an_account_that_never_appears_fails_after_a_bounded_wait_naming_it(fake, clients):
    from infra.errors import InfraError
    from infra.providers.iam import IAM_PROPAGATION_S

    grants_on, sleeps, said = _topic_grants(fake, clients)
    ghost = f"serviceAccount:ghost@{PROJECT}.iam.gserviceaccount.com"
    with pytest.raises(InfraError, match="ghost@") as raised:
        grants_on.add(TOPIC, "roles/pubsub.publisher", ghost)
    assert 120 <= sum(sleeps) <= IAM_PROPAGATION_S and max(sleeps) <= 30
    assert "ltmctl provision" in raised.value.hint


def test_provision_waits_for_iam_to_see_the_accounts_it_just_made(fake, config_path):
    """The whole of provision, with IAM seeing every new account 20 s after it is made: it completes."""
    from ltmctl import config
    from ltmctl.gcp import provisioning
    from ltmctl.gcp.clients import GcpClients

    fake.iam_delay_s = 20
    said: list[str] = []
    with GcpClients.for_endpoint(PROJECT, fake.endpoint) as c:
        t = provisioning.target(config.load(config_path, "dev"), c, on_wait=said.append)
        for kind in t.providers["iam.member"]._provider.grants.values():
            kind.sleep = fake.advance
        provisioning.apply(t, provisioning.plan(t))
    assert ours(grants(fake)) == EXPECTED_GRANTS
    assert said and all("does not see" in line for line in said)


# --- 3: service agents exist once created, by provision --------------------------------------------------------

def _bind(fake, clients, member: str) -> None:
    policy = clients.publisher.get_iam_policy(request={"resource": TOPIC})
    policy.bindings.add(role="roles/pubsub.publisher", members=[member])
    clients.publisher.set_iam_policy(request={"resource": TOPIC, "policy": policy})


def test_the_fake_has_service_agents_only_once_created():
    import requests

    with FakeGcp(PROJECT, NUMBER, lro_polls=1) as fake:
        assert PUBSUB_AGENT.split(":")[1] not in fake.agents
        from ltmctl.gcp.clients import GcpClients

        fake.enable("pubsub.googleapis.com")  # Pub/Sub's agent comes with its API
        owner = {"Authorization": f"Bearer {fake.token_for(fake.owner)}"}
        with GcpClients.for_endpoint(PROJECT, fake.endpoint, fake.token_for(fake.owner)) as c:
            c.publisher.create_topic(request={"name": TOPIC})
            _bind(fake, c, PUBSUB_AGENT)
            with pytest.raises(BadRequest, match="does not exist"):  # IAP's: not until generateServiceIdentity
                _bind(fake, c, IAP_AGENT)
            url = f"{fake.endpoint}/v1beta1/projects/{PROJECT}/services/iap.googleapis.com:generateServiceIdentity"
            op = requests.post(url, headers=owner, timeout=10).json()
            assert op["done"] is False
            with pytest.raises(BadRequest):  # asked for, but its operation is not done yet
                _bind(fake, c, IAP_AGENT)
            op = requests.get(f"{fake.endpoint}/v1beta1/{op['name']}", headers=owner, timeout=10).json()
            assert op["done"] is True and op["response"]["email"] == IAP_AGENT.split(":")[1]
            _bind(fake, c, IAP_AGENT)


def test_provision_creates_the_agents_and_deploy_calls_no_service_usage(fake, tmp_path, monkeypatch):
    from ltmctl import config
    from tests.gcp.conftest import Ltmctl
    from tests.gcp.deploy_support import deploy, project_dir, provisioned

    path = project_dir(tmp_path, fake.endpoint, monkeypatch)
    fake.lro_polls = 1
    assert Ltmctl(path)("provision", "--yes").exit_code == 0
    made = [r.path.rsplit("/", 1)[1] for r in fake.find("POST", r":generateServiceIdentity$")]
    assert made == ["pubsub.googleapis.com:generateServiceIdentity", "iap.googleapis.com:generateServiceIdentity"]
    assert all(r.body is None and not r.raw for r in fake.find("POST", r":generateServiceIdentity$"))  # no body
    assert len(fake.find("GET", r"^/v1beta1/operations/")) >= 2  # it waited for each operation
    assert IAP_AGENT.split(":")[1] in fake.agents

    fake.clear_requests()
    resolved = config.load(path, "dev")
    with provisioned(fake, resolved) as clients:  # a second provision: nothing to change, no agent call
        assert not fake.find(None, "generateServiceIdentity")
        deploy(resolved, clients)
    service_usage = {fake.api(ServiceUsageApi), fake.api(ServiceIdentityApi)}
    assert fake.requests
    assert [r.path for r in fake.requests if fake._route(r) and fake._route(r)[0].api in service_usage] == []
    assert not fake.find(None, r"^/v1beta1/")


# --- 4: projects created before 2021-04-08 ---------------------------------------------------------------------

TOKEN_CREATOR = "roles/iam.serviceAccountTokenCreator"


def test_an_old_project_lets_pubsub_sign_push_tokens_as_the_invoker_only(fake, ltmctl):
    fake.api(ResourceManagerApi).create_time = "2020-11-03T10:00:00.000Z"
    assert ltmctl("provision", "--yes").exit_code == 0
    held = grants(fake)
    assert (account(INVOKER_SA), TOKEN_CREATOR, PUBSUB_AGENT) in held
    # Besides the deployer's signJwt on itself alone (verify's JWT for IAP), in every project.
    assert sorted(g for g in held if g[1] == TOKEN_CREATOR) == [
        (account(DEPLOYER_SA), TOKEN_CREATOR, DEPLOYER_SA), (account(INVOKER_SA), TOKEN_CREATOR, PUBSUB_AGENT)]
    fake.clear_requests()
    assert ltmctl("provision", "--yes").exit_code == 0 and fake.mutating_requests() == []


def test_a_project_created_after_2021_04_08_gets_no_token_creator(fake, ltmctl):
    fake.api(ResourceManagerApi).create_time = "2021-04-09T00:00:00Z"
    assert ltmctl("provision", "--yes").exit_code == 0
    assert [g for g in grants(fake) if g[1] == TOKEN_CREATOR] == [(account(DEPLOYER_SA), TOKEN_CREATOR, DEPLOYER_SA)]


# --- 5: subscriptions never expire -----------------------------------------------------------------------------

def test_the_fake_deletes_a_subscription_idle_for_its_default_ttl(fake, clients):
    sub = f"projects/{PROJECT}/subscriptions/s1"
    clients.subscriber.create_subscription(request={"name": sub, "topic": TOPIC})
    assert clients.subscriber.get_subscription(request={"subscription": sub}).expiration_policy.ttl.days == 31
    fake.advance(31 * DAY)
    clients.subscriber.get_subscription(request={"subscription": sub})  # reading is not activity
    fake.advance(1)
    with pytest.raises(NotFound):
        clients.subscriber.get_subscription(request={"subscription": sub})


def test_every_subscription_never_expires_and_an_expiring_one_is_drift(fake, ltmctl):
    assert ltmctl("provision", "--yes").exit_code == 0
    for put in fake.find("PUT", r"/subscriptions/"):
        assert put.body["expirationPolicy"] == {}  # on the wire, so Pub/Sub does not apply its 31 days
    fake.advance(400 * DAY)
    subs = fake.api(PubSubApi).subscriptions
    assert {n.rsplit("/", 1)[1] for n in subs} == {"ltm-events-ingest", "ltm-events-dlq-keep"}

    # One made by an older provision carries Google's default: provision shows it and updates only that field.
    keeper = f"projects/{PROJECT}/subscriptions/ltm-events-dlq-keep"
    subs[keeper]["expirationPolicy"] = {"ttl": "2678400s"}
    fake.api(PubSubApi).active[keeper] = fake.clock  # and was in use until now
    rows = json.loads(ltmctl("provision", "--plan", "--output", "json").stdout)
    assert [r["fields"] for r in rows if r["action"] == "update"] == [
        {"expiration_ttl_s": {"actual": 2678400, "desired": 0}}]
    fake.clear_requests()
    assert ltmctl("provision", "--yes").exit_code == 0
    (patch,) = fake.find("PATCH", r"/subscriptions/")
    assert patch.body["updateMask"] == "expirationPolicy" and patch.body["subscription"]["expirationPolicy"] == {}
    assert subs[keeper]["expirationPolicy"] == {}
    fake.advance(400 * DAY)
    assert keeper in fake.api(PubSubApi).subscriptions


# --- 6: IAM's getIamPolicy takes no body ----------------------------------------------------------------------

def test_iam_get_iam_policy_sends_its_version_as_a_query_parameter(fake, clients):
    import requests

    name = _new_account(clients, "ltm-api").split(":")[1]
    resource = f"projects/{PROJECT}/serviceAccounts/{name}"
    clients.iam.get_iam_policy(request={"resource": resource, "options": {"requested_policy_version": 3}})
    (read,) = fake.find("POST", r":getIamPolicy$")
    assert read.query == {"options.requestedPolicyVersion": "3"} and read.body is None and not read.raw
    # The fake answers a body as Google does: 400.
    answer = requests.post(f"{fake.endpoint}/v1/{resource}:getIamPolicy",
                           json={"options": {"requestedPolicyVersion": 3}}, timeout=10)
    assert answer.status_code == 400 and 'Unknown name "options"' in answer.json()["error"]["message"]


# --- 7: the ingest account writes the table, not the dataset ----------------------------------------------------

def test_the_ingest_account_edits_the_table_only_and_an_old_dataset_writer_is_revoked(fake, ltmctl):
    assert ltmctl("provision", "--yes").exit_code == 0
    held = grants(fake)
    assert (f"table {PROJECT}:ltm.events", "roles/bigquery.dataEditor", INGEST_SA) in held
    # On the dataset it only reads metadata (a streaming insert checks bigquery.datasets.get there): no write role.
    assert [g for g in held if g[0].startswith("dataset ") and g[2] == INGEST_SA] == [
        (f"dataset {PROJECT}:ltm", "roles/bigquery.routineMetadataViewer", INGEST_SA)]

    # An older provision left WRITER on the whole dataset: the next one takes it away, and only it.
    dataset = fake.api(BigQueryApi).datasets[f"{PROJECT}:ltm"]
    dataset["access"].append({"role": "WRITER", "userByEmail": INGEST_SA.split(":")[1]})
    rows = json.loads(ltmctl("provision", "--plan", "--output", "json").stdout)
    assert [(r["action"], r["resource"]) for r in rows if r["action"] != "no change"] == [
        ("delete", f"bigquery.dataset:{PROJECT}.ltm roles/bigquery.dataEditor {INGEST_SA}")]
    assert ltmctl("provision", "--yes").exit_code == 0
    assert ours(grants(fake)) == EXPECTED_GRANTS


# --- 8: a permission hint names a role that has the permission -------------------------------------------------

# The REST methods ltmctl calls (provision, deploy, status, destroy, publish, query, dlq, monitoring apply, metrics,
# logs), as discovery method ids.
CALLED = """
serviceusage.services.batchGet serviceusage.services.batchEnable serviceusage.services.generateServiceIdentity
cloudresourcemanager.projects.get cloudresourcemanager.projects.getIamPolicy cloudresourcemanager.projects.setIamPolicy
iam.projects.serviceAccounts.get iam.projects.serviceAccounts.create iam.projects.serviceAccounts.patch
iam.projects.serviceAccounts.delete iam.projects.serviceAccounts.getIamPolicy iam.projects.serviceAccounts.setIamPolicy
pubsub.projects.topics.get pubsub.projects.topics.create pubsub.projects.topics.delete pubsub.projects.topics.publish
pubsub.projects.topics.getIamPolicy pubsub.projects.topics.setIamPolicy pubsub.projects.subscriptions.get
pubsub.projects.subscriptions.create pubsub.projects.subscriptions.patch pubsub.projects.subscriptions.delete
pubsub.projects.subscriptions.modifyPushConfig pubsub.projects.subscriptions.pull
pubsub.projects.subscriptions.acknowledge pubsub.projects.subscriptions.getIamPolicy
pubsub.projects.subscriptions.setIamPolicy
bigquery.datasets.get bigquery.datasets.insert bigquery.datasets.patch bigquery.datasets.delete bigquery.tables.get
bigquery.tables.insert bigquery.tables.patch bigquery.tables.delete bigquery.tables.getIamPolicy
bigquery.tables.setIamPolicy bigquery.jobs.insert bigquery.jobs.query bigquery.jobs.getQueryResults
storage.buckets.get storage.buckets.insert storage.buckets.patch storage.buckets.delete storage.buckets.getIamPolicy
storage.buckets.setIamPolicy storage.objects.insert storage.objects.get storage.objects.list storage.objects.delete
artifactregistry.projects.locations.repositories.get artifactregistry.projects.locations.repositories.create
artifactregistry.projects.locations.repositories.delete artifactregistry.projects.locations.repositories.getIamPolicy
artifactregistry.projects.locations.repositories.setIamPolicy
run.projects.locations.services.get run.projects.locations.services.create run.projects.locations.services.patch
run.projects.locations.services.delete run.projects.locations.services.getIamPolicy
run.projects.locations.services.setIamPolicy
cloudbuild.projects.locations.builds.create cloudbuild.projects.locations.builds.get
monitoring.projects.timeSeries.list monitoring.projects.alertPolicies.list monitoring.projects.alertPolicies.create
monitoring.projects.alertPolicies.patch monitoring.projects.dashboards.list monitoring.projects.dashboards.create
monitoring.projects.dashboards.patch
""".split()


def test_the_hint_for_every_permission_ltmctl_needs_names_a_role_that_has_it():
    from ltmctl.gcp.iamdata import method_permissions, role_permissions
    from ltmctl.gcp.roles import role_for

    methods, roles = method_permissions(), role_permissions()
    assert set(CALLED) <= set(methods)
    needed = {p for m in CALLED for p in methods[m]} | {"logging.logEntries.list"}  # entries.list: no mapping
    wrong = {p: role_for(p) for p in sorted(needed) if role_for(p) is None or p not in roles[role_for(p)]}
    assert wrong == {}
    assert role_for("monitoring.alertPolicies.create") == "roles/monitoring.alertPolicyEditor"
    assert role_for("monitoring.dashboards.create") == "roles/monitoring.dashboardEditor"
    assert role_for("monitoring.timeSeries.list") == "roles/monitoring.viewer"
    assert role_for("logging.logEntries.list") == "roles/logging.viewer"


def test_readme_lists_the_roles_the_hints_and_commands_need():
    from ltmctl.gcp.roles import DEPLOYER_ROLES, OPERATOR_ROLES
    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Deploy to Google Cloud"):readme.index("**Steps:**")]
    listed = {f"roles/{name}" for name in __import__("re").findall(r"`roles/([\w.]+)`", section)} - {"roles/owner"}
    assert set(DEPLOYER_ROLES) | set(OPERATOR_ROLES) <= listed


# --- 9: a staging bucket name another project holds -----------------------------------------------------------

def test_a_bucket_name_taken_by_another_project_asks_for_another_name(fake, ltmctl):
    fake.api(StorageApi).foreign.add(STAGING_BUCKET)
    result = ltmctl("provision", "--yes")
    assert result.exit_code == 4, result.output
    text = " ".join(result.output.split())
    assert "gcp.staging_bucket" in text and "another name" in text
    assert "--role=roles/storage.admin" not in text  # not a permission problem of the user's
    assert not fake.api(StorageApi).buckets
