"""Google Cloud IAM facts: the permissions of each predefined role, and the permissions each REST method checks.

From the public dataset iann0036/iam-dataset (MIT licence, see LICENSE here), `gcp/map.json` and `gcp/roles/*.json`
at its commit of 2026-08-22, cut down to the services this project touches. Used by the fake control plane to
authorize requests the way IAM does, and by the error hints to name the role that grants a missing permission.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

_HERE = Path(__file__).parent


@cache
def role_permissions() -> dict[str, frozenset[str]]:
    """`roles/NAME` → the permissions it grants (only those of this project's services)."""
    data = json.loads((_HERE / "role_permissions.json").read_text(encoding="utf-8"))
    return {role: frozenset(entry["permissions"]) for role, entry in data.items()}


@cache
def role_titles() -> dict[str, str]:
    data = json.loads((_HERE / "role_permissions.json").read_text(encoding="utf-8"))
    return {role: entry.get("title", role) for role, entry in data.items()}


@cache
def method_permissions() -> dict[str, tuple[str, ...]]:
    """Discovery method id (`run.projects.locations.services.create`) → the permissions it checks; an empty tuple
    where the dataset has no mapping."""
    data = json.loads((_HERE / "method_permissions.json").read_text(encoding="utf-8"))
    return {method: tuple(perms) for method, perms in data.items()}
