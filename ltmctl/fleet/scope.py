"""Environments whose projects one Cloud Monitoring metrics scope monitors, read together: one timeSeries.list per
figure on the scoping project answers for all of them, split by project and resource.

A metrics scope lets its scoping project's timeSeries.list answer the series of every project it monitors
(https://cloud.google.com/monitoring/settings/multiple-projects), each series naming its project in the resource
label `project_id`. So each of `cloud_monitoring.queries` is asked once without its per-environment resource filter,
grouped by `project_id` and that resource label instead (the reduction then runs per group: per project and
service, topic or subscription, exactly what each environment's own query reduced), and every environment takes
the groups that are its own. The answers are reduced already: a scope of fifty projects answers fifty series per
figure, not their raw revisions.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ltmctl.metrics import cloud_monitoring

PROJECT_LABEL = "project_id"


@dataclass(frozen=True)
class Shared:
    """One request for every environment of a scope: a figure's metric, without the per-environment filter."""

    metric: str
    resource_type: str
    labels: tuple[str, ...]  # the resource labels each environment's own query filtered on
    aligner: str
    reducer: str
    group_by: tuple[str, ...]

    @property
    def filter(self) -> str:
        return f'metric.type="{self.metric}" AND resource.type="{self.resource_type}"'

    def aggregation(self, step_s: int) -> dict[str, Any]:
        fields = [f"resource.label.{PROJECT_LABEL}", *(f"resource.label.{k}" for k in self.labels), *self.group_by]
        return {"alignmentPeriod": f"{step_s}s", "perSeriesAligner": self.aligner,
                "crossSeriesReducer": self.reducer, "groupByFields": fields}


def shared(query: cloud_monitoring.Query) -> Shared:
    return Shared(query.metric, query.resource_type, tuple(k for k, _ in query.resource_labels), query.aligner,
                  query.reducer, query.group_by)


def _mine(series: dict[str, Any], project: str, labels: tuple[tuple[str, str], ...]) -> bool:
    got = series.get("resource", {}).get("labels", {})
    return got.get(PROJECT_LABEL) == project and all(got.get(k) == v for k, v in labels)


def reports(client: Any, scoping_project: str, envs: list[Any], start: datetime, end: datetime, step_s: int,
            workers: int = 6) -> dict[str, cloud_monitoring.Report]:
    """Each environment's report, from one request per distinct figure query on the scoping project."""
    wanted = {r.name: cloud_monitoring.queries(r) for r in envs}
    requests = list(dict.fromkeys(shared(q) for queries in wanted.values() for q in queries))

    def one(request: Shared) -> list[dict[str, Any]]:
        return client.list_time_series(f"projects/{scoping_project}", request.filter, start, end,
                                       request.aggregation(step_s))

    with ThreadPoolExecutor(max_workers=min(workers, len(requests)) or 1) as pool:
        answers = dict(zip(requests, pool.map(one, requests), strict=True))
    n = cloud_monitoring.steps(start, end, step_s)
    out = {}
    for resolved in envs:
        project = resolved.env.project
        mine = {q.key: [s for s in answers[shared(q)] if _mine(s, project, q.resource_labels)]
                for q in wanted[resolved.name]}
        out[resolved.name] = cloud_monitoring.Report(project, start, end, step_s,
                                                cloud_monitoring.figures(mine, resolved, end, step_s, n))
    return out
