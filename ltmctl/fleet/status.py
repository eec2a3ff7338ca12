"""`ltmctl status` across environments: per environment, how many resources are ok, missing or drifted, and the
state of each Cloud Run service; the same reads as `ltmctl status` of one environment."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ltmctl.fleet import rows as fleet_rows
from ltmctl.fleet.runner import per_env, run


def read(resolved: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(resource rows, service rows) of one gcp environment, as `ltmctl status` reads them."""
    from ltmctl.deploy.clients import DeployClients
    from ltmctl.deploy.services import service_rows
    from ltmctl.deploy.target import target_for
    from ltmctl.environments import open_environment
    from ltmctl.gcp import provisioning
    from ltmctl.gcp.errors import google_errors

    open_environment(resolved).require("gcp", "status")
    with DeployClients.for_env(resolved) as clients:
        target = provisioning.target(resolved, clients)
        resources = provisioning.status_rows(provisioning.plan(target))
        with google_errors(target.project, "reading the Cloud Run services"):
            services = service_rows(target_for(resolved, target.spec.project_number), clients, resolved.root)
    return resources, services


def row(resolved: Any, resources: list[dict[str, Any]], services: list[dict[str, Any]]) -> dict[str, Any]:
    counts = {state: sum(r["state"] == state for r in resources) for state in ("ok", "missing", "drifted")}
    not_ok = [r for r in resources if r["state"] != "ok"]
    stale = [s for s in services if s["state"] not in ("ok", "unused")]
    first = (f"{not_ok[0]['kind']} {not_ok[0]['resource']} {not_ok[0]['state']}" if not_ok
             else f"service {stale[0]['service']} {stale[0]['state']}" if stale else "")
    return fleet_rows.base(resolved) | {
        "state": "drifted" if not_ok or stale else "ok", "resources": counts,
        "services": {s["component"]: s["state"] for s in services}, "first_problem": first,
        "over": len(not_ok) + len(stale)}


def collect(envs: list[Any], *, on_done: Callable[[int, int], None] | None = None,
            debug: bool = False) -> list[dict[str, Any]]:
    found = run(per_env(envs, lambda r: row(r, *read(r))), on_done=on_done, debug=debug)
    return fleet_rows.worst_first(found, [r.name for r in envs])
