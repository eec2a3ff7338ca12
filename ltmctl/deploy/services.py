"""The Cloud Run services deploy made, as `status` and `destroy` see them: what runs (URL, ready revision, traffic
split), whether it is what a deploy of this checkout and config would run, and deleting them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ltmctl.deploy.target import COMPONENTS, SOURCE_LABEL, SPEC_LABEL, Target, service_body

MANAGED = ("managed-by", "ltmctl")


def components_of(target: Target) -> list[str]:
    """The components that run as services: with ingest_mode bigquery the subscription itself delivers."""
    return [c for c in COMPONENTS if not (c == "ingest" and target.ingest_mode == "bigquery")]


def delete_command(target: Target, component: str) -> str:
    """The gcloud command that deletes a component's service (for one deploy no longer uses)."""
    return (f"gcloud run services delete {target.components[component].service} --region={target.region} "
            f"--project={target.project}")


def _get(target: Target, clients: Any, component: str) -> Any:
    """The component's Cloud Run service, or None when it does not exist."""
    from google.api_core.exceptions import NotFound

    try:
        return clients.run_services.get_service(name=target.service_name(component))
    except NotFound:
        return None


def _run_enabled(target: Target, clients: Any) -> bool:
    """Whether the Cloud Run API is on: reading a service of a disabled API fails, and none can exist there."""
    from ltmctl.gcp.provisioning import enabled_apis

    return "run.googleapis.com" in enabled_apis(clients, target.project, ["run.googleapis.com"])


def _traffic(service: Any) -> list[dict[str, Any]]:
    split = []
    for t in service.traffic_statuses:
        kind = getattr(t.type_, "name", str(t.type_))
        revision = t.revision or ("LATEST" if kind.endswith("LATEST") else "")
        split.append({"revision": revision, "percent": t.percent, **({"tag": t.tag} if t.tag else {})})
    return split


def service_rows(target: Target, clients: Any, root: Path) -> list[dict[str, Any]]:
    """One row per service: state ok / missing / not ready / drifted / unused (an ingest service left from push
    mode), the drifted fields (`source`: this checkout differs from what runs, so deploy would build; `settings`:
    the config differs; `iap members`), the URL, the ready revision and the traffic split."""
    from ltmctl.deploy.iap import access_members, programmatic_clients
    from ltmctl.deploy.package import package

    rows = []
    enabled = _run_enabled(target, clients)
    wanted = components_of(target)
    for component in COMPONENTS:
        c = target.components[component]
        service = _get(target, clients, component) if enabled else None
        if service is None:
            if component in wanted:
                rows.append({"component": component, "service": c.service, "state": "missing", "drift": {},
                             "url": "", "ready_revision": "", "traffic": []})
            continue
        row: dict[str, Any] = {"component": component, "service": c.service, "url": service.uri,
                               "ready_revision": service.latest_ready_revision.rsplit("/", 1)[-1],
                               "traffic": _traffic(service)}
        rows.append(row)
        if component not in wanted:
            # Left from a push-mode deploy: with ingest_mode bigquery nothing delivers to it.
            row.update(state="unused", drift={}, reason="ingest_mode is bigquery, so nothing delivers to it; "
                                                        f"remove it with: {delete_command(target, component)}")
            continue
        labels = dict(service.template.labels)
        containers = list(service.template.containers)
        image = containers[0].image if containers else ""
        digest = package(component, root, c.source_dir).digest
        desired = service_body(target, component, image, digest)["labels"]
        drift = {field: {"actual": labels.get(label, ""), "desired": desired[label]}
                 for field, label in (("source", SOURCE_LABEL), ("settings", SPEC_LABEL))
                 if labels.get(label, "") != desired[label]}
        if c.iap:
            members = access_members(clients.iap, target.iap_resource)
            if sorted(members) != sorted(target.iap_members):
                drift["iap members"] = {"actual": sorted(members), "desired": sorted(target.iap_members)}
            clients_now = programmatic_clients(clients.iap, target.iap_resource)
            if sorted(clients_now) != sorted(target.iap_programmatic_clients):
                drift["iap programmatic clients"] = {"actual": sorted(clients_now),
                                                     "desired": sorted(target.iap_programmatic_clients)}
        condition = service.terminal_condition
        ready = (bool(service.latest_ready_revision)
                 and getattr(condition.state, "name", str(condition.state)) == "CONDITION_SUCCEEDED")
        row.update(state="drifted" if drift else ("ok" if ready else "not ready"), drift=drift)
        if not ready:
            row["reason"] = condition.message
    return rows


def managed_services(target: Target, clients: Any) -> list[str]:
    """The components whose service exists and was made by ltmctl (both, whatever the ingest mode: one left from
    an earlier push deploy counts too). A service of the same name that ltmctl did not make is not ours."""
    if not _run_enabled(target, clients):
        return []
    services = {component: _get(target, clients, component) for component in COMPONENTS}
    return [component for component, service in services.items()
            if service is not None and dict(service.labels).get(MANAGED[0]) == MANAGED[1]]


def delete_services(target: Target, clients: Any, components: list[str],
                    on_delete: Callable[[str], None] | None = None) -> None:
    """Delete the components' services, each waited for: the accounts they run as may be deleted next."""
    for component in components:
        clients.run_services.delete_service(name=target.service_name(component)).result(timeout=600)
        if on_delete:
            on_delete(target.components[component].service)
