"""Reading the fake's state back as plain facts for assertions."""

from __future__ import annotations

from ltmctl.gcp.fake import FakeGcp
from ltmctl.gcp.fake.artifactregistry import ArtifactRegistryApi
from ltmctl.gcp.fake.bigquery import BigQueryApi
from ltmctl.gcp.fake.iam import IamApi
from ltmctl.gcp.fake.iap import IapApi
from ltmctl.gcp.fake.pubsub import PubSubApi
from ltmctl.gcp.fake.resourcemanager import ResourceManagerApi
from ltmctl.gcp.fake.storage import StorageApi

PROJECT = "my-project-id"
NUMBER = "123456789012"
API_SA = f"serviceAccount:ltm-api@{PROJECT}.iam.gserviceaccount.com"
INGEST_SA = f"serviceAccount:ltm-ingest@{PROJECT}.iam.gserviceaccount.com"
INVOKER_SA = f"serviceAccount:ltm-push-invoker@{PROJECT}.iam.gserviceaccount.com"
BUILDER_SA = f"serviceAccount:ltm-builder@{PROJECT}.iam.gserviceaccount.com"
DEPLOYER_SA = f"serviceAccount:ltm-deployer@{PROJECT}.iam.gserviceaccount.com"
PUBSUB_AGENT = f"serviceAccount:service-{NUMBER}@gcp-sa-pubsub.iam.gserviceaccount.com"
DLQ_TOPIC = f"projects/{PROJECT}/topics/ltm-events-dlq"
INGEST_SUB = f"projects/{PROJECT}/subscriptions/ltm-events-ingest"
DATASET = f"{PROJECT}:ltm"
EVENTS_TABLE = f"{PROJECT}:ltm.events"
STAGING_BUCKET = f"{PROJECT}-ltm-sources"
REPOSITORY = f"projects/{PROJECT}/locations/us-central1/repositories/ltm"
IAP_WEB = f"projects/{NUMBER}/iap_web"


def account(member: str) -> str:
    """How `grants` names a service account as a resource (its own IAM policy)."""
    return f"serviceAccount {member.split(':', 1)[1]}"


# The CI deployer's grants in push mode (the default): each as narrow as Google allows (see infra.model).
DEPLOYER_GRANTS = {
    (f"project {PROJECT}", "roles/run.admin", DEPLOYER_SA),
    (f"project {PROJECT}", "roles/logging.logWriter", DEPLOYER_SA),
    (account(API_SA), "roles/iam.serviceAccountUser", DEPLOYER_SA),
    (account(INGEST_SA), "roles/iam.serviceAccountUser", DEPLOYER_SA),
    (account(INVOKER_SA), "roles/iam.serviceAccountUser", DEPLOYER_SA),
    (INGEST_SUB, "roles/pubsub.editor", DEPLOYER_SA),
    (IAP_WEB, "roles/iap.admin", DEPLOYER_SA),
    (IAP_WEB, "roles/iap.settingsAdmin", DEPLOYER_SA),
    (REPOSITORY, "roles/artifactregistry.writer", DEPLOYER_SA),
}
MAIN_TOPIC = f"projects/{PROJECT}/topics/ltm-events"
DLQ_KEEP_SUB = f"projects/{PROJECT}/subscriptions/ltm-events-dlq-keep"
# What `ltmctl verify` (cloudbuild.yaml's step after deploy) needs as the deployer, in either ingest mode.
VERIFY_GRANTS = {
    (MAIN_TOPIC, "roles/pubsub.publisher", DEPLOYER_SA),
    (f"project {PROJECT}", "roles/bigquery.jobUser", DEPLOYER_SA),
    (f"table {EVENTS_TABLE}", "roles/bigquery.dataViewer", DEPLOYER_SA),
    (account(DEPLOYER_SA), "roles/iam.serviceAccountTokenCreator", DEPLOYER_SA),
    (IAP_WEB, "roles/iap.httpsResourceAccessor", DEPLOYER_SA),
    (DLQ_KEEP_SUB, "roles/pubsub.subscriber", DEPLOYER_SA),
    (f"project {PROJECT}", "roles/monitoring.viewer", DEPLOYER_SA),
}

