"""`deploy --plan`: what a deploy would change, resource by resource, read from the project and nothing sent that
changes anything. The same decisions as `deploy` (ltmctl.deploy.deployer), taken by the same functions, in its
order: the image to build, the Cloud Run service, who may invoke it, how the subscription delivers, IAP.

Rows are provision's (`action`, `kind`, `resource`, `fields`: {name: {actual, desired}}), so both plans print alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ltmctl.deploy import iap, push
from ltmctl.deploy.deployer import (
    leftover_ingest_service,
    plan_component,
    require_bigquery_ready,
    services_of,
    table_of,
)
from ltmctl.deploy.target import Target
from ltmctl.gcp.errors import google_errors

# How a Cloud Run field is shown: the path below the template and its one container.
_SHORT = ("template.containers[0].", "template.")


def _row(action: str, kind: str, resource: str, diffs: dict[str, tuple[Any, Any]] | None = None) -> dict[str, Any]:
    return {"action": {"noop": "no change"}.get(action, action), "kind": kind, "resource": resource,
            "fields": {name: {"actual": a, "desired": d} for name, (a, d) in (diffs or {}).items()}}


def _short(path: str) -> str:
    for prefix in _SHORT:
        if path.startswith(prefix):
            return path[len(prefix):]
    return path


def plan(target: Target, clients: Any, *, components: list[str], images: dict[str, str] | None = None,
         force: bool = False, root: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """(one row per resource deploy would create, update or leave alone; warnings deploy would print)."""
    images = images or {}
    services = services_of(target, components, images)
    warnings = leftover_ingest_service(target, clients) if "ingest" in components and "ingest" not in services else []
    rows: list[dict[str, Any]] = []
    urls: dict[str, str] = {}
    created: set[str] = set()
    for component in services:
        c = target.components[component]
        p = plan_component(target, clients, component, images.get(component), force, root)
        image = p.image or target.image(component, p.pkg.digest)
        if p.body is not None and p.image is None:  # a build: Cloud Build pushes this image to Artifact Registry
            rows.append(_row("create", "artifactregistry.image", image,
                             {"source": (p.deployed.source_hash[:12] or None, p.pkg.digest[:12])}))
        else:
            rows.append(_row("noop", "artifactregistry.image", image))
        if not p.deployed.exists:
            created.add(target.service_name(component))
            rows.append(_row("create", "run.service", c.service))
        elif p.body is None:
            rows.append(_row("noop", "run.service", c.service))
        else:
            diffs = {_short(k): v for k, v in p.diffs.items()} or {"revision": (p.deployed.revision, "new (--force)")}
            rows.append(_row("update", "run.service", c.service, diffs))
        urls[component] = p.deployed.uri
    rows += _invokers(target, clients, services, created)
    if "ingest" in components:
        rows += _delivery(target, clients, urls.get("ingest"), "ingest" in services)
    if "api" in services:
        rows += _iap(target, clients, target.service_name("api") in created)
    return rows, warnings


def _invokers(target: Target, clients: Any, services: list[str], created: set[str]) -> list[dict[str, Any]]:
    from infra.model import service_bindings
    from infra.plan import plan as infra_plan

    names = {target.service_name(c) for c in services}
    members = [m for m in service_bindings(target.gcp) if m.target in names]
    if not members:
        return []
    providers = {"iam.member": clients.providers()["iam.member"]}
    with google_errors(target.project, "reading who may invoke the Cloud Run services"):
        # A service deploy is about to create has no policy to read yet: its grants are all to make.
        changes = infra_plan(members, providers, absent=lambda m: m.target in created)
    return [_row(c.action, c.resource.kind, c.resource.key) for c in changes]


def _delivery(target: Target, clients: Any, ingest_url: str | None, pushes: bool) -> list[dict[str, Any]]:
    p = target.gcp.pipeline
    path = f"projects/{p.project}/subscriptions/{p.subscription}"
    if not pushes:  # ingest_mode bigquery
        require_bigquery_ready(target, clients)
        with google_errors(target.project, f"reading subscription {p.subscription}"):
            diffs = push.bigquery_changes(push.read(clients.subscriber, path), table_of(target))
    else:
        # A service not created yet has no URL: the push endpoint is the one Cloud Run will give it.
        endpoint = ingest_url or f"(the URL of {target.components['ingest'].service})"
        invoker = target.gcp.accounts["invoker"].email
        with google_errors(target.project, f"reading subscription {p.subscription}"):
            diffs = push.push_changes(push.read(clients.subscriber, path), endpoint, invoker)
    return [_row("update" if diffs else "noop", "pubsub.subscription", p.subscription, diffs)]


def _iap(target: Target, clients: Any, new_service: bool) -> list[dict[str, Any]]:
    resource = target.iap_resource
    if new_service:  # IAP knows nothing of a service that does not exist yet
        members, clients_now, client_id = [], [], ""
    else:
        with google_errors(target.project, "reading IAP access to the API"):
            members = iap.access_members(clients.iap, resource)
            settings = clients.iap.get_iap_settings(request={"name": resource}).access_settings.oauth_settings
            clients_now, client_id = list(settings.programmatic_clients), settings.client_id or ""
    wanted = list(dict.fromkeys(target.iap_members))
    access = {"members": (sorted(members), wanted)} if sorted(members) != sorted(wanted) else {}
    settings_diffs = iap.settings_changes(clients_now, client_id, target.iap_programmatic_clients,
                                          target.iap_oauth_client_id)
    service = target.components["api"].service
    return [_row("update" if access else "noop", "iap.access", service, access),
            _row("update" if settings_diffs else "noop", "iap.settings", service, settings_diffs)]
