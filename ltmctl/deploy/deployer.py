"""`deploy` as one function: package, build what changed, roll out, then wire access and delivery.

Order (each step only refers to what the steps before it made):
  1. package each component's source and compare its hash (and its settings' hash) with the labels on the running
     service: equal and healthy means nothing to do for that component, and no request that changes anything;
  2. upload and build the images that are missing, all builds at once, streaming their logs;
  3. create or update the Cloud Run services and wait for their rollouts;
  4. bind roles/run.invoker on each service (push invoker → ingest, IAP's agent → API), additively;
  5. point the ingest subscription at the ingest URL (OIDC), or (ingest_mode bigquery, no ingest service) make it
     a BigQuery subscription once `provision` has readied the table and Pub/Sub's access to it;
  6. let the members in `iap.members` through IAP to the API, and allow `iap.programmatic_clients` (and a custom
     OAuth client, `iap.oauth_client_id`) in the API service's IAP settings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ltmctl.deploy import build as builds
from ltmctl.deploy import iap, push
from ltmctl.deploy import run as runs
from ltmctl.deploy.package import Package, package
from ltmctl.deploy.progress import Progress, Quiet
from ltmctl.deploy.services import components_of, delete_command
from ltmctl.deploy.target import COMPONENTS, Target, service_body
from ltmctl.errors import BackendError, UsageError
from ltmctl.gcp.errors import google_errors

# The data path first: events flow as soon as the ingest side is up, whatever happens to the API after.
ORDER = ("ingest", "api")


@dataclass
class Outcome:
    component: str
    service: str
    action: str  # created | updated | unchanged | bigquery-subscription
    url: str = ""
    revision: str = ""
    image: str = ""
    source_hash: str = ""
    build: str = ""
    # The revision that served all traffic before this deploy changed the service: `deploy --rollback --from`'s.
    previous_revision: str = ""


@dataclass
class Result:
    project: str
    region: str
    components: list[Outcome] = field(default_factory=list)
    access: list[str] = field(default_factory=list)  # what step 4-6 changed, one line each
    warnings: list[str] = field(default_factory=list)  # what the user should act on; deploy changed nothing there

    @property
    def changed(self) -> bool:
        return bool(self.access) or any(o.action in ("created", "updated") for o in self.components)

    def as_dict(self) -> dict[str, Any]:
        return {"project": self.project, "region": self.region,
                "components": [o.__dict__ for o in self.components], "access": self.access,
                "warnings": self.warnings}


@dataclass
class ComponentPlan:
    component: str
    pkg: Package
    deployed: runs.Deployed
    image: str | None  # None: to be built
    body: dict[str, Any] | None  # None: nothing to roll out
    build: builds.Build | None = None
    diffs: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # what the roll-out changes, field by field


def select(which: str) -> list[str]:
    """The components `deploy WHICH` covers, in deploy order."""
    wanted = ORDER if which == "all" else (which,)
    return [c for c in ORDER if c in wanted]


def parse_images(which: str, values: list[str]) -> dict[str, str]:
    """`--image` values: `URI` (deploying one component) or `COMPONENT=URI` (any number, any target)."""
    images: dict[str, str] = {}
    for value in values:
        key, sep, uri = value.partition("=")
        if not (sep and key in COMPONENTS):
            if which == "all":
                raise UsageError(f"--image {value!r}: say which component it is for.",
                                 hint="With `deploy all`, pass `--image api=URI --image ingest=URI`.")
            key, uri = which, value
        if not uri:
            raise UsageError(f"--image {value!r} names no image.")
        images[key] = uri
    return images


def services_of(target: Target, components: list[str], images: dict[str, str]) -> list[str]:
    """The components that deploy as Cloud Run services, once the selection and the images are checked."""
    unknown = set(components) - set(COMPONENTS) or set(images) - set(COMPONENTS)
    if unknown:
        raise UsageError(f"Unknown component(s): {', '.join(sorted(unknown))}.", hint="Use api, ingest or all.")
    unused = set(images) - set(components)
    if unused:
        raise UsageError(f"--image given for {', '.join(sorted(unused))}, which this deploy does not include.",
                         hint="Name only the components being deployed.")
    return [c for c in components if c in components_of(target)]


def deploy(target: Target, clients: Any, *, components: list[str], images: dict[str, str] | None = None,
           force: bool = False, root: Path, progress: Progress | None = None, poll_s: float = 2.0) -> Result:
    """Deploy `components` ("api", "ingest") of the target; see the module docstring for the order."""
    progress = progress or Quiet()
    images = images or {}
    services = services_of(target, components, images)
    result = Result(target.project, target.region)
    if "ingest" in components and "ingest" not in services:
        # An ingest image is not an error here: cloudbuild.yaml builds and passes both, whatever the mode.
        progress.step("ingest: pipeline.ingest_mode is bigquery, so no ingest service; the subscription writes "
                      "to the table" + ("; the ingest image is not used" if "ingest" in images else ""))
        result.warnings.extend(leftover_ingest_service(target, clients))

    plans = [plan_component(target, clients, c, images.get(c), force, root) for c in services]
    todo = [p for p in plans if p.body is not None]
    for p in plans:
        if p.body is None:
            result.components.append(Outcome(p.component, target.components[p.component].service, "unchanged",
                                             p.deployed.uri, p.deployed.revision, p.deployed.image, p.pkg.digest))
            progress.step(f"{p.component}: unchanged (source {p.pkg.digest[:12]}), revision {p.deployed.revision}")

    _build(target, clients, [p for p in todo if p.image is None], progress, poll_s)
    result.components.extend(_roll_out(target, clients, todo, progress))
    result.components.sort(key=lambda o: ORDER.index(o.component))
    urls = {o.component: o.url for o in result.components}

    def note(lines: list[str]) -> None:
        result.access.extend(lines)
        for line in lines:
            progress.step(line)

    note(_bind_invokers(target, clients, list(urls), progress))
    if "ingest" in components:
        note(_delivery(target, clients, urls.get("ingest")))
        if target.ingest_mode == "bigquery":
            # No service: the subscription itself delivers, into the table.
            result.components.insert(0, Outcome("ingest", target.gcp.pipeline.subscription, "bigquery-subscription",
                                                table_of(target)))
    if "api" in urls:
        with google_errors(target.project, "granting IAP access to the API"):
            added, removed = iap.sync_access(clients.iap, target.iap_resource, target.iap_members)
        service = target.components["api"].service
        note([f"IAP access to {service} for {m}" for m in added]
             + [f"IAP access to {service} revoked for {m} (no longer in iap.members)" for m in removed])
        with google_errors(target.project, "configuring programmatic access through IAP"):
            note(iap.sync_settings(clients.iap, target.iap_resource, target.iap_programmatic_clients,
                                   target.iap_oauth_client_id, os.environ.get(iap.CLIENT_SECRET_ENV)))
    return result


def plan_component(target: Target, clients: Any, component: str, image: str | None, force: bool,
                   root: Path) -> ComponentPlan:
    """What deploy does with one component: nothing (body None), or roll out `body`, building first when no image
    is known (image None). Reads the running service, changes nothing."""
    c = target.components[component]
    pkg = package(component, root, c.source_dir)
    with google_errors(target.project, f"reading Cloud Run service {c.service}"):
        deployed = runs.read(clients.run_services, target.service_name(component))
    # Settings changed but not the source: the running image is that source's build, so it is reused.
    if (image is None and not force and deployed.exists and deployed.source_hash == pkg.digest
            and deployed.image):
        image = deployed.image
    body = service_body(target, component, image or "", pkg.digest)
    diffs = runs.differences(deployed, body, image or target.image(component, pkg.digest))
    # Pinned traffic (a rollback) is not what the config says: the update puts it back on the latest revision.
    if deployed.exists and not diffs and not deployed.pinned and not force:
        return ComponentPlan(component, pkg, deployed, deployed.image, None, diffs=diffs)
    return ComponentPlan(component, pkg, deployed, image, body, diffs=diffs)


def _build(target: Target, clients: Any, plans: list[ComponentPlan], progress: Progress, poll_s: float) -> None:
    if not plans:
        return
    with google_errors(target.project, f"uploading sources to gs://{target.staging_bucket}"):
        for p in plans:
            if builds.stage(clients.storage, target.staging_bucket, p.pkg):
                progress.step(f"{p.component}: uploaded source ({len(p.pkg.data) // 1024 + 1} KiB, "
                              f"{len(p.pkg.files)} files) to gs://{target.staging_bucket}/{p.pkg.object_name}")
    with google_errors(target.project, "starting Cloud Build"):
        for p in plans:
            image = target.image(p.component, p.pkg.digest)
            request = builds.build_request(target.project, target.region, target.staging_bucket, p.pkg,
                                           target.components[p.component].source_dir, image, target.builder)
            p.build = builds.start(clients.cloud_build, target.project, target.region, p.component, request)
            p.image = image
            progress.step(f"{p.component}: building {image} (log: {p.build.log_url})")
    with google_errors(target.project, "waiting for Cloud Build"), \
            progress.waiting("Building " + ", ".join(p.component for p in plans)):
        builds.wait(clients.cloud_build, clients.storage, [p.build for p in plans if p.build], progress, poll_s)


def _roll_out(target: Target, clients: Any, plans: list[ComponentPlan], progress: Progress) -> list[Outcome]:
    if not plans:
        return []
    operations = []
    for p in plans:
        c = target.components[p.component]
        body = service_body(target, p.component, p.image or "", p.pkg.digest)
        with google_errors(target.project, f"{'updating' if p.deployed.exists else 'creating'} Cloud Run "
                                           f"service {c.service}"):
            operations.append(runs.start(clients.run_services, target.parent, c.service, body, p.deployed.exists))
    outcomes = []
    with progress.waiting("Rolling out " + ", ".join(target.components[p.component].service for p in plans)):
        for p, operation in zip(plans, operations, strict=True):
            c = target.components[p.component]
            with google_errors(target.project, f"rolling out {c.service}"):
                service = runs.finish(operation, c.service, target.console_url(p.component))
            revision = service.latest_ready_revision.rsplit("/", 1)[-1]
            action = "updated" if p.deployed.exists else "created"
            progress.step(f"{p.component}: {action} {c.service}, revision {revision} serving at {service.uri}")
            outcomes.append(Outcome(p.component, c.service, action, service.uri, revision, p.image or "",
                                    p.pkg.digest, p.build.id if p.build else "", p.deployed.serving))
    return outcomes


def _bind_invokers(target: Target, clients: Any, deployed: list[str], progress: Progress) -> list[str]:
    """roles/run.invoker for exactly one identity per service, through infra's additive IAM members."""
    from infra.apply import execute
    from infra.model import service_bindings
    from infra.plan import plan

    names = {target.service_name(c): c for c in deployed}
    members = [m for m in service_bindings(target.gcp) if m.target in names]
    if not members:
        return []
    providers = {"iam.member": clients.providers(on_wait=progress.step)["iam.member"]}
    with google_errors(target.project, "reading who may invoke the Cloud Run services"):
        changes = plan(members, providers)
    # IAP's agent is `provision`'s to create (deploy, in CI, holds no Service Usage role); until IAM sees it the
    # grant waits, and names it if it never appears.
    pending = [c for c in changes if c.action == "create"]
    with google_errors(target.project, "granting roles/run.invoker"):
        execute(pending, providers)
    return [f"{c.resource.role} on {c.resource.target.rsplit('/', 1)[-1]} for {c.resource.member}" for c in pending]


