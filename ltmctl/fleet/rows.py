"""Rows of the fleet view: worst first, and the exit code they add up to."""

from __future__ import annotations

from typing import Any

# Errors first (nothing is known), then environments out of their objectives or not as configured, then the ones
# without data, then the healthy. Within a rank, `over` (how bad) decides, largest first.
RANK = {"error": 0, "breach": 1, "drifted": 1, "failed": 1, "no data": 2, "ok": 3}

EXIT_HELP = ("Exit 0 when every environment is ok, 1 when any is not (and none failed to answer), 4 when any "
             "environment's row is an error.")


def base(resolved: Any) -> dict[str, Any]:
    return {"environment": resolved.name, "backend": resolved.env.backend, "project": resolved.env.project}


def worst_first(rows: dict[str, dict[str, Any]], order: list[str]) -> list[dict[str, Any]]:
    """Rows by rank, then by how far over, then in config order."""
    position = {name: i for i, name in enumerate(order)}
    return sorted(rows.values(), key=lambda r: (RANK[r["state"]], -float(r.get("over") or 0.0),
                                                position[r["environment"]]))


def exit_code(rows: list[dict[str, Any]]) -> int:
    if any(r["state"] == "error" for r in rows):
        return 4
    return 1 if any(RANK[r["state"]] == 1 for r in rows) else 0
