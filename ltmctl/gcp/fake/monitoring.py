"""Cloud Monitoring (REST): timeSeries.list with alignment and cross-series reduction (v3), alert policies (v3),
dashboards and metrics scopes (v1).

Tests load raw series with `add_series` (per revision, per response class, ...: what Cloud Run and Pub/Sub write);
`timeSeries.list` then filters, aligns and reduces them as Cloud Monitoring documents it, so a client's figures are
only right if it asked for the right filter, aligner, reducer and grouping. Alert policies are checked against the
official `monitoring_v3.AlertPolicy` message (unknown fields are a 400, as Google answers) and stored in its
canonical JSON (defaults omitted, durations as "300s"), as Google returns them.

A project's timeSeries.list answers the series of its own project (the `project_id` resource label) and of every
project its metrics scope monitors (https://cloud.google.com/monitoring/settings/multiple-projects): a project is
added to a scope with v1 `locations.global.metricsScopes.projects.create`, which needs monitoring.metricsScopes.link
on both projects (authz); reading then needs monitoring.timeSeries.list on the scoping project only.
"""

from __future__ import annotations

import copy
import json
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from ltmctl.gcp.fake.filters import Filter
from ltmctl.gcp.fake.server import Api, ApiError, Request, invalid, not_found

_RATE_OR_DELTA = ("ALIGN_DELTA", "ALIGN_RATE")
_NUMERIC_ALIGNERS = ("ALIGN_DELTA", "ALIGN_RATE", "ALIGN_MEAN", "ALIGN_MAX", "ALIGN_MIN", "ALIGN_SUM")
_PERCENTILES = {"REDUCE_PERCENTILE_50": 0.50, "REDUCE_PERCENTILE_95": 0.95, "REDUCE_PERCENTILE_99": 0.99,
                "REDUCE_PERCENTILE_05": 0.05}


