"""Compare desired resources with what exists: one Change per resource, in dependency order."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from infra.model import Resource

# create/update/replace/noop come from `plan`; delete/keep/absent from `infra.destroy.plan_destroy`.
Action = Literal["create", "update", "replace", "noop", "delete", "keep", "absent"]


class Provider(Protocol):
    """One per service. `read` returns the actual resource in the model's own shape, or None."""

    def read(self, resource: Resource) -> Resource | None: ...
    def create(self, resource: Resource) -> None: ...
    def update(self, resource: Resource, fields: list[str]) -> None: ...
    def immutable_fields(self, resource: Resource) -> frozenset[str]: ...
    def delete(self, resource: Resource) -> None: ...
    # Optional: `create_many(resources)` creates several resources of this kind in one call; `apply` uses it for
    # consecutive creates (enabling APIs in one batch, for example).


@dataclass(frozen=True)
class Change:
    action: Action
    resource: Resource
    # field -> (actual, desired), for update and replace
    diffs: dict[str, tuple[Any, Any]] = dataclasses.field(default_factory=dict)

    @property
    def summary(self) -> str:
        fields = ", ".join(self.diffs)
        return f"{self.action:7} {self.resource.kind:20} {self.resource.key}" + (f"  ({fields})" if fields else "")


def diff(desired: Resource, actual: Resource) -> dict[str, tuple[Any, Any]]:
    """Fields that differ. A field left None in the desired state is not managed, so it never differs."""
    out: dict[str, tuple[Any, Any]] = {}
    for f in dataclasses.fields(desired):
        want = getattr(desired, f.name)
        have = getattr(actual, f.name)
        if want is not None and want != have:
            out[f.name] = (have, want)
    return out


def plan(
    resources: list[Resource],
    providers: dict[str, Provider],
    absent: Callable[[Resource], bool] | None = None,
) -> list[Change]:
    """One Change per resource. `absent(resource)` true means "known not to exist, do not read it" (for example,
    its API is not enabled yet, so reading it would fail): it is planned as a create."""
    changes = []
    for resource in resources:
        if absent is not None and absent(resource):
            changes.append(Change("create", resource))
            continue
        provider = providers[resource.kind]
        actual = provider.read(resource)
        if actual is None:
            changes.append(Change("create", resource))
            continue
        diffs = diff(resource, actual)
        if not diffs:
            changes.append(Change("noop", resource))
        elif diffs.keys() & provider.immutable_fields(resource):
            changes.append(Change("replace", resource, diffs))
        else:
            changes.append(Change("update", resource, diffs))
    return changes