# Exactly what provision grants, and nothing else (dataset roles in BigQuery's legacy names).
EXPECTED_GRANTS = {
    (f"dataset {DATASET}", "READER", API_SA),
    (f"project {PROJECT}", "roles/bigquery.jobUser", API_SA),
    (f"table {EVENTS_TABLE}", "roles/bigquery.dataEditor", INGEST_SA),  # writes the table, not the dataset
    (f"dataset {DATASET}", "roles/bigquery.routineMetadataViewer", INGEST_SA),  # insertAll's datasets.get
    (DLQ_TOPIC, "roles/pubsub.publisher", INGEST_SA),
    (DLQ_TOPIC, "roles/pubsub.publisher", PUBSUB_AGENT),
    (INGEST_SUB, "roles/pubsub.subscriber", PUBSUB_AGENT),
    (f"bucket {STAGING_BUCKET}", "roles/storage.objectAdmin", BUILDER_SA),
    (REPOSITORY, "roles/artifactregistry.writer", BUILDER_SA),
    *DEPLOYER_GRANTS,
    *VERIFY_GRANTS,
}


def grants(fake: FakeGcp) -> set[tuple[str, str, str]]:
    """Every (resource, role, member) in every policy and dataset access list the fake holds."""
    out: set[tuple[str, str, str]] = set()
    rm = fake.api(ResourceManagerApi)
    for project, policy in rm.policies.policies.items():
        out |= {(f"project {project}", b["role"], m) for b in policy["bindings"] for m in b["members"]}
    for resource, policy in fake.api(PubSubApi).policies.policies.items():
        out |= {(resource, b["role"], m) for b in policy["bindings"] for m in b["members"]}
    for resource, policy in fake.api(ArtifactRegistryApi).policies.policies.items():
        out |= {(resource, b["role"], m) for b in policy["bindings"] for m in b["members"]}
    for bucket, policy in fake.api(StorageApi).policies.policies.items():
        out |= {(f"bucket {bucket}", b["role"], m) for b in policy["bindings"] for m in b["members"]}
    for email, policy in fake.api(IamApi).policies.policies.items():
        out |= {(f"serviceAccount {email}", b["role"], m) for b in policy["bindings"] for m in b["members"]}
    for resource, policy in fake.api(IapApi).policies.policies.items():
        out |= {(resource, b["role"], m) for b in policy["bindings"] for m in b["members"]}
    for table, policy in fake.api(BigQueryApi).policies.policies.items():
        out |= {(f"table {table}", b["role"], m) for b in policy["bindings"] for m in b["members"]}
    for key, ds in fake.api(BigQueryApi).datasets.items():
        for entry in ds.get("access", []):
            email = entry.get("userByEmail") or entry.get("groupByEmail")
            if email:
                kind = "serviceAccount" if email.endswith(".gserviceaccount.com") else (
                    "user" if "userByEmail" in entry else "group")
                out.add((f"dataset {key}", entry["role"], f"{kind}:{email}"))
            else:
                out.add((f"dataset {key}", entry["role"], entry.get("specialGroup") or entry.get("iamMember")))
    return out


def ours(grant_set: set[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
    """Grants to the pipeline's identities (its accounts and Google's service agents)."""
    members = {API_SA, INGEST_SA, INVOKER_SA, BUILDER_SA, DEPLOYER_SA, PUBSUB_AGENT}
    return {g for g in grant_set if g[2] in members or "gcp-sa-" in g[2]}


def revoke(fake: FakeGcp, grant: tuple[str, str, str]) -> None:
    """Take one (resource, role, member) of `grants` out of the fake's stored policies, as an admin might."""
    resource, role, member = grant

    def drop(store: dict, key: str) -> None:
        policy = store[key]
        for binding in policy["bindings"]:
            if binding["role"] == role and member in binding["members"]:
                binding["members"].remove(member)
        policy["bindings"] = [b for b in policy["bindings"] if b["members"]]

    kind, _, name = resource.partition(" ")
    if kind == "project":
        fake.api(ResourceManagerApi).policy(name)
        drop(fake.api(ResourceManagerApi).policies.policies, name)
    elif kind == "serviceAccount":
        drop(fake.api(IamApi).policies.policies, name)
    elif kind == "bucket":
        drop(fake.api(StorageApi).policies.policies, name)
    elif kind == "table":
        drop(fake.api(BigQueryApi).policies.policies, name)
    elif kind == "dataset":
        ds = fake.api(BigQueryApi).datasets[name]
        email = member.split(":", 1)[1]
        ds["access"] = [e for e in ds["access"] if not (e.get("role") == role and email in (
            e.get("userByEmail"), e.get("groupByEmail"), e.get("iamMember")))]
    else:
        for api in (PubSubApi, ArtifactRegistryApi, IapApi):
            if resource in fake.api(api).policies.policies:
                drop(fake.api(api).policies.policies, resource)
                return
        raise KeyError(resource)
