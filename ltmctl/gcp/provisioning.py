"""provision / status / destroy on Google Cloud as functions over infra: derive the desired resources from the
config, plan against what exists, apply or delete in dependency order. No typer or rich here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ltmctl.config import Resolved
from ltmctl.errors import ConfigError
from ltmctl.gcp.errors import google_errors

_VERBS = {"read": "reading", "create": "creating", "create_many": "creating", "update": "updating",
          "delete": "deleting"}


class _Annotated:
    """A provider whose calls turn Google errors into hints that name the resource being handled."""

    def __init__(self, provider: Any, project: str) -> None:
        self._provider, self._project = provider, project

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._provider, name)
        if name not in _VERBS:
            return attr

        def call(subject: Any, *args: Any) -> Any:
            items = subject if isinstance(subject, list) else [subject]
            doing = f"{_VERBS[name]} " + ", ".join(f"{r.kind} {r.key}" for r in items)
            with google_errors(self._project, doing):
                return attr(subject, *args)

        return call


@dataclass
class Target:
    """One gcp environment's desired state, and the providers that read and change it."""

    resolved: Resolved
    clients: Any  # ltmctl.gcp.clients.GcpClients
    spec: Any  # infra.model.GcpSpec
    resources: list[Any]
    providers: dict[str, Any]
    unwanted: list[Any] = field(default_factory=list)  # grants of the other ingest mode, revoked when present

    @property
    def project(self) -> str:
        return self.resolved.env.project


def project_number(resolved: Resolved, clients: Any) -> int:
    if resolved.env.gcp.project_number:
        return resolved.env.gcp.project_number
    return int(_read_project(resolved, clients).name.split("/")[-1])


def _read_project(resolved: Resolved, clients: Any) -> Any:
    with google_errors(resolved.env.project, f"reading project {resolved.env.project}"):
        return clients.projects.get_project(name=f"projects/{resolved.env.project}")


CUSTOM_OAUTH_DOC = "https://cloud.google.com/iap/docs/custom-oauth-configuration"


def require_iap_possible(resolved: Resolved, clients: Any) -> str:
    """IAP enabled directly on a Cloud Run service uses a Google-managed OAuth client, which serves projects in an
    organization; a project outside any needs a custom OAuth client (`iap.oauth_client_id`), or deploy's API
    service would sit behind an IAP nobody can sign in to. Return the project's parent ('' when none)."""
    from ltmctl.config import key_line

    project = resolved.env.project
    parent = _read_project(resolved, clients).parent
    if parent or resolved.env.iap.oauth_client_id:
        return parent
    key = ("environments", resolved.name, "iap", "oauth_client_id")
    raise ConfigError(
        f"{resolved.path}:{key_line(resolved.path, key)}: {'.'.join(key)}: project {project} belongs to no "
        "organization, so IAP on Cloud Run cannot use its Google-managed OAuth client; it needs a custom one.",
        hint="Either move the project into an organization, or create an OAuth client (Google Auth Platform → "
             "Clients → Web application; add https://iap.googleapis.com/v1/oauth/clientIds/CLIENT_ID:handleRedirect "
             "as its redirect URI), set iap.oauth_client_id to its id, and export LTM_IAP_OAUTH_CLIENT_SECRET with "
             f"its secret for the next `ltmctl deploy`. See {CUSTOM_OAUTH_DOC}")


def _created(project: Any) -> str:
    """A Resource Manager project's createTime as RFC 3339 ("" when it has none)."""
    when = project.create_time
    return when.isoformat() if when else ""


def target(resolved: Resolved, clients: Any,
           on_wait: Callable[[str], None] | None = None) -> Target:
    from infra.model import gcp_desired, gcp_unwanted
    from ltmctl import pipeline

    # Its number (unless the config has it), and when it was created: old projects need one more grant for push.
    project = _read_project(resolved, clients)
    spec = pipeline.gcp_spec(resolved, resolved.env.gcp.project_number or int(project.name.split("/")[-1]),
                             project_created=_created(project))
    providers = {kind: _Annotated(p, resolved.env.project) for kind, p in clients.providers(on_wait).items()}
    return Target(resolved, clients, spec, gcp_desired(spec), providers, gcp_unwanted(spec))


def _absent_when_disabled(enabled: set[str]) -> Callable[[Any], bool]:
    from infra.model import api_of

    # Reading a resource of a disabled API fails; such a resource cannot exist yet, so it is planned as a create.
    return lambda resource: (api := api_of(resource)) is not None and api not in enabled


