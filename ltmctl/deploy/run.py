"""Cloud Run services through the Admin API v2: read what runs, create or update it, wait for the rollout."""

from __future__ import annotations

from dataclasses import dataclass, field
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
    # The service as Cloud Run describes it, flattened (`template.scaling.max_instance_count`: 7), enum names.
    fields: dict[str, Any] = field(default_factory=dict, compare=False)


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
    described = type(service).to_dict(service, use_integers_for_enums=False, preserving_proto_field_name=True)
    return Deployed(True, labels.get(SOURCE_LABEL, ""), labels.get(SPEC_LABEL, ""),
                    containers[0].image if containers else "", ready, service.uri,
                    service.latest_ready_revision.rsplit("/", 1)[-1], *serving(service), flatten(described))


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """A service as {dotted path: value}: `template.containers[0].resources.limits.memory`, and environment
    variables by name (`template.containers[0].env.LTM_TABLE`), whose order means nothing. proto-plus's `type_`
    is the field `type`."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = key[:-1] if key.endswith("_") else key
            out.update(flatten(item, f"{prefix}.{name}" if prefix else name))
        return out
    if isinstance(value, list) and prefix.endswith(".env"):
        return {f"{prefix}.{e['name']}": e.get("value", "") for e in value if isinstance(e, dict)}
    if isinstance(value, list) and value and all(isinstance(i, dict) for i in value):
        out = {}
        for i, item in enumerate(value):
            out.update(flatten(item, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


# Paths deploy writes that are not settings: the image follows the source (compared on its own) and the labels
# record hashes of what the fields already say.
_NOT_SETTINGS = ("template.containers[0].image", "labels.", "template.labels.")


def differences(deployed: Deployed, body: dict[str, Any], image: str) -> dict[str, tuple[Any, Any]]:
    """What an update of this service would change, field by field: (actual, desired). Empty means deploy leaves
    it alone. Besides the settings deploy writes (a value changed out of band shows here as in a config change):
    the source it was built from, the image, a latest revision that is not ready, traffic pinned by a rollback.
    An environment variable deploy does not set is one an update removes."""
    if not deployed.exists:
        return {}
    wanted = flatten(body)
    have = deployed.fields
    diffs: dict[str, tuple[Any, Any]] = {}
    source = body["labels"][SOURCE_LABEL]
    if deployed.source_hash != source:
        diffs["source"] = (deployed.source_hash[:12] or None, source[:12])
    if image and image != deployed.image:
        diffs["image"] = (deployed.image or None, image)
    for path, value in wanted.items():
        if path.startswith(_NOT_SETTINGS):
            continue
        if have.get(path) != value and not (value in ("", 0, False, None) and have.get(path) in ("", 0, False, None)):
            diffs[path] = (have.get(path), value)
    env = [path.rsplit(".", 1)[0] + "." for path in wanted if ".env." in path]
    for path, value in have.items():
        if any(path.startswith(prefix) for prefix in env) and path not in wanted:
            diffs[path] = (value, None)
    if deployed.spec_hash != body["labels"][SPEC_LABEL] and not (diffs.keys() - {"source", "image"}):
        diffs["settings"] = (deployed.spec_hash[:12] or None, body["labels"][SPEC_LABEL][:12])
    if not deployed.ready:
        diffs["ready"] = (False, True)
    return diffs


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
