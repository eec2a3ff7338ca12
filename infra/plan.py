"""Compare desired resources with what exists: one Change per resource, in dependency order."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from infra.model import Resource

Action = Literal["create", "update", "replace", "noop"]


class Provider(Protocol):
    """One per service. `read` returns the actual resource in the model's own shape, or None."""

    def read(self, resource: Resource) -> Resource | None: ...
    def create(self, resource: Resource) -> None: ...
    def update(self, resource: Resource, fields: list[str]) -> None: ...
    def immutable_fields(self, resource: Resource) -> frozenset[str]: ...


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


def plan(resources: list[Resource], providers: dict[str, Provider]) -> list[Change]:
    changes = []
    for resource in resources:
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
