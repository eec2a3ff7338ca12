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
) -> list[Change]:
    """Plan, then create or update what differs. Returns the plan; a second apply returns only noops."""
    changes = plan(resources, providers)
    blocked = [c for c in changes if c.action == "replace"]
    if blocked:
        lines = "\n".join(f"  {c.resource.key}: {', '.join(c.diffs)}" for c in blocked)
        raise InfraError(
            f"These resources differ in fields that cannot be changed in place:\n{lines}",
            hint="Delete them (losing their data or messages) or change the config back.",
        )
    for change in changes:
        provider = providers[change.resource.kind]
        if change.action == "create":
            provider.create(change.resource)
        elif change.action == "update":
            provider.update(change.resource, list(change.diffs))
        if on_change and change.action != "noop":
            on_change(change)
    return changes
