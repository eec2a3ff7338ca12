"""Delete what `desired` describes, in reverse dependency order, keeping what the caller asks to keep."""

from __future__ import annotations

from collections.abc import Callable

from infra.model import Resource
from infra.plan import Change, Provider


def plan_destroy(
    resources: list[Resource],
    providers: dict[str, Provider],
    keep: Callable[[Resource], bool] = lambda r: False,
    absent: Callable[[Resource], bool] | None = None,
) -> list[Change]:
    """Reverse dependency order: delete what exists, keep what `keep` selects, absent for the rest."""
    changes = []
    for resource in reversed(resources):
        if keep(resource):
            changes.append(Change("keep", resource))
        elif (absent is not None and absent(resource)) or providers[resource.kind].read(resource) is None:
            changes.append(Change("absent", resource))
        else:
            changes.append(Change("delete", resource))
    return changes


def execute_destroy(
    changes: list[Change],
    providers: dict[str, Provider],
    on_change: Callable[[Change], None] | None = None,
) -> list[Change]:
    for change in changes:
        if change.action == "delete":
            providers[change.resource.kind].delete(change.resource)
            if on_change:
                on_change(change)
    return changes
