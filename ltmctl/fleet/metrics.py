"""`ltmctl metrics` across environments: one row each with the figures an operator scans first, and its SLO status.

Each environment gives its own figures over the window (`Environment.figures`: Cloud Monitoring for a gcp
environment, the local stack's counters since its start), except environments sharing a metrics scope: those are
read together through `scope.reports`, one query per figure for all of them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ltmctl.fleet import rows as fleet_rows
from ltmctl.fleet.runner import Unit, per_env, run
from ltmctl.metrics.figures import ABOVE_BUCKETS, UPPER_BOUND

# Figures the environment's `slo` settings judge, as `ltmctl metrics` judges them for one environment.
OBJECTIVES = {"api latency p99": "latency_p99_ms", "api 5xx rate": "error_rate",
              "ingest latency p99": "latency_p99_ms", "ingest 5xx rate": "error_rate",
              "pubsub oldest unacked": "oldest_unacked_s"}
# Row field -> figure name.
COLUMNS = {"p50_ms": "api latency p50", "p99_ms": "api latency p99", "rate_4xx": "api 4xx rate",
           "rate_5xx": "api 5xx rate", "backlog": "pubsub backlog", "oldest_unacked_s": "pubsub oldest unacked"}
DEAD_LETTERS = ("pubsub dead-lettered", "ingest dead-lettered")


def row(resolved: Any, values: dict[str, float | None], rows: dict[str, Any] | None = None) -> dict[str, Any]:
    """An environment's row from its figures (name -> value; None: no data in the window), and the figures' rows
    (name -> `Row`) where they say how a latency was estimated."""
    rows = rows or {}
    out = fleet_rows.base(resolved)
    out.update({field: values.get(name) for field, name in COLUMNS.items()})
    for field in ("p50", "p99"):
        got = rows.get(f"api latency {field}")
        out[f"{field}_estimate"] = got.estimate if got is not None else None
    dead = [values[name] for name in DEAD_LETTERS if values.get(name) is not None]
    out["dead_letters"] = sum(dead) if dead else None  # type: ignore[arg-type]
    slo = resolved.env.slo
    breached = []
    for name, objective in OBJECTIVES.items():
        value, limit = values.get(name), getattr(slo, objective)
        # A bucket's upper bound over the objective says the figure may be over it, not that it is: the figure's
        # own judgement (over only when the whole bucket is) decides.
        bucketed = name in rows and rows[name].estimate in (UPPER_BOUND, ABOVE_BUCKETS)
        if value is not None and (rows[name].status == "breach" if bucketed else value > limit):
            breached.append({"figure": name, "objective": objective, "value": value, "limit": limit,
                             "over": value / limit if limit else float("inf")})
    breached.sort(key=lambda b: -b["over"])
    known = [v for field, v in out.items() if field in COLUMNS and v is not None]
    if breached:
        state = "breach"
    elif not known and not out["dead_letters"]:
        state = "no data"
    else:
        state = "ok"
    out.update({"state": state, "slo": state, "breached": breached,
                "over": max((b["over"] for b in breached), default=0.0)})
    return out


def _row_of(resolved: Any, figures: list[Any]) -> dict[str, Any]:
    return row(resolved, {f.name: f.value for f in figures}, {f.name: f for f in figures})


def collect(envs: list[Any], start: datetime, end: datetime, step_s: int, *,
            on_done: Callable[[int, int], None] | None = None, debug: bool = False) -> list[dict[str, Any]]:
    """Every environment's row, worst first."""
    from ltmctl.environments import open_environment

    opened = {r.name: open_environment(r) for r in envs}
    scopes: dict[str, list[Any]] = {}
    alone = []
    for resolved in envs:
        scope = opened[resolved.name].metrics_scope
        (scopes.setdefault(scope, []) if scope else alone).append(resolved)
    clients = _Clients(next(iter(scopes.values()))[0].env.project) if scopes else None
    units = per_env(alone, lambda r: _row_of(r, opened[r.name].figures(start, end, step_s)))
    units += [Unit(group, lambda s=s, g=group: _scope_rows(clients, s, g, start, end, step_s))
              for s, group in scopes.items()]
    try:
        found = run(units, on_done=on_done, debug=debug)
    finally:
        if clients:
            clients.close()
    return fleet_rows.worst_first(found, [r.name for r in envs])


def _scope_rows(clients: _Clients, scoping: str, envs: list[Any], start: datetime, end: datetime,
                step_s: int) -> dict[str, Any]:
    from ltmctl.fleet import scope
    from ltmctl.gcp.errors import google_errors

    with google_errors(scoping, f"reading metrics through the metrics scope of {scoping}"):
        reports = scope.reports(clients.monitoring(), scoping, envs, start, end, step_s)
    out = {}
    for resolved in envs:
        out[resolved.name] = _row_of(resolved, [f.row() for f in reports[resolved.name].figures]) | {
            "metrics_scope": scoping}
    return out


class _Clients:
    """One credential for the scope groups (one identity reads every scoping project), and a Cloud Monitoring
    session per worker thread: each session's connection pool then holds what its group's parallel queries need."""

    def __init__(self, project: str) -> None:
        self._project = project
        self._lock = threading.Lock()
        self._base: Any = None
        self._local = threading.local()
        self._made: list[Any] = []

    def _credentials(self) -> tuple[Any, str | None]:
        with self._lock:
            if self._base is None:
                from ltmctl.gcp.clients import GcpClients
                from ltmctl.gcp.errors import google_errors

                base = GcpClients.for_project(self._project)
                if not base.endpoint and not base.credentials.valid:
                    import google.auth.transport.requests

                    # Refresh once here, rather than in every worker at its first request.
                    with google_errors(None, "refreshing Application Default Credentials"):
                        base.credentials.refresh(google.auth.transport.requests.Request())
                self._base = base
            return self._base.credentials, self._base.endpoint

    def monitoring(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            from ltmctl.gcp.monitoring_rest import MonitoringRest

            credentials, endpoint = self._credentials()
            client = self._local.client = MonitoringRest(credentials, endpoint)
            with self._lock:
                self._made.append(client)
        return client

    def close(self) -> None:
        for client in self._made:
            client.close()