def parse_time(text: str) -> datetime:
    """RFC 3339 with up to nanoseconds (Python keeps microseconds)."""
    m = re.fullmatch(r"(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text.strip())
    if not m:
        raise invalid(f"Invalid timestamp {text!r}.")
    fraction = (m.group(2) or "0")[:6].ljust(6, "0")
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    return datetime.fromisoformat(f"{m.group(1)}.{fraction}{zone}").astimezone(UTC)


def format_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").replace(".000000Z", "Z")


def parse_duration(text: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)s", text or "")
    if not m:
        raise invalid(f"Invalid duration {text!r}: expected seconds with an 's' suffix, e.g. \"60s\".")
    return float(m.group(1))


# --- distributions ---------------------------------------------------------------------------------------------


def bucket_bounds(options: dict[str, Any]) -> list[float]:
    """The finite bucket boundaries b0..bN; bucket 0 is (-inf, b0), bucket i is [b(i-1), bi), the last [bN, inf)."""
    if "explicitBuckets" in options:
        return [float(b) for b in options["explicitBuckets"].get("bounds", [])]
    if "exponentialBuckets" in options:
        e = options["exponentialBuckets"]
        return [float(e["scale"]) * float(e["growthFactor"]) ** i for i in range(int(e["numFiniteBuckets"]) + 1)]
    if "linearBuckets" in options:
        lin = options["linearBuckets"]
        return [float(lin.get("offset", 0)) + float(lin["width"]) * i for i in range(int(lin["numFiniteBuckets"]) + 1)]
    raise invalid("Distribution without bucketOptions.")


def merge_distributions(values: list[dict[str, Any]]) -> dict[str, Any]:
    options = values[0].get("bucketOptions", {})
    if any(v.get("bucketOptions", {}) != options for v in values):
        raise invalid("Cannot merge distributions with different bucket options.")
    size = max(len(v.get("bucketCounts", [])) for v in values)
    counts = [0] * size
    total, weighted = 0, 0.0
    for v in values:
        for i, c in enumerate(v.get("bucketCounts", [])):
            counts[i] += int(c)
        n = int(v.get("count", 0))
        total += n
        weighted += float(v.get("mean", 0.0)) * n
    return {"count": str(total), "mean": weighted / total if total else 0.0, "bucketOptions": options,
            "bucketCounts": [str(c) for c in counts]}


def distribution_percentile(value: dict[str, Any], q: float) -> float | None:
    """Linear interpolation inside the bucket that holds rank q·count."""
    counts = [int(c) for c in value.get("bucketCounts", [])]
    total = sum(counts)
    if not total:
        return None
    bounds = bucket_bounds(value.get("bucketOptions", {}))
    rank, before = q * total, 0
    for i, count in enumerate(counts):
        if count and before + count >= rank:
            lower = bounds[i - 1] if i > 0 else min(0.0, bounds[0])
            if i >= len(bounds):
                return lower  # overflow bucket: its lower bound is all that is known
            upper = bounds[i]
            return lower + (upper - lower) * (rank - before) / count
        before += count
    return bounds[-1]


def _number(value: dict[str, Any]) -> float:
    if "int64Value" in value:
        return float(int(value["int64Value"]))
    if "doubleValue" in value:
        return float(value["doubleValue"])
    raise invalid("Only INT64, DOUBLE and DISTRIBUTION values are supported by the fake.")


def _percentile_of_numbers(numbers: list[float], q: float) -> float:
    ordered = sorted(numbers)
    position = q * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# --- the API -----------------------------------------------------------------------------------------------------


class MonitoringApi(Api):
    discovery = ("monitoring.v3", "monitoring.v1")
    service = "monitoring.googleapis.com"
    title = "Cloud Monitoring API"

    def __init__(self, fake) -> None:
        super().__init__(fake)
        self.series: list[dict[str, Any]] = []
        self.alert_policies: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.scopes: dict[str, dict[str, str]] = {}  # scoping project id -> monitored project id -> createTime

    def routes(self):
        p = "/v3/projects/{project}/alertPolicies"
        d = "/v1/projects/{project}/dashboards"
        return [
            ("GET", "/v3/projects/{project}/timeSeries", self.list_time_series),
            ("GET", p, self.list_policies),
            ("POST", p, self.create_policy),
            ("GET", p + "/{policy}", self.get_policy),
            ("PATCH", p + "/{policy}", self.update_policy),
            ("DELETE", p + "/{policy}", self.delete_policy),
            ("GET", d, self.list_dashboards),
            ("POST", d, self.create_dashboard),
            ("GET", d + "/{dashboard}", self.get_dashboard),
            ("PATCH", d + "/{dashboard}", self.update_dashboard),
            ("DELETE", d + "/{dashboard}", self.delete_dashboard),
            ("POST", "/v1/locations/global/metricsScopes/{scope}/projects", self.add_monitored_project),
        ]

    # --- test controls ---------------------------------------------------------------------------------------

    def add_series(self, series: dict[str, Any]) -> None:
        """Store one raw time series (REST JSON). It must parse as the official TimeSeries message."""
        from google.cloud import monitoring_v3

        monitoring_v3.TimeSeries.from_json(json.dumps(series))  # raises on a misspelt field
        self.series.append(copy.deepcopy(series))

    # --- timeSeries.list -------------------------------------------------------------------------------------

    def list_time_series(self, req: Request, project: str):
        self.fake.project_id(project)
        q = req.query
        if not q.get("filter"):
            raise invalid("Field filter had an invalid value: a filter is required.")
        if "interval.endTime" not in q:
            raise invalid("Field interval.endTime had an invalid value: it is required.")
        end = parse_time(q["interval.endTime"])
        start = parse_time(q["interval.startTime"]) if q.get("interval.startTime") else end
        chosen = Filter(q["filter"])
        if "metric.type" not in chosen.fields():
            raise invalid("A time series filter must name exactly one metric.type.")
        visible = {self.fake.project_id(project), *self.scopes.get(self.fake.project_id(project), {})}
        matching = [s for s in self.series if s.get("resource", {}).get("labels", {}).get("project_id") in visible
                    and chosen.matches(lambda f, s=s: _series_field(s, f))]
        aligner = q.get("aggregation.perSeriesAligner", "ALIGN_NONE")
        reducer = q.get("aggregation.crossSeriesReducer", "REDUCE_NONE")
        group_by = req.params.get("aggregation.groupByFields", [])
        if aligner == "ALIGN_NONE":
            if reducer != "REDUCE_NONE":
                raise invalid("A cross-series reducer requires a per-series aligner other than ALIGN_NONE.")
            out = [_raw(s, start, end) for s in matching]
        else:
            period = parse_duration(q.get("aggregation.alignmentPeriod", ""))
            if period < 60:
                raise invalid("The alignment period must be at least 60 seconds.")
            aligned = [_align(s, aligner, period, start, end) for s in matching]
            out = aligned if reducer == "REDUCE_NONE" else _reduce(aligned, reducer, group_by)
        out = [s for s in out if s["points"]]
        return {"timeSeries": out, "unit": ""} if out else {}

    # --- metrics scopes --------------------------------------------------------------------------------------

    MAX_MONITORED = 375  # "A metrics scope can include at most 375 projects" (Google's quotas page)

    def add_monitored_project(self, req: Request, scope: str):
        scoping = self.fake.project_id(scope)
        name = str((req.data or {}).get("name", ""))
        m = re.fullmatch(r"locations/global/metricsScopes/([^/]+)/projects/([^/]+)", name)
        if not m or self.fake.project_id(m.group(1)) != scoping:
            raise invalid(f"Field name had an invalid value: {name!r} must be "
                          f"locations/global/metricsScopes/{scope}/projects/MONITORED_PROJECT.")
        monitored = self.fake.project_id(m.group(2))
        added = self.scopes.setdefault(scoping, {})
        if monitored == scoping or monitored in added:
            raise ApiError(409, "ALREADY_EXISTS", f"Project {monitored} is already monitored by the metrics scope "
                                                  f"of {scoping}.")
        if len(added) >= self.MAX_MONITORED:
            raise ApiError(429, "RESOURCE_EXHAUSTED", f"The metrics scope of {scoping} already monitors "
                                                      f"{self.MAX_MONITORED} projects.")
        added[monitored] = format_time(datetime.now(UTC))
        # Google answers with project numbers.
        made = {"@type": "type.googleapis.com/google.monitoring.metricsscope.v1.MonitoredProject",
                "name": f"locations/global/metricsScopes/{self.fake.number(scoping)}/projects/"
                        f"{self.fake.number(monitored)}", "createTime": added[monitored]}
        return self.fake.operation("", response=made)

    # --- alert policies --------------------------------------------------------------------------------------

    def _canonical(self, body: Any, what: str) -> dict[str, Any]:
        from google.cloud import monitoring_v3

        try:
            message = monitoring_v3.AlertPolicy.from_json(json.dumps(body or {}))
        except Exception as exc:  # noqa: BLE001 - json_format raises ParseError for unknown names and bad values
            raise invalid(f"Invalid JSON payload received for {what}. {exc}") from None
        # Google's JSON leaves out every field at its default (0, "", false, unset enums).
        return json.loads(monitoring_v3.AlertPolicy.to_json(message, use_integers_for_enums=False,
                                                            always_print_fields_with_no_presence=False))

    def _policy_name(self, project: str, policy: str) -> str:
        name = f"projects/{self.fake.project_id(project)}/alertPolicies/{policy}"
        if name not in self.alert_policies:
            raise not_found(name)
        return name

    def list_policies(self, req: Request, project: str):
        prefix = f"projects/{self.fake.project_id(project)}/alertPolicies/"
        found = [p for n, p in sorted(self.alert_policies.items()) if n.startswith(prefix)]
        return {"alertPolicies": found, "totalSize": len(found)} if found else {}

    def create_policy(self, req: Request, project: str):
        project_id = self.fake.project_id(project)
        policy = self._canonical(req.data, "AlertPolicy")
        if not policy.get("conditions"):
            raise invalid("An alert policy needs at least one condition.")
        name = f"projects/{project_id}/alertPolicies/{self.fake.next_id()}"
        self.alert_policies[name] = self._stamp(policy, name, created=True)
        return self.alert_policies[name]

    def get_policy(self, req: Request, project: str, policy: str):
        return self.alert_policies[self._policy_name(project, policy)]

    def update_policy(self, req: Request, project: str, policy: str):
        name = self._policy_name(project, policy)
        given = self._canonical(req.data, "AlertPolicy")
        current = self.alert_policies[name]
        mask = [p.strip() for p in req.query.get("updateMask", "").split(",") if p.strip()]
        if mask:
            updated = copy.deepcopy(current)
            for path in mask:
                if path in given:
                    updated[path] = given[path]
                else:
                    updated.pop(path, None)
        else:
            # No mask: the given policy replaces the old one, keeping its name and creation record.
            updated = {**given, "creationRecord": current.get("creationRecord")}
        self.alert_policies[name] = self._stamp(updated, name, created=False)
        return self.alert_policies[name]

    def delete_policy(self, req: Request, project: str, policy: str):
        del self.alert_policies[self._policy_name(project, policy)]
        return {}

    def _stamp(self, policy: dict[str, Any], name: str, created: bool) -> dict[str, Any]:
        record = {"mutateTime": format_time(datetime.now(UTC)), "mutatedBy": self.fake.owner.split(":", 1)[-1]}
        out = {**policy, "name": name, "mutationRecord": record}
        if created:
            out["creationRecord"] = record
        out.setdefault("enabled", True)
        for i, condition in enumerate(out.get("conditions", [])):
            condition.setdefault("name", f"{name}/conditions/{i + 1}")
        return out

    # --- dashboards ------------------------------------------------------------------------------------------

    def _dashboard_name(self, project: str, dashboard: str) -> str:
        # Google answers dashboards by project number.
        name = f"projects/{self.fake.number(project)}/dashboards/{dashboard}"
        if name not in self.dashboards:
            raise not_found(name)
        return name

    def list_dashboards(self, req: Request, project: str):
        prefix = f"projects/{self.fake.number(project)}/dashboards/"
        found = [d for n, d in sorted(self.dashboards.items()) if n.startswith(prefix)]
        return {"dashboards": found} if found else {}

    def create_dashboard(self, req: Request, project: str):
        body = dict(req.data or {})
        _check_dashboard(body)
        name = f"projects/{self.fake.number(project)}/dashboards/{self.fake.next_id()}"
        self.dashboards[name] = {**body, "name": name, "etag": f"etag-{self.fake.next_id()}"}
        return self.dashboards[name]

    def get_dashboard(self, req: Request, project: str, dashboard: str):
        return self.dashboards[self._dashboard_name(project, dashboard)]

    def update_dashboard(self, req: Request, project: str, dashboard: str):
        name = self._dashboard_name(project, dashboard)
        body = dict(req.data or {})
        _check_dashboard(body)
        if body.get("etag") and body["etag"] != self.dashboards[name]["etag"]:
            raise ApiError(409, "ABORTED", "The dashboard was changed since it was read: etag mismatch.")
        self.dashboards[name] = {**body, "name": name, "etag": f"etag-{self.fake.next_id()}"}
        return self.dashboards[name]

    def delete_dashboard(self, req: Request, project: str, dashboard: str):
        del self.dashboards[self._dashboard_name(project, dashboard)]
        return {}


_LAYOUTS = ("gridLayout", "mosaicLayout", "rowLayout", "columnLayout")


def _check_dashboard(body: dict[str, Any]) -> None:
    if not body.get("displayName"):
        raise invalid("Field displayName is required.")
    if sum(1 for k in _LAYOUTS if k in body) != 1:
        raise invalid(f"A dashboard needs exactly one of {', '.join(_LAYOUTS)}.")
    known = {"name", "displayName", "etag", "labels", "dashboardFilters", "annotations", *_LAYOUTS}
    unknown = set(body) - known
    if unknown:
        raise invalid(f"Invalid JSON payload received. Unknown name {sorted(unknown)[0]!r} at 'dashboard'.")


# --- alignment and reduction -------------------------------------------------------------------------------------


def _series_field(series: dict[str, Any], field: str) -> Any:
    """metric.type, resource.type, metric.labels.X (or metric.label.X), resource.labels.X, metric_kind ..."""
    parts = field.split(".")
    if parts[0] in ("metric", "resource") and len(parts) >= 2:
        node = series.get(parts[0], {})
        if parts[1] == "type":
            return node.get("type")
        if parts[1] in ("labels", "label") and len(parts) == 3:
            return node.get("labels", {}).get(parts[2])
    if field == "metric_kind":
        return series.get("metricKind")
    if field == "value_type":
        return series.get("valueType")
    raise invalid(f"Invalid filter: unknown field {field!r}.")


def _point_end(point: dict[str, Any]) -> datetime:
    return parse_time(point["interval"]["endTime"])


def _raw(series: dict[str, Any], start: datetime, end: datetime) -> dict[str, Any]:
    points = [p for p in series.get("points", []) if start <= _point_end(p) <= end]
    return {**copy.deepcopy(series), "points": sorted(points, key=_point_end, reverse=True)}


def _align(series: dict[str, Any], aligner: str, period: float, start: datetime, end: datetime) -> dict[str, Any]:
    kind, value_type = series.get("metricKind", "GAUGE"), series.get("valueType", "INT64")
    if aligner not in _NUMERIC_ALIGNERS:
        raise invalid(f"The fake does not support the aligner {aligner}.")
    if aligner in _RATE_OR_DELTA and kind == "GAUGE":
        raise invalid(f"The aligner {aligner} cannot be applied to metrics with kind GAUGE.")
    if value_type == "DISTRIBUTION" and aligner != "ALIGN_DELTA":
        raise invalid(f"The aligner {aligner} cannot be applied to metrics with value type DISTRIBUTION.")
    step = timedelta(seconds=period)
    windows: list[tuple[datetime, datetime]] = []
    window_end = end
    while window_end > start:
        windows.append((window_end - step, window_end))
        window_end -= step
    points = []
    for low, high in windows:
        inside = [p["value"] for p in series.get("points", []) if low < _point_end(p) <= high]
        if not inside:
            continue  # Cloud Monitoring writes no point for an empty window
        if value_type == "DISTRIBUTION":
            value = {"distributionValue": merge_distributions([v["distributionValue"] for v in inside])}
        else:
            numbers = [_number(v) for v in inside]
            total = sum(numbers)
            result = {"ALIGN_DELTA": total, "ALIGN_SUM": total, "ALIGN_RATE": total / period,
                      "ALIGN_MEAN": total / len(numbers), "ALIGN_MAX": max(numbers), "ALIGN_MIN": min(numbers)}[aligner]
            keeps_int = value_type == "INT64" and aligner in ("ALIGN_DELTA", "ALIGN_SUM", "ALIGN_MAX", "ALIGN_MIN")
            value = {"int64Value": str(int(result))} if keeps_int else {"doubleValue": result}
        interval = {"startTime": format_time(low if kind != "GAUGE" else high), "endTime": format_time(high)}
        points.append({"interval": interval, "value": value})
    out_kind = "GAUGE" if aligner in ("ALIGN_RATE", "ALIGN_MEAN", "ALIGN_MAX", "ALIGN_MIN") else kind
    out_type = value_type if value_type == "DISTRIBUTION" else (
        "INT64" if points and "int64Value" in points[0]["value"] else "DOUBLE")
    return {"metric": copy.deepcopy(series.get("metric", {})), "resource": copy.deepcopy(series.get("resource", {})),
            "metricKind": out_kind, "valueType": out_type, "points": points}


def _reduce(aligned: list[dict[str, Any]], reducer: str, group_by: list[str]) -> list[dict[str, Any]]:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for series in aligned:
        key = tuple(_series_field(series, f) for f in group_by)
        groups.setdefault(key, []).append(series)
    out = []
    for key, members in groups.items():
        by_end: dict[str, list[dict[str, Any]]] = {}
        intervals: dict[str, dict[str, str]] = {}
        for series in members:
            for point in series["points"]:
                by_end.setdefault(point["interval"]["endTime"], []).append(point["value"])
                intervals[point["interval"]["endTime"]] = point["interval"]
        points = []
        value_type = "DOUBLE"
        for end_time in sorted(by_end, key=parse_time, reverse=True):
            value, value_type = _reduce_values(by_end[end_time], reducer)
            if value is not None:
                points.append({"interval": intervals[end_time], "value": value})
        metric: dict[str, Any] = {"type": members[0]["metric"].get("type")}
        resource: dict[str, Any] = {"type": members[0]["resource"].get("type")}
        for field, value in zip(group_by, key, strict=True):
            target = metric if field.startswith("metric.") else resource
            if value is not None:
                target.setdefault("labels", {})[field.rsplit(".", 1)[-1]] = value
        out.append({"metric": metric, "resource": resource, "metricKind": members[0]["metricKind"],
                    "valueType": value_type, "points": points})
    return out


def _reduce_values(values: list[dict[str, Any]], reducer: str) -> tuple[dict[str, Any] | None, str]:
    if reducer in _PERCENTILES:
        q = _PERCENTILES[reducer]
        if "distributionValue" in values[0]:
            result = distribution_percentile(merge_distributions([v["distributionValue"] for v in values]), q)
            return (None, "DOUBLE") if result is None else ({"doubleValue": result}, "DOUBLE")
        return {"doubleValue": _percentile_of_numbers([_number(v) for v in values], q)}, "DOUBLE"
    if "distributionValue" in values[0]:
        raise invalid(f"The reducer {reducer} cannot be applied to distributions in the fake; use a percentile.")
    numbers = [_number(v) for v in values]
    ints = all("int64Value" in v for v in values)
    if reducer == "REDUCE_SUM":
        result = sum(numbers)
    elif reducer == "REDUCE_MAX":
        result = max(numbers)
    elif reducer == "REDUCE_MIN":
        result = min(numbers)
    elif reducer == "REDUCE_MEAN":
        return {"doubleValue": sum(numbers) / len(numbers)}, "DOUBLE"
    elif reducer == "REDUCE_COUNT":
        return {"int64Value": str(len(numbers))}, "INT64"
    else:
        raise invalid(f"The fake does not support the reducer {reducer}.")
    return ({"int64Value": str(int(result))}, "INT64") if ints else ({"doubleValue": result}, "DOUBLE")
