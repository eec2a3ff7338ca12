"""Cloud Run services through the Admin API v2: read what runs, create or update it, wait for the rollout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ltmctl.deploy.target import SOURCE_LABEL, SPEC_LABEL
from ltmctl.errors import BackendError

ROLLOUT_TIMEOUT_S = 900


class RolloutFailed(BackendError):
    title = "Deploy failed"


@dataclass(frozen=True)
class Deployed:
    """What runs now, as far as deploy cares."""

    exists: bool
    source_hash: str = ""
    spec_hash: str = ""
    image: str = ""
    ready: bool = False
    uri: str = ""
    revision: str = ""  # the latest ready revision
    serving: str = ""  # the revision serving 100% of requests; "" when traffic is split
    pinned: bool = False  # traffic names a revision (as a rollback leaves it) instead of following the latest


def serving(service: Any) -> tuple[str, bool]:
    """(the revision serving 100% of the service's traffic, or "" when it is split; whether traffic is pinned to
    named revisions rather than following the latest ready one)."""
    statuses = list(service.traffic_statuses)
    kinds = [getattr(t.type_, "name", str(t.type_)) for t in statuses]
    pinned = not (len(statuses) == 1 and kinds[0].endswith("LATEST"))
    whole = [t for t in statuses if t.percent == 100]
    if not whole:
        return "", pinned
    name = whole[0].revision or ("" if pinned else service.latest_ready_revision)
    return name.rsplit("/", 1)[-1], pinned


def read(run: Any, name: str) -> Deployed:
    from google.api_core.exceptions import NotFound

    try:
        service = run.get_service(name=name)
    except NotFound:
        return Deployed(False)
    # The template's labels are the ones the latest revision carries.
    labels = dict(service.template.labels)
    containers = list(service.template.containers)
    condition = service.terminal_condition
    ready = (bool(service.latest_ready_revision)
             and service.latest_ready_revision == service.latest_created_revision
             and getattr(condition.state, "name", str(condition.state)) == "CONDITION_SUCCEEDED")
    return Deployed(True, labels.get(SOURCE_LABEL, ""), labels.get(SPEC_LABEL, ""),
                    containers[0].image if containers else "", ready, service.uri,
                    service.latest_ready_revision.rsplit("/", 1)[-1], *serving(service))


def start(run: Any, parent: str, service_id: str, body: dict[str, Any], exists: bool) -> Any:
    """Begin a create or update; returns the long-running operation. An update sends the whole service: fields
    deploy does not set go back to Cloud Run's defaults, so what runs is exactly what the config says."""
    if exists:
        return run.update_service(service={**body, "name": f"{parent}/services/{service_id}"})
    return run.create_service(parent=parent, service=body, service_id=service_id)


def finish(operation: Any, service_id: str, console_url: str) -> Any:
    """Wait for the rollout; the service as it now runs."""
    from google.api_core.exceptions import GoogleAPICallError, NotFound, PermissionDenied, ResourceExhausted

    try:
        return operation.result(timeout=ROLLOUT_TIMEOUT_S)
    except (PermissionDenied, NotFound, ResourceExhausted):
        raise  # about the caller or the project, not the revision: the caller's google_errors gives the hint
    except GoogleAPICallError as exc:
        message = getattr(exc, "message", None) or str(exc)
        raise RolloutFailed(f"Cloud Run could not roll out {service_id}: {message}",
                            hint=f"The previous revision keeps serving. Revisions and their logs: {console_url}"
                            ) from None
