"""`ltmctl verify` across environments: every environment's checks run side by side (each its own run id, so no
run reads another's events); per environment, how many checks passed and the first that failed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ltmctl.fleet import rows as fleet_rows
from ltmctl.fleet.runner import per_env, run


def row(resolved: Any, results: list[Any]) -> dict[str, Any]:
    failed = [r for r in results if not r.ok]
    first = failed[0] if failed else None
    return fleet_rows.base(resolved) | {
        "state": "failed" if failed else "ok", "passed": len(results) - len(failed), "failed": len(failed),
        "first_failed": None if first is None else {"check": first.name, "saw": first.saw, "hint": first.hint},
        "checks": [r.as_dict() for r in results], "over": len(failed)}


def collect(envs: list[Any], *, timeout_s: float, metrics_wait_s: float | None, service_account: str | None,
            on_done: Callable[[int, int], None] | None = None, debug: bool = False) -> list[dict[str, Any]]:
    from ltmctl.environments import open_environment
    from ltmctl.verify import core

    def one(resolved: Any) -> dict[str, Any]:
        env = open_environment(resolved)
        wait = metrics_wait_s if metrics_wait_s is not None else env.metrics_wait_s
        with env.probe(service_account) as probe:
            return row(resolved, core.run(probe, timeout_s=timeout_s, metrics_wait_s=wait))

    found = run(per_env(envs, one), on_done=on_done, debug=debug)
    return fleet_rows.worst_first(found, [r.name for r in envs])
