"""Carry out a plan in dependency order; refuse changes that would need a resource to be replaced."""

from __future__ import annotations

from collections.abc import Callable

from infra.errors import InfraError
from infra.model import Resource
from infra.plan import Change, Provider, plan


def apply(
    resources: list[Resource],
    providers: dict[str, Provider],
    on_change: Callable[[Change], None] | None = None,
    absent: Callable[[Resource], bool] | None = None,
) -> list[Change]:
    """Plan, then create or update what differs. Returns the plan; a second apply returns only noops."""
    return execute(plan(resources, providers, absent), providers, on_change)


def execute(
    changes: list[Change],
    providers: dict[str, Provider],
    on_change: Callable[[Change], None] | None = None,
) -> list[Change]:
    """Carry out a plan made by `plan` (shown to someone first, say), plus any deletes the caller added. Nothing
    runs if any change is a replace."""
    blocked = [c for c in changes if c.action == "replace"]
    if blocked:
        lines = "\n".join(f"  {c.resource.key}: {', '.join(c.diffs)}" for c in blocked)
        raise InfraError(
            f"These resources differ in fields that cannot be changed in place:\n{lines}",
            hint="Delete them (losing their data or messages) or change the config back.",
        )
    i = 0
    while i < len(changes):
        change = changes[i]
        provider = providers[change.resource.kind]
        batch = [change]
        if change.action == "create" and hasattr(provider, "create_many"):
            while (i + len(batch) < len(changes) and changes[i + len(batch)].action == "create"
                   and changes[i + len(batch)].resource.kind == change.resource.kind):
                batch.append(changes[i + len(batch)])
            provider.create_many([c.resource for c in batch])
        elif change.action == "create":
            provider.create(change.resource)
        elif change.action == "update":
            provider.update(change.resource, list(change.diffs))
        elif change.action == "delete":  # a caller's plan may revoke what is no longer wanted
            provider.delete(change.resource)
        for done in batch:
            if on_change and done.action != "noop":
                on_change(done)
        i += len(batch)
    return changes
