"""What `deploy` puts where: plain values derived from the config and infra's GcpSpec, and the Cloud Run service
each component becomes."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

COMPONENTS = ("api", "ingest")
SOURCE_DIRS = {"api": "api_service", "ingest": "ingest_fn"}
# Labels on the service and its revision template: what source and which settings the running revision has.
SOURCE_LABEL = "ltm-source-hash"
SPEC_LABEL = "ltm-spec-hash"
ROLE_IAP_ACCESSOR = "roles/iap.httpsResourceAccessor"


@dataclass(frozen=True)
class Component:
    key: str  # "api" | "ingest"
    source_dir: str
    service: str  # Cloud Run service id
    account: str  # runtime service account email
    port: int
    env: tuple[tuple[str, str], ...]
    max_instances: int
    min_instances: int = 0
    memory: str | None = None
    cpu: str | None = None
    concurrency: int | None = None  # None: Cloud Run's default (80)
    iap: bool = False
    internal_only: bool = False


@dataclass(frozen=True)
class Target:
    project: str
    project_number: int
    region: str
    staging_bucket: str
    registry: str  # REGION-docker.pkg.dev/PROJECT/REPOSITORY
    builder: str  # email of the service account Cloud Build runs deploy's builds as
    ingest_mode: str  # "push" | "bigquery"
    iap_members: tuple[str, ...]
    components: dict[str, Component]
    gcp: Any = field(compare=False)  # infra.model.GcpSpec: identities, subscription and bindings as infra sees them
    # IAP settings of the API service: OAuth clients allowed programmatic access; a custom OAuth client (no org).
    iap_programmatic_clients: tuple[str, ...] = ()
    iap_oauth_client_id: str | None = None

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.region}"

    def service_name(self, component: str) -> str:
        return f"{self.parent}/services/{self.components[component].service}"

    def image(self, component: str, digest: str) -> str:
        return f"{self.registry}/{self.components[component].service}:src-{digest[:16]}"

    @property
    def iap_audience(self) -> str:
        return iap_audience(self.project_number, self.region, self.components["api"].service)

    @property
    def iap_resource(self) -> str:
        """IAP's own name for the API service: its IAM policy says who may pass IAP."""
        return (f"projects/{self.project_number}/iap_web/cloud_run-{self.region}/services/"
                f"{self.components['api'].service}")

    def console_url(self, component: str) -> str:
        service = self.components[component].service
        return f"https://console.cloud.google.com/run/detail/{self.region}/{service}/revisions?project={self.project}"


def iap_audience(project_number: int, region: str, service: str) -> str:
    """The `aud` of IAP's assertions when IAP is enabled on the Cloud Run service itself (no load balancer;
    the load-balancer form is /projects/NUMBER/global/backendServices/ID)."""
    return f"/projects/{project_number}/locations/{region}/services/{service}"


def target_for(resolved: Any, project_number: int) -> Target:
    """The deploy target of a gcp environment of the resolved config."""
    from ltmctl.pipeline import gcp_spec

    env, p = resolved.env, resolved.pipeline
    region = env.region or ""
    gcp = gcp_spec(resolved, project_number)
    accounts = gcp.accounts
    project = env.project
    api = Component(
        "api", SOURCE_DIRS["api"], env.api.service, accounts["api"].email, env.api.port,
        env=(("LTM_PROJECT", project), ("LTM_DATASET", p.dataset), ("LTM_TABLE", p.table),
             ("LTM_MAX_BYTES_BILLED", str(env.query.max_bytes)),
             ("LTM_IAP_AUDIENCE", iap_audience(project_number, region, env.api.service))),
        max_instances=env.api.max_instances, min_instances=env.api.min_instances, memory=env.api.memory,
        cpu=env.api.cpu, iap=True)
    # 8080: the port ingest_fn's image listens on (Cloud Run passes the container port to it as PORT).
    # THREADS: functions-framework serves that many requests at once; Cloud Run sends up to the concurrency, and
    # group commit joins only the requests served together (the image's default, 80, would queue the rest).
    ingest = Component(
        "ingest", SOURCE_DIRS["ingest"], env.ingest.service, accounts["ingest"].email, 8080,
        env=(("LTM_PROJECT", project), ("LTM_DATASET", p.dataset), ("LTM_TABLE", p.table),
             ("LTM_DLQ_TOPIC", p.dead_letter_topic), ("THREADS", str(env.ingest.concurrency))),
        max_instances=env.ingest.max_instances, concurrency=env.ingest.concurrency, internal_only=True)
    return Target(project, project_number, region, env.staging_bucket,
                  f"{region}-docker.pkg.dev/{project}/{env.gcp.artifact_repository}", accounts["builder"].email,
                  p.ingest_mode,
                  tuple(env.iap.members), {"api": api, "ingest": ingest}, gcp,
                  tuple(env.iap.programmatic_clients), env.iap.oauth_client_id)


def service_body(target: Target, component: str, image: str, source_hash: str) -> dict[str, Any]:
    """The run_v2.Service (as a mapping) for a component: everything deploy manages, labels included."""
    c = target.components[component]
    limits = {k: v for k, v in (("memory", c.memory), ("cpu", c.cpu)) if v}
    container: dict[str, Any] = {
        "image": image,
        "ports": [{"container_port": c.port}],
        "env": [{"name": k, "value": v} for k, v in c.env],
        # CPU boost at start-up shortens cold starts, the first risk of a min-instances-bounded service.
        "resources": {"limits": limits, "startup_cpu_boost": True},
    }
    template: dict[str, Any] = {
        "service_account": c.account,
        "scaling": {"min_instance_count": c.min_instances, "max_instance_count": c.max_instances},
        "containers": [container],
    }
    if c.concurrency:
        template["max_instance_request_concurrency"] = c.concurrency
    body: dict[str, Any] = {
        # Pub/Sub push reaches internal-only services of its own project; nobody on the internet can.
        "ingress": "INGRESS_TRAFFIC_INTERNAL_ONLY" if c.internal_only else "INGRESS_TRAFFIC_ALL",
        "iap_enabled": c.iap,
        # Never allUsers: every call needs roles/run.invoker (the IAP agent's, or the push invoker's).
        "invoker_iam_disabled": False,
        "template": template,
    }
    if c.iap:
        # IAP directly on Cloud Run is a pre-GA feature: the API accepts it only from services at BETA.
        body["launch_stage"] = "BETA"
    # The image is left out: it follows the source, which has its own label.
    container["image"] = ""
    spec_hash = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32]
    container["image"] = image
    labels = {"managed-by": "ltmctl", "ltm-component": component, SOURCE_LABEL: source_hash, SPEC_LABEL: spec_hash}
    body["labels"] = labels
    # Said rather than left to Cloud Run's default (the same): a deploy after `deploy --rollback`, which pins traffic
    # to a revision, puts it back on the latest one. Outside the hash, which says what a revision runs.
    body["traffic"] = [{"type_": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}]
    template["labels"] = dict(labels)
    return body


def spec_hash(body: dict[str, Any]) -> str:
    return body["labels"][SPEC_LABEL]