def table_of(target: Target) -> str:
    p = target.gcp.pipeline
    return f"{p.project}.{p.dataset}.{p.table}"


def _delivery(target: Target, clients: Any, ingest_url: str | None) -> list[str]:
    p = target.gcp.pipeline
    path = f"projects/{p.project}/subscriptions/{p.subscription}"
    if target.ingest_mode == "bigquery":
        return _bigquery_delivery(target, clients, path)
    if not ingest_url:
        return []
    invoker = target.gcp.accounts["invoker"].email
    with google_errors(target.project, f"pointing {p.subscription} at the ingest service"):
        changed = push.ensure_push(clients.subscriber, path, ingest_url, invoker)
    return [f"push subscription {p.subscription} → {ingest_url} (OIDC as {invoker})"] if changed else []


def _bigquery_delivery(target: Target, clients: Any, path: str) -> list[str]:
    p = target.gcp.pipeline
    require_bigquery_ready(target, clients)
    with google_errors(target.project, f"making {p.subscription} a BigQuery subscription"):
        if push.ensure_bigquery(clients.subscriber, path, table_of(target)):
            return [f"BigQuery subscription {p.subscription} → {table_of(target)}"]
    return []


def require_bigquery_ready(target: Target, clients: Any) -> None:
    """Pub/Sub refuses a BigQuery subscription whose table lacks its metadata columns or that its service agent
    may not write to, and both are `provision`'s to set up (the table's schema and IAM); deploy only reads them."""
    from infra.model import Table, desired
    from infra.plan import plan

    p = target.gcp.pipeline
    table = next(r for r in desired(p) if isinstance(r, Table))
    wanted = [table, target.gcp.table_writer_grant]
    providers = {kind: clients.providers()[kind] for kind in ("bigquery.table", "iam.member")}
    with google_errors(target.project, f"reading table {table.key} and who may write to it"):
        changes = [c for c in plan(wanted, providers) if c.action != "noop"]
    if changes:
        missing = "; ".join(f"{c.resource.kind} {c.resource.key}: "
                            + (", ".join(c.diffs) + " differ" if c.diffs else "missing") for c in changes)
        raise BackendError(
            f"pipeline.ingest_mode is bigquery, but the project is not provisioned for it ({missing}).",
            hint="Run `ltmctl provision` first (it updates the table in place and grants Pub/Sub's service agent "
                 "roles/bigquery.dataEditor on the table), then deploy again.")


def leftover_ingest_service(target: Target, clients: Any) -> list[str]:
    """An ingest service from an earlier push-mode deploy: nothing pushes to it any more, but it is not deploy's to
    delete (its revisions and logs may still be wanted), so say how to."""
    c = target.components["ingest"]
    with google_errors(target.project, f"reading Cloud Run service {c.service}"):
        deployed = runs.read(clients.run_services, target.service_name("ingest"))
    if not deployed.exists:
        return []
    return [f"The ingest service {c.service} from an earlier push-mode deploy still exists; with ingest_mode bigquery "
            f"nothing sends to it. Remove it with: {delete_command(target, 'ingest')}"]
