"""Resources as plain data. Each has a stable `key` and the fields that plan compares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Topic:
    project: str
    name: str
    kind = "pubsub.topic"

    @property
    def key(self) -> str:
        return f"projects/{self.project}/topics/{self.name}"


@dataclass(frozen=True)
class Subscription:
    project: str
    name: str
    topic: str
    ack_deadline_s: int = 60
    push_endpoint: str | None = None
    # OIDC identity for push in GCP; the emulator neither sends nor needs it.
    push_service_account: str | None = None
    dead_letter_topic: str | None = None
    max_delivery_attempts: int | None = None
    minimum_backoff_s: int | None = None
    maximum_backoff_s: int | None = None
    retention_s: int | None = None
    # Pub/Sub deletes a subscription idle for its expiration ttl (31 days unless set). 0: never expires, which
    # every subscription of the pipeline wants (the dead-letter keeper is read only when someone looks).
    expiration_ttl_s: int | None = 0
    kind = "pubsub.subscription"

    @property
    def key(self) -> str:
        return f"projects/{self.project}/subscriptions/{self.name}"

    @property
    def topic_path(self) -> str:
        return f"projects/{self.project}/topics/{self.topic}"


@dataclass(frozen=True)
class Dataset:
    project: str
    name: str
    location: str = "US"
    kind = "bigquery.dataset"

    @property
    def key(self) -> str:
        return f"{self.project}.{self.name}"


@dataclass(frozen=True)
class Table:
    project: str
    dataset: str
    name: str
    # BigQuery JSON schema: [{"name", "type", "mode", "description"}]
    schema: tuple[dict[str, Any], ...] = ()
    partition_field: str | None = None
    partition_type: str = "DAY"
    clustering: tuple[str, ...] = ()
    kind = "bigquery.table"

    @property
    def key(self) -> str:
        return f"{self.project}.{self.dataset}.{self.name}"


@dataclass(frozen=True)
class ApiService:
    """A Google API enabled on the project (Service Usage), e.g. `pubsub.googleapis.com`."""

    project: str
    name: str
    kind = "serviceusage.service"

    @property
    def key(self) -> str:
        return f"projects/{self.project}/services/{self.name}"


@dataclass(frozen=True)
class ServiceAccount:
    project: str
    account_id: str
    display_name: str = ""
    description: str = ""
    kind = "iam.service_account"

    @property
    def email(self) -> str:
        return f"{self.account_id}@{self.project}.iam.gserviceaccount.com"

    @property
    def member(self) -> str:
        return f"serviceAccount:{self.email}"

    @property
    def key(self) -> str:
        return f"projects/{self.project}/serviceAccounts/{self.email}"


@dataclass(frozen=True)
class IamMember:
    """One member in one role on one resource: the unit of additive IAM.

    Applying adds the member to the role's binding with a read-modify-write of the resource's policy (etag
    checked); deleting removes only that member. Bindings of other members and roles are never touched.
    `target_type` selects how the policy is read and written (see `infra.providers.iam`): "project"
    (target: project id), "pubsub.topic" / "pubsub.subscription" (target: full resource name),
    "bigquery.dataset" (target: "project.dataset"; the dataset's access list), "bigquery.table" (target:
    "project.dataset.table"; the table's IAM policy), "run.service" (target: full name),
    "storage.bucket" (target: bucket name), "artifactregistry.repository" (target: full name),
    "iam.service_account" (target: the account's full name; who may act as it), "iap.web" (target:
    "projects/NUMBER/iap_web", IAP's "all web services" of a project).
    """

    target_type: str
    target: str
    role: str
    member: str
    kind = "iam.member"

    @property
    def key(self) -> str:
        return f"{self.target_type}:{self.target} {self.role} {self.member}"


@dataclass(frozen=True)
class ArtifactRepository:
    project: str
    location: str
    name: str
    format: str = "DOCKER"
    description: str = ""
    kind = "artifactregistry.repository"

    @property
    def key(self) -> str:
        return f"projects/{self.project}/locations/{self.location}/repositories/{self.name}"

    @property
    def docker_host(self) -> str:
        return f"{self.location}-docker.pkg.dev/{self.project}/{self.name}"


@dataclass(frozen=True)
class Bucket:
    project: str
    name: str
    location: str
    uniform_access: bool = True
    # Staged sources are only needed while a build runs; old ones are deleted by the bucket itself.
    delete_after_days: int | None = None
    kind = "storage.bucket"

    @property
    def key(self) -> str:
        return f"gs://{self.name}"


Resource = (Topic | Subscription | Dataset | Table
            | ApiService | ServiceAccount | IamMember | ArtifactRepository | Bucket)


@dataclass(frozen=True)
class PipelineSpec:
    """Everything infra needs to derive the desired state: plain values, no config objects."""

    project: str
    topic: str
    dead_letter_topic: str
    dead_letter_subscription: str
    subscription: str
    dataset: str
    table: str
    table_schema: tuple[dict[str, Any], ...]
    location: str = "US"
    ack_deadline_s: int = 60
    max_delivery_attempts: int = 5
    minimum_backoff_s: int = 10
    maximum_backoff_s: int = 600
    push_endpoint: str | None = None
    push_service_account: str | None = None
    clustering: tuple[str, ...] = ("action_id", "user_email", "app_id")
    partition_field: str = "event_time"
    labels: dict[str, str] = field(default_factory=dict)


# Dead letters are kept for Pub/Sub's maximum retention, so nothing expires before someone looks.
DEAD_LETTER_RETENTION_S = 7 * 24 * 3600


def desired(spec: PipelineSpec) -> list[Resource]:
    """The pipeline's resources in dependency order (a resource only refers to ones before it)."""
    return [
        Topic(spec.project, spec.topic),
        Topic(spec.project, spec.dead_letter_topic),
        Subscription(spec.project, spec.dead_letter_subscription, spec.dead_letter_topic,
                     ack_deadline_s=spec.ack_deadline_s, retention_s=DEAD_LETTER_RETENTION_S),
        Dataset(spec.project, spec.dataset, spec.location),
        Table(spec.project, spec.dataset, spec.table, spec.table_schema,
              partition_field=spec.partition_field, clustering=spec.clustering),
        Subscription(
            spec.project, spec.subscription, spec.topic,
            ack_deadline_s=spec.ack_deadline_s,
            push_endpoint=spec.push_endpoint,
            push_service_account=spec.push_service_account,
            dead_letter_topic=spec.dead_letter_topic,
            max_delivery_attempts=spec.max_delivery_attempts,
            minimum_backoff_s=spec.minimum_backoff_s,
            maximum_backoff_s=spec.maximum_backoff_s,
        ),
    ]


# --- Google Cloud only ----------------------------------------------------------------------------------------

REQUIRED_APIS = (
    "run.googleapis.com", "cloudbuild.googleapis.com", "artifactregistry.googleapis.com", "pubsub.googleapis.com",
    "bigquery.googleapis.com", "iam.googleapis.com", "iap.googleapis.com", "storage.googleapis.com",
    "monitoring.googleapis.com", "logging.googleapis.com",
    # signJwt: `ltmctl api` calls the API through IAP with a service account's signed JWT.
    "iamcredentials.googleapis.com",
    # Project-level IAM (bigquery.jobUser for the API account) goes through Resource Manager.
    "cloudresourcemanager.googleapis.com",
)

# The narrowest predefined roles that let each identity do its job, and nothing broader.
ROLE_JOB_USER = "roles/bigquery.jobUser"  # project-level: running query jobs
ROLE_DATA_VIEWER = "roles/bigquery.dataViewer"  # dataset-level
ROLE_DATA_EDITOR = "roles/bigquery.dataEditor"  # dataset-level; table-level for Pub/Sub's agent
ROLE_PUBLISHER = "roles/pubsub.publisher"
ROLE_SUBSCRIBER = "roles/pubsub.subscriber"
ROLE_RUN_INVOKER = "roles/run.invoker"
# The builder reads staged sources and writes (and, as the log grows, rewrites) its build log in the staging
# bucket: objectAdmin on that bucket only. Builds log to Cloud Storage alone (GCS_ONLY), so no logging role.
ROLE_OBJECT_ADMIN = "roles/storage.objectAdmin"  # bucket-level
ROLE_REGISTRY_WRITER = "roles/artifactregistry.writer"  # repository-level: push images
# The CI deployer (cloudbuild.yaml's trigger runs as it); see `deployer_grants` for why each.
ROLE_RUN_ADMIN = "roles/run.admin"
ROLE_ACCOUNT_USER = "roles/iam.serviceAccountUser"  # account-level only: actAs that one account
ROLE_PUBSUB_EDITOR = "roles/pubsub.editor"
ROLE_IAP_ADMIN = "roles/iap.admin"
ROLE_IAP_SETTINGS_ADMIN = "roles/iap.settingsAdmin"
ROLE_LOG_WRITER = "roles/logging.logWriter"
ROLE_METADATA_VIEWER = "roles/bigquery.metadataViewer"
# bigquery.datasets.get on a dataset and table/routine metadata in it, nothing else: the narrowest predefined role
# with datasets.get (a strict subset of metadataViewer, which also reads IAM policies).
ROLE_DATASET_METADATA = "roles/bigquery.routineMetadataViewer"
# Pub/Sub's agent mints the push invoker's OIDC tokens: projects whose Pub/Sub agent dates from before 2021-04-09
# must grant it this (Google's "Authentication for push subscriptions"); on the invoker account only.
ROLE_TOKEN_CREATOR = "roles/iam.serviceAccountTokenCreator"
ROLE_IAP_ACCESSOR = "roles/iap.httpsResourceAccessor"  # pass IAP (iap.webServiceVersions.accessViaIAP, nothing else)
ROLE_MONITORING_VIEWER = "roles/monitoring.viewer"
PUSH_TOKEN_CREATOR_BEFORE = "2021-04-09"  # "on or before April 8, 2021"


@dataclass(frozen=True)
class GcpSpec:
    """The Google Cloud side of the pipeline: plain values derived from config (see ltmctl.pipeline)."""

    pipeline: PipelineSpec
    project_number: int
    region: str
    staging_bucket: str
    api_account: str = "ltm-api"
    ingest_account: str = "ltm-ingest"
    invoker_account: str = "ltm-push-invoker"
    builder_account: str = "ltm-builder"
    deployer_account: str = "ltm-deployer"
    artifact_repository: str = "ltm"
    api_service: str = "ltm-api"
    ingest_service: str = "ltm-ingest"
    staging_retention_days: int = 30
    apis: tuple[str, ...] = REQUIRED_APIS
    ingest_mode: str = "push"  # "push": the ingest service writes rows; "bigquery": a BigQuery subscription does
    project_created: str = ""  # the project's createTime (RFC 3339) from Resource Manager; "" when unknown

    @property
    def project(self) -> str:
        return self.pipeline.project

    def account(self, account_id: str, display_name: str, description: str) -> ServiceAccount:
        return ServiceAccount(self.project, account_id, display_name, description)

    @property
    def accounts(self) -> dict[str, ServiceAccount]:
        return {
            "api": self.account(self.api_account, "LTM API runtime",
                                "Runs the LTM API on Cloud Run: reads the events dataset, runs query jobs."),
            "ingest": self.account(self.ingest_account, "LTM ingest runtime",
                                   "Runs the LTM ingest service: writes events, publishes dead letters."),
            "invoker": self.account(self.invoker_account, "LTM push invoker",
                                    "Identity of Pub/Sub push (OIDC) to the LTM ingest service."),
            "builder": self.account(self.builder_account, "LTM image builder",
                                    "Runs the LTM Cloud Build builds: reads staged sources, writes build logs, "
                                    "pushes images."),
            "deployer": self.account(self.deployer_account, "LTM CI deployer",
                                     "Runs the LTM Cloud Build trigger (cloudbuild.yaml): pushes both images, then "
                                     "`ltmctl deploy` with them."),
        }

    @property
    def pubsub_agent(self) -> str:
        return f"serviceAccount:service-{self.project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"

    @property
    def iap_agent(self) -> str:
        return f"serviceAccount:service-{self.project_number}@gcp-sa-iap.iam.gserviceaccount.com"

    @property
    def agents(self) -> dict[str, str]:
        """The Google service agents the pipeline grants roles to, by the API that owns each. `provision` creates
        them (generateServiceIdentity): IAP's exists only once asked for, and deploy grants it run.invoker."""
        return {"pubsub.googleapis.com": self.pubsub_agent, "iap.googleapis.com": self.iap_agent}

    @property
    def push_needs_token_creator(self) -> bool:
        """Whether Pub/Sub's agent needs roles/iam.serviceAccountTokenCreator to sign push OIDC tokens: only in
        projects created on or before 2021-04-08 (a project created later has a Pub/Sub agent that is newer still).
        """
        return bool(self.project_created) and self.project_created[:10] < PUSH_TOKEN_CREATOR_BEFORE

    def service_name(self, service: str) -> str:
        return f"projects/{self.project}/locations/{self.region}/services/{service}"

    @property
    def table_writer_grant(self) -> IamMember:
        """What a BigQuery subscription needs: Pub/Sub's service agent (it writes the rows) may edit the events
        table, and only that table (Pub/Sub documents dataEditor on the table or the project)."""
        return IamMember("bigquery.table", self.table_id, ROLE_DATA_EDITOR, self.pubsub_agent)

    @property
    def table_id(self) -> str:
        p = self.pipeline
        return f"{p.project}.{p.dataset}.{p.table}"

    @property
    def repository_name(self) -> str:
        return f"projects/{self.project}/locations/{self.region}/repositories/{self.artifact_repository}"

    @property
    def iap_web(self) -> str:
        """IAP's "all web services" resource: every IAP-protected Cloud Run service of the project is below it."""
        return f"projects/{self.project_number}/iap_web"


def gcp_desired(spec: GcpSpec) -> list[Resource]:
    """Everything `provision` manages on Google Cloud, in dependency order: APIs, identities, the artifact
    repository and staging bucket, the pipeline's topics/subscriptions/dataset/table, then IAM bindings."""
    p = spec.pipeline
    accounts = spec.accounts
    dataset = f"{p.project}.{p.dataset}"
    dlq_topic = f"projects/{p.project}/topics/{p.dead_letter_topic}"
    ingest_sub = f"projects/{p.project}/subscriptions/{p.subscription}"
    return [
        *(ApiService(spec.project, api) for api in spec.apis),
        *accounts.values(),
        ArtifactRepository(spec.project, spec.region, spec.artifact_repository,
                           description="Images of the LTM API and ingest services."),
        Bucket(spec.project, spec.staging_bucket, spec.region, delete_after_days=spec.staging_retention_days),
        *desired(p),
        IamMember("bigquery.dataset", dataset, ROLE_DATA_VIEWER, accounts["api"].member),
        IamMember("project", spec.project, ROLE_JOB_USER, accounts["api"].member),
        # The ingest function only inserts rows (tabledata.insertAll): it writes the table, not the dataset. A
        # streaming insert also checks bigquery.datasets.get on the dataset ("Required permissions" of
        # https://cloud.google.com/bigquery/docs/streaming-data-into-bigquery), which a grant on the table cannot
        # give: the dataset's metadata, read-only.
        IamMember("bigquery.table", spec.table_id, ROLE_DATA_EDITOR, accounts["ingest"].member),
        IamMember("bigquery.dataset", dataset, ROLE_DATASET_METADATA, accounts["ingest"].member),
        IamMember("pubsub.topic", dlq_topic, ROLE_PUBLISHER, accounts["ingest"].member),
        # Pub/Sub itself moves undeliverable messages: it must publish to the dead-letter topic and
        # acknowledge (subscribe to) the source subscription.
        IamMember("pubsub.topic", dlq_topic, ROLE_PUBLISHER, spec.pubsub_agent),
        IamMember("pubsub.subscription", ingest_sub, ROLE_SUBSCRIBER, spec.pubsub_agent),
        # Cloud Build runs as the builder: sources and logs in the staging bucket, images into the repository.
        IamMember("storage.bucket", spec.staging_bucket, ROLE_OBJECT_ADMIN, accounts["builder"].member),
        IamMember("artifactregistry.repository", spec.repository_name, ROLE_REGISTRY_WRITER,
                  accounts["builder"].member),
        *deployer_grants(spec),
        *ingest_mode_grants(spec, spec.ingest_mode),
    ]


def deployer_grants(spec: GcpSpec) -> list[IamMember]:
    """What the CI deployer needs in either ingest mode, for cloudbuild.yaml's steps and `deploy all --image …`.

    Project-level only where the resource does not exist before the first deploy (the Cloud Run services) or the
    role cannot be narrower (log writing). Acting as the API account is granted on that account alone: a
    project-level serviceAccountUser would let the deployer run code as every account of the project."""
    p, accounts = spec.pipeline, spec.accounts
    deployer = accounts["deployer"].member
    return [
        # Create and update the services, read and set their IAM (run.invoker), poll their rollouts. It also holds
        # resourcemanager.projects.get, which deploy needs when the config has no project number.
        IamMember("project", spec.project, ROLE_RUN_ADMIN, deployer),
        # The API service runs as the API account: deploying it needs actAs on that account.
        IamMember("iam.service_account", accounts["api"].key, ROLE_ACCOUNT_USER, deployer),
        # Read the ingest subscription and switch its delivery (push endpoint, or BigQuery).
        IamMember("pubsub.subscription", f"projects/{p.project}/subscriptions/{p.subscription}", ROLE_PUBSUB_EDITOR,
                  deployer),
        # Who may pass IAP (iap.members) is the policy of the API service's IAP resource, which exists only with the
        # service; "all web services" is the narrowest level above it, and admin there covers IAP policies only.
        IamMember("iap.web", spec.iap_web, ROLE_IAP_ADMIN, deployer),
        # The API service's IAP settings (programmatic clients, a custom OAuth client): iap.admin has no
        # getSettings/updateSettings; settingsAdmin has only those.
        IamMember("iap.web", spec.iap_web, ROLE_IAP_SETTINGS_ADMIN, deployer),
        # The build's `docker push` steps; Cloud Run also wants the deployer to read the images it deploys.
        IamMember("artifactregistry.repository", spec.repository_name, ROLE_REGISTRY_WRITER, deployer),
        # A build that runs as a user-specified account with CLOUD_LOGGING_ONLY writes its log as that account.
        IamMember("project", spec.project, ROLE_LOG_WRITER, deployer),
        *verify_grants(spec),
    ]


def verify_grants(spec: GcpSpec) -> list[IamMember]:
    """What `ltmctl verify`, the build's step after deploy, needs as the deployer: publish its test events, read
    them back, call the API through IAP with a JWT it signs for itself, take its own dead letter, read the API's
    request count. Each on the one resource it needs, except where Google has no narrower level."""
    p, accounts = spec.pipeline, spec.accounts
    deployer = accounts["deployer"]
    return [
        IamMember("pubsub.topic", f"projects/{p.project}/topics/{p.topic}", ROLE_PUBLISHER, deployer.member),
        # Query jobs are created in the project (no narrower level); the rows are read from the events table only.
        IamMember("project", spec.project, ROLE_JOB_USER, deployer.member),
        IamMember("bigquery.table", spec.table_id, ROLE_DATA_VIEWER, deployer.member),
        # signJwt on itself alone: the JWT IAP accepts from a program, signed with its Google-managed key.
        IamMember("iam.service_account", deployer.key, ROLE_TOKEN_CREATOR, deployer.member),
        # Passing IAP: the API service's own IAP resource exists only with the service, and deploy keeps its
        # accessor binding equal to iap.members; "all web services" is the narrowest level provision can grant on.
        IamMember("iap.web", spec.iap_web, ROLE_IAP_ACCESSOR, deployer.member),
        IamMember("pubsub.subscription", f"projects/{p.project}/subscriptions/{p.dead_letter_subscription}",
                  ROLE_SUBSCRIBER, deployer.member),
        # timeSeries.list is project-level only; monitoring.viewer is the role Google makes for reading metrics.
        IamMember("project", spec.project, ROLE_MONITORING_VIEWER, deployer.member),
    ]


def ingest_mode_grants(spec: GcpSpec, mode: str) -> list[IamMember]:
    """Grants only one ingest mode needs. push: the deployer deploys the ingest service, which runs as the ingest
    account, and names the push invoker as the subscription's OIDC identity (Pub/Sub wants actAs on it for that).
    bigquery: Pub/Sub's agent writes the table, and the deployer reads the table and its IAM policy (deploy checks
    both before switching the subscription)."""
    accounts, deployer = spec.accounts, spec.accounts["deployer"].member
    if mode == "bigquery":
        return [spec.table_writer_grant,
                IamMember("bigquery.table", spec.table_id, ROLE_METADATA_VIEWER, deployer)]
    grants = [IamMember("iam.service_account", accounts[a].key, ROLE_ACCOUNT_USER, deployer)
              for a in ("ingest", "invoker")]
    if spec.push_needs_token_creator:
        # Pub/Sub signs the push OIDC token as the invoker: on that account only, not the project's every account.
        grants.append(IamMember("iam.service_account", accounts["invoker"].key, ROLE_TOKEN_CREATOR,
                                spec.pubsub_agent))
    return grants


def gcp_unwanted(spec: GcpSpec) -> list[IamMember]:
    """Grants `provision` revokes if they exist: what the other ingest mode needs and this one does not (switching
    from bigquery back to push leaves Pub/Sub no write access to the table, and the other way round the deployer
    no actAs on accounts nothing deploys as), and what an older provision granted more broadly than now (the
    ingest account's WRITER on the whole dataset, now dataEditor on the events table)."""
    p = spec.pipeline
    return [*ingest_mode_grants(spec, "push" if spec.ingest_mode == "bigquery" else "bigquery"),
            IamMember("bigquery.dataset", f"{p.project}.{p.dataset}", ROLE_DATA_EDITOR,
                      spec.accounts["ingest"].member)]


def service_bindings(spec: GcpSpec) -> list[IamMember]:
    """Bindings on the Cloud Run services, applied by `deploy` once the services exist: only the push invoker
    may call the ingest service, and IAP's service agent may call the API service."""
    return [
        IamMember("run.service", spec.service_name(spec.ingest_service), ROLE_RUN_INVOKER,
                  spec.accounts["invoker"].member),
        IamMember("run.service", spec.service_name(spec.api_service), ROLE_RUN_INVOKER, spec.iap_agent),
    ]


_API_OF_KIND = {
    "pubsub.topic": "pubsub.googleapis.com", "pubsub.subscription": "pubsub.googleapis.com",
    "bigquery.dataset": "bigquery.googleapis.com", "bigquery.table": "bigquery.googleapis.com",
    "iam.service_account": "iam.googleapis.com", "artifactregistry.repository": "artifactregistry.googleapis.com",
    "storage.bucket": "storage.googleapis.com", "project": "cloudresourcemanager.googleapis.com",
    "run.service": "run.googleapis.com", "iap.web": "iap.googleapis.com",
}


def api_of(resource: Resource) -> str | None:
    """The Google API that serves a resource (None: Service Usage itself, always callable)."""
    if isinstance(resource, IamMember):
        return _API_OF_KIND.get(resource.target_type)
    return _API_OF_KIND.get(resource.kind)