def plan(t: Target) -> list[Any]:
    """APIs first (their state decides what can be read), then everything else, then revoking what the other
    ingest mode needed (a delete whose one differing field is `exists`)."""
    from infra.destroy import plan_destroy
    from infra.model import ApiService
    from infra.plan import Change
    from infra.plan import plan as infra_plan

    apis = [r for r in t.resources if isinstance(r, ApiService)]
    rest = [r for r in t.resources if not isinstance(r, ApiService)]
    api_changes = infra_plan(apis, t.providers)
    enabled = {c.resource.name for c in api_changes if c.action == "noop"} | {"serviceusage.googleapis.com"}
    absent = _absent_when_disabled(enabled)
    revokes = [Change("delete", c.resource, {"exists": (True, False)})
               for c in plan_destroy(t.unwanted, t.providers, absent=absent) if c.action == "delete"]
    return api_changes + infra_plan(rest, t.providers, absent) + revokes


def apply(t: Target, changes: list[Any], on_change: Callable[[Any], None] | None = None,
          on_step: Callable[[str], None] | None = None) -> list[Any]:
    """Carry out a plan: APIs first, then (when anything changes at all) the service agents the pipeline grants to,
    then the rest. `on_step(message)` hears about the agents."""
    from infra.apply import execute
    from infra.model import ApiService

    apis = [c for c in changes if isinstance(c.resource, ApiService)]
    rest = [c for c in changes if not isinstance(c.resource, ApiService)]
    with google_errors(t.project):
        execute(apis, t.providers, on_change)
    if any(c.action != "noop" for c in changes):
        ensure_agents(t, on_step)
    with google_errors(t.project):
        execute(rest, t.providers, on_change)
    return changes


def ensure_agents(t: Target, on_step: Callable[[str], None] | None = None) -> list[str]:
    """Create the service agents the pipeline grants to (Pub/Sub's, IAP's) and wait until each exists. Idempotent,
    but it needs Service Usage rights, so provision does it, never deploy."""
    from ltmctl.gcp import agents

    with google_errors(t.project, "creating Google's service agents (" + ", ".join(t.spec.agents) + ")"):
        return agents.ensure(t.clients.credentials, t.clients.endpoint, t.project, list(t.spec.agents), on_step)


def enabled_apis(clients: Any, project: str, apis: list[str] | tuple[str, ...]) -> set[str]:
    """The subset of `apis` enabled on the project, in one request."""
    with google_errors(project, "reading which APIs are enabled"):
        response = clients.service_usage.batch_get_services(request={
            "parent": f"projects/{project}", "names": [f"projects/{project}/services/{a}" for a in apis]})
    return {s.config.name or s.name.rsplit("/", 1)[-1] for s in response.services
            if getattr(s.state, "name", s.state) == "ENABLED"}


def destroy_plan(t: Target, delete_data: bool) -> list[Any]:
    from infra.destroy import plan_destroy
    from infra.model import ApiService, Dataset, Table

    def keep(resource: Any) -> bool:
        return isinstance(resource, ApiService) or (not delete_data and isinstance(resource, Dataset | Table))

    enabled = enabled_apis(t.clients, t.project, t.spec.apis) | {"serviceusage.googleapis.com"}
    return plan_destroy(t.resources + t.unwanted, t.providers, keep, _absent_when_disabled(enabled))


def destroy(t: Target, changes: list[Any], on_change: Callable[[Any], None] | None = None) -> list[Any]:
    from infra.destroy import execute_destroy

    with google_errors(t.project):
        return execute_destroy(changes, t.providers, on_change)


STATES = {"noop": "ok", "create": "missing", "update": "drifted", "replace": "drifted", "delete": "drifted"}


def status_rows(changes: list[Any]) -> list[dict[str, Any]]:
    """One row per resource: exists and matches (ok), missing, or drifted with the fields that differ."""
    return [{"kind": c.resource.kind, "resource": c.resource.key, "state": STATES[c.action],
             "drift": {f: {"actual": a, "desired": d} for f, (a, d) in c.diffs.items()}} for c in changes]


def change_rows(changes: list[Any]) -> list[dict[str, Any]]:
    """A plan as rows: action, kind, resource, and for updates the fields with actual → desired."""
    labels = {"noop": "no change"}
    return [{"action": labels.get(c.action, c.action), "kind": c.resource.kind, "resource": c.resource.key,
             "fields": {f: {"actual": a, "desired": d} for f, (a, d) in c.diffs.items()}} for c in changes]
