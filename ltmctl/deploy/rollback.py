"""`deploy --rollback`: each chosen service's traffic back to the revision that served before, without a new
revision or any other change (an update of `traffic` only), waited for.

Which revision: by hand, the newest ready revision older than the one serving 100% now. From a deploy's JSON
report (`--from`, as cloudbuild.yaml does when verify fails), exactly the revision that served before that deploy,
and only for the services that deploy changed and that still serve what it rolled out: a service it created has
nothing to go back to, one it left unchanged is not its to touch, and one someone changed since is theirs.
Every service is checked before any is moved, so a refusal leaves all of them as they were.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ltmctl.deploy import run as runs
from ltmctl.deploy.progress import Progress, Quiet
from ltmctl.deploy.target import Target
from ltmctl.errors import BackendError, UsageError
from ltmctl.gcp.errors import google_errors

REVISION = "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION"


class CannotRollBack(BackendError):
    title = "Nothing to roll back to"


@dataclass(frozen=True)
class Move:
    component: str
    service: str
    from_revision: str
    to_revision: str


@dataclass
class RollbackResult:
    project: str
    region: str
    moved: list[Move] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # services a deploy report names but rollback left alone, why

    def as_dict(self) -> dict[str, Any]:
        return {"project": self.project, "region": self.region,
                "rolled_back": [{"component": m.component, "service": m.service, "from": m.from_revision,
                                 "to": m.to_revision} for m in self.moved],
                "skipped": self.skipped}


def read_report(path: Path) -> dict[str, dict[str, Any]]:
    """The components of a `deploy --output json` report, by component."""
    try:
        report = json.loads(path.read_text())
        return {c["component"]: c for c in report["components"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"--from {path}: not a report of `ltmctl deploy --output json` ({exc}).",
                         hint="Save one with `ltmctl deploy --output json > deploy.json`.") from None


def rollback(target: Target, clients: Any, *, components: list[str],
             report: dict[str, dict[str, Any]] | None = None, progress: Progress | None = None) -> RollbackResult:
    """Move each component's traffic back (see the module docstring); `report`: from `read_report`."""
    progress = progress or Quiet()
    result = RollbackResult(target.project, target.region)
    moves = []
    for component in components:
        c = target.components[component]
        with google_errors(target.project, f"reading Cloud Run service {c.service} and its revisions"):
            move = _plan(target, clients, component, None if report is None else report.get(component, {}), result)
        if move:
            moves.append(move)
    for move in moves:
        name = target.service_name(move.component)
        traffic = [{"type_": REVISION, "revision": move.to_revision, "percent": 100}]
        with google_errors(target.project, f"moving the traffic of {move.service}"):
            # Only `traffic` is sent and masked: the template, and so the revisions, stay exactly as they are.
            operation = clients.run_services.update_service(
                request={"service": {"name": name, "traffic": traffic}, "update_mask": {"paths": ["traffic"]}})
            with progress.waiting(f"Moving {move.service}'s traffic to {move.to_revision}"):
                runs.finish(operation, move.service, target.console_url(move.component))
        progress.step(f"{move.component}: {move.service} serves {move.to_revision} (was {move.from_revision})")
        result.moved.append(move)
    return result


def _plan(target: Target, clients: Any, component: str, recorded: dict[str, Any] | None,
          result: RollbackResult) -> Move | None:
    from google.api_core.exceptions import NotFound

    c = target.components[component]
    name = target.service_name(component)
    try:
        service = clients.run_services.get_service(name=name)
    except NotFound:
        if recorded is not None:
            result.skipped.append(f"{c.service}: no service (nothing of it to roll back)")
            return None
        raise CannotRollBack(f"{c.service} does not exist, so there is nothing to roll back.",
                             hint="Deploy it first: `ltmctl deploy`.") from None
    now, _ = runs.serving(service)
    if recorded is not None:
        if recorded.get("action") != "updated" or not recorded.get("previous_revision") \
                or recorded["previous_revision"] == recorded.get("revision"):
            why = ("it created the service: no earlier revision" if recorded.get("action") == "created" else
                   "it did not change what serves")
            result.skipped.append(f"{c.service}: left as it is ({why})" if recorded else
                                  f"{c.service}: not in the deploy report")
            return None
        if now != recorded.get("revision"):
            raise CannotRollBack(
                f"{c.service} serves {now or 'a traffic split'}, not {recorded.get('revision')} which that deploy "
                "rolled out: it has changed since, so rolling back would undo someone else's change.",
                hint=f"Look at its revisions ({target.console_url(component)}) and, if still wanted, roll back by "
                     f"hand: `ltmctl deploy {component} --rollback`.")
    if not now:
        raise CannotRollBack(f"{c.service}'s traffic is split between revisions, so no one revision serves it.",
                             hint=f"Set its traffic by hand: gcloud run services update-traffic {c.service} "
                                  f"--region={target.region} --to-revisions=REVISION=100")
    revisions = list(clients.run_revisions.list_revisions(parent=name))
    short = {r.name.rsplit("/", 1)[-1]: r for r in revisions}
    if recorded is not None:
        wanted = short.get(recorded["previous_revision"])
        if wanted is None or not _ready(wanted):
            raise CannotRollBack(f"{c.service}'s revision {recorded['previous_revision']}, which served before that "
                                 "deploy, is no longer there or not ready.",
                                 hint=f"Pick a ready revision in {target.console_url(component)} and roll back by "
                                      f"hand: `ltmctl deploy {component} --rollback`.")
        return Move(component, c.service, now, recorded["previous_revision"])
    serving_since = short[now].create_time if now in short else None
    older = sorted((r for r in revisions if _ready(r) and serving_since is not None and r.create_time < serving_since),
                   key=lambda r: r.create_time)
    if not older:
        raise CannotRollBack(f"{c.service} has no ready revision older than {now}, the one serving it.",
                             hint=f"Its revisions: {target.console_url(component)}. To change what runs, fix the "
                                  "source and `ltmctl deploy` again.")
    return Move(component, c.service, now, older[-1].name.rsplit("/", 1)[-1])


def _ready(revision: Any) -> bool:
    return any(cond.type_ == "Ready" and getattr(cond.state, "name", str(cond.state)) == "CONDITION_SUCCEEDED"
               for cond in revision.conditions)
