"""The pipeline's Cloud Monitoring dashboard and alert policies as data derived from the config (objectives,
notification channels, service names), planned against what exists and applied: create what is missing, replace
what differs, leave the rest alone. No typer or rich here; the client is passed in (`MonitoringRest`).

Objects are found by their labels (`managed-by: ltmctl`, `ltm-env`, `ltm-item`), else by display name, so
renaming a policy in the config updates it instead of creating a second one. They are compared field by field with
what Google answers, where fields left at their default are simply absent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ltmctl.metrics.cloud_monitoring import (
    DEAD_LETTERED,
    INSTANCE_COUNT,
    OLDEST_UNACKED,
    PUBLISHED,
    REQUEST_COUNT,
    REQUEST_LATENCIES,
    Query,
)

MANAGED_BY = "ltmctl"
ALIGN = "60s"
POLICY = "alert policy"
DASHBOARD = "dashboard"


@dataclass
class Change:
    action: str  # create | update | noop
    kind: str  # alert policy | dashboard
    item: str  # the ltm-item label
    desired: dict[str, Any]
    actual: dict[str, Any] | None = None
    diffs: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # field path -> (actual, desired)

    @property
    def display_name(self) -> str:
        return str(self.desired["displayName"])


# --- desired state ---------------------------------------------------------------------------------------------


def _labels(resolved: Any, item: str) -> dict[str, str]:
    return {"managed-by": MANAGED_BY, "ltm-env": resolved.name, "ltm-item": item}


def _run(service: str, metric: str, aligner: str, reducer: str, group_by: tuple[str, ...] = (),
         code_class: str | None = None) -> tuple[str, dict[str, Any]]:
    """A Cloud Run filter and aggregation, the same as `ltmctl metrics` queries, optionally for one status class."""
    query = Query("", metric, "cloud_run_revision", (("service_name", service),), aligner, reducer, group_by)
    extra = f' AND metric.labels.response_code_class="{code_class}"' if code_class else ""
    return query.filter + extra, query.aggregation(60)


def _pubsub(kind: str, name: str, metric: str, aligner: str, reducer: str) -> tuple[str, dict[str, Any]]:
    resource, label = ("pubsub_topic", "topic_id") if kind == "topic" else ("pubsub_subscription", "subscription_id")
    query = Query("", metric, resource, ((label, name),), aligner, reducer)
    return query.filter, query.aggregation(60)


def _threshold(name: str, filter_aggregation: tuple[str, dict[str, Any]], value: float, duration: str,
               denominator: tuple[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    condition: dict[str, Any] = {
        "filter": filter_aggregation[0], "aggregations": [filter_aggregation[1]],
        "comparison": "COMPARISON_GT", "thresholdValue": value, "duration": duration, "trigger": {"count": 1}}
    if denominator:
        condition["denominatorFilter"], condition["denominatorAggregations"] = denominator[0], [denominator[1]]
    return {"displayName": name, "conditionThreshold": condition}


def desired_policies(resolved: Any) -> list[dict[str, Any]]:
    env, pipeline, slo = resolved.env, resolved.pipeline, resolved.env.slo
    api, sub, dlq = env.api.service, pipeline.subscription, pipeline.dead_letter_topic
    look = f"`ltmctl --env {resolved.name} metrics` shows the figures"
    specs = [
        ("api-latency-p99", f"LTM {resolved.name}: API p99 latency above {slo.latency_p99_ms:g} ms", "ERROR",
         # The percentile of all requests' merged latencies, as in `ltmctl metrics`, for five minutes.
         [_threshold(f"p99 latency of {api} > {slo.latency_p99_ms:g} ms for 5 min",
                     _run(api, REQUEST_LATENCIES, "ALIGN_DELTA", "REDUCE_PERCENTILE_99"), slo.latency_p99_ms,
                     "300s")],
         f"The API's p99 latency has been above the objective ({slo.latency_p99_ms:g} ms) for 5 minutes. {look}; "
         f"`ltmctl --env {resolved.name} logs api --severity WARNING` the slow or failing requests. Cold starts "
         "(instance count stepping up) and BigQuery slowness are the usual causes."),
        ("api-5xx-rate", f"LTM {resolved.name}: API 5xx rate above {slo.error_rate:.2%}", "ERROR",
         # 5xx requests over all requests: a ratio condition, so a burst of traffic alone never fires it.
         [_threshold(f"5xx share of {api} requests > {slo.error_rate:.2%} for 5 min",
                     _run(api, REQUEST_COUNT, "ALIGN_RATE", "REDUCE_SUM", code_class="5xx"), slo.error_rate,
                     "300s", denominator=_run(api, REQUEST_COUNT, "ALIGN_RATE", "REDUCE_SUM"))],
         f"More than {slo.error_rate:.2%} of the API's requests failed with 5xx for 5 minutes. {look}; "
         f"`ltmctl --env {resolved.name} logs api --severity ERROR` the errors."),
        ("pubsub-oldest-unacked", f"LTM {resolved.name}: oldest unacknowledged message older than "
                                  f"{slo.oldest_unacked_s:g} s", "WARNING",
         [_threshold(f"oldest unacked message of {sub} > {slo.oldest_unacked_s:g} s",
                     _pubsub("subscription", sub, OLDEST_UNACKED, "ALIGN_MAX", "REDUCE_MAX"), slo.oldest_unacked_s,
                     "60s")],
         f"Messages wait in {sub} longer than the objective ({slo.oldest_unacked_s:g} s): the ingest service is "
         f"failing or cannot keep up. {look}; `ltmctl --env {resolved.name} logs ingest` why."),
        ("dead-letters", f"LTM {resolved.name}: messages dead-lettered", "ERROR",
         # Two ways into the dead-letter topic: Pub/Sub after max delivery attempts, and the function itself for
         # events it refuses (acknowledged, so the subscription's count never sees those).
         [_threshold(f"{sub} forwarded messages to the dead-letter topic",
                     _pubsub("subscription", sub, DEAD_LETTERED, "ALIGN_DELTA", "REDUCE_SUM"), 0, "0s"),
          _threshold(f"messages published to {dlq}",
                     _pubsub("topic", dlq, PUBLISHED, "ALIGN_DELTA", "REDUCE_SUM"), 0, "0s")],
         f"Messages reached the dead-letter topic {dlq}. `ltmctl --env {resolved.name} dlq list` shows them with "
         "the reason; fix the producer or the data, then `ltmctl dlq replay`."),
    ]
    return [{
        "displayName": name,
        "documentation": {"content": text, "mimeType": "text/markdown"},
        "userLabels": _labels(resolved, item),
        "conditions": conditions,
        "combiner": "OR",
        "enabled": True,
        "notificationChannels": list(env.monitoring.notification_channels),
        "alertStrategy": {"autoClose": "1800s"},
        "severity": severity,
    } for item, name, severity, conditions, text in specs]


def _series(filter_aggregation: tuple[str, dict[str, Any]], legend: str, axis: str = "Y1") -> dict[str, Any]:
    return {"timeSeriesQuery": {"timeSeriesFilter": {"filter": filter_aggregation[0],
                                                     "aggregation": filter_aggregation[1]}},
            "plotType": "LINE", "legendTemplate": legend, "targetAxis": axis, "minAlignmentPeriod": ALIGN}


def _ratio(numerator: tuple[str, dict[str, Any]], denominator: tuple[str, dict[str, Any]],
           legend: str) -> dict[str, Any]:
    return {"timeSeriesQuery": {"timeSeriesFilterRatio": {
        "numerator": {"filter": numerator[0], "aggregation": numerator[1]},
        "denominator": {"filter": denominator[0], "aggregation": denominator[1]}}},
        "plotType": "LINE", "legendTemplate": legend, "targetAxis": "Y1", "minAlignmentPeriod": ALIGN}


def _chart(title: str, data_sets: list[dict[str, Any]], y_label: str, threshold: float | None = None,
           y2_label: str | None = None) -> dict[str, Any]:
    chart: dict[str, Any] = {"dataSets": data_sets, "yAxis": {"label": y_label, "scale": "LINEAR"},
                             "chartOptions": {"mode": "COLOR"}}
    if y2_label:
        chart["y2Axis"] = {"label": y2_label, "scale": "LINEAR"}
    if threshold is not None:
        chart["thresholds"] = [{"label": "objective", "value": threshold, "targetAxis": "Y1"}]
    return {"title": title, "xyChart": chart}


def desired_dashboard(resolved: Any) -> dict[str, Any]:
    env, pipeline, slo = resolved.env, resolved.pipeline, resolved.env.slo
    api, ingest = env.api.service, env.ingest.service
    topic, sub, dlq = pipeline.topic, pipeline.subscription, pipeline.dead_letter_topic
    count = (REQUEST_COUNT, "ALIGN_RATE", "REDUCE_SUM")
    widgets = [
        _chart("API latency (ms)", [_series(_run(api, REQUEST_LATENCIES, "ALIGN_DELTA", f"REDUCE_PERCENTILE_{p}"),
                                            f"p{p}") for p in (50, 95, 99)], "ms", slo.latency_p99_ms),
        _chart("API error rate", [_ratio(_run(api, *count, code_class=c), _run(api, *count), c)
                                  for c in ("4xx", "5xx")], "share of requests", slo.error_rate),
        _chart("API requests/s by status class",
               [_series(_run(api, *count, group_by=("metric.labels.response_code_class",)),
                        "${metric.labels.response_code_class}")], "requests/s"),
        _chart("Pub/Sub published/s and backlog",
               [_series(_pubsub("topic", topic, PUBLISHED, "ALIGN_RATE", "REDUCE_SUM"), "published/s"),
                _series(_pubsub("subscription", sub, "pubsub.googleapis.com/subscription/num_undelivered_messages",
                                "ALIGN_MAX", "REDUCE_SUM"), "backlog", "Y2")], "messages/s", y2_label="messages"),
        _chart("Oldest unacknowledged message (s)",
               [_series(_pubsub("subscription", sub, OLDEST_UNACKED, "ALIGN_MAX", "REDUCE_MAX"), "oldest unacked")],
               "s", slo.oldest_unacked_s),
        _chart("Dead letters", [
            _series(_pubsub("subscription", sub, DEAD_LETTERED, "ALIGN_DELTA", "REDUCE_SUM"), "after max attempts"),
            _series(_pubsub("topic", dlq, PUBLISHED, "ALIGN_DELTA", "REDUCE_SUM"), "published to dead-letter topic")],
            "messages"),
    ]
    if pipeline.ingest_mode == "push":
        widgets.append(_chart("Ingest errors (share of pushes)",
                              [_ratio(_run(ingest, *count, code_class=c), _run(ingest, *count), c)
                               for c in ("4xx", "5xx")], "share of pushes", slo.error_rate))
    services = [api] + ([ingest] if pipeline.ingest_mode == "push" else [])
    widgets.append(_chart("Instances (scale-out, cold starts)", [
        _series(_run(s, INSTANCE_COUNT, "ALIGN_MAX", "REDUCE_SUM"), s) for s in services], "instances"))
    tiles = [{"xPos": (i % 2) * 24, "yPos": (i // 2) * 16, "width": 24, "height": 16, "widget": w}
             for i, w in enumerate(widgets)]
    return {"displayName": f"LTM pipeline ({resolved.name})", "labels": _labels(resolved, "dashboard"),
            "mosaicLayout": {"columns": 48, "tiles": tiles}}


# --- plan and apply ----------------------------------------------------------------------------------------------


def _is_default(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_is_default(v) for v in value.values())
    return value is None or value is False or value == 0 or value in ("", "0s") or value == []


def same(desired: Any, actual: Any) -> bool:
    """Does what Google answers hold every value of the desired object? Extra fields Google adds (names, records,
    etags) do not count; fields at their default are absent from its JSON; numbers may come back as strings."""
    if actual is None:
        return _is_default(desired)
    if isinstance(desired, dict):
        return isinstance(actual, dict) and all(same(v, actual.get(k)) for k, v in desired.items())
    if isinstance(desired, list):
        return (isinstance(actual, list) and len(desired) == len(actual)
                and all(same(d, a) for d, a in zip(desired, actual, strict=True)))
    if isinstance(desired, bool) or isinstance(actual, bool):
        return desired == actual
    if isinstance(desired, int | float):
        try:
            return float(desired) == float(actual)
        except (TypeError, ValueError):
            return False
    return desired == actual


def _diffs(desired: Any, actual: Any, path: str = "") -> dict[str, tuple[Any, Any]]:
    """Each differing leaf as `conditions[0].conditionThreshold.thresholdValue` -> (actual, desired): a plan a
    person can read, not two whole dashboards."""
    if same(desired, actual):
        return {}
    if isinstance(desired, dict) and isinstance(actual, dict):
        out: dict[str, tuple[Any, Any]] = {}
        for key, value in desired.items():
            out |= _diffs(value, actual.get(key), f"{path}.{key}" if path else key)
        return out
    if isinstance(desired, list) and isinstance(actual, list) and len(desired) == len(actual):
        out = {}
        for i, (d, a) in enumerate(zip(desired, actual, strict=True)):
            out |= _diffs(d, a, f"{path}[{i}]")
        return out
    return {path: (actual, desired)}


def _find(existing: list[dict[str, Any]], desired: dict[str, Any], labels_key: str) -> dict[str, Any] | None:
    want = desired[labels_key]
    for item in existing:
        got = item.get(labels_key) or {}
        if all(got.get(k) == want[k] for k in ("managed-by", "ltm-env", "ltm-item")):
            return item
    return next((i for i in existing if i.get("displayName") == desired["displayName"]), None)


def _change(kind: str, desired: dict[str, Any], actual: dict[str, Any] | None, labels_key: str) -> Change:
    item = desired[labels_key]["ltm-item"]
    if actual is None:
        return Change("create", kind, item, desired)
    diffs = _diffs(desired, actual)
    return Change("update" if diffs else "noop", kind, item, desired, actual, diffs)


def plan(client: Any, resolved: Any) -> list[Change]:
    """The dashboard first, then each alert policy: create, update (the fields that differ) or noop."""
    parent = f"projects/{resolved.env.project}"
    dashboards = client.list_dashboards(parent)
    policies = client.list_alert_policies(parent)
    dashboard = desired_dashboard(resolved)
    changes = [_change(DASHBOARD, dashboard, _find(dashboards, dashboard, "labels"), "labels")]
    for policy in desired_policies(resolved):
        changes.append(_change(POLICY, policy, _find(policies, policy, "userLabels"), "userLabels"))
    return changes


def apply(client: Any, resolved: Any, changes: list[Change],
          on_change: Callable[[Change], None] | None = None) -> list[dict[str, Any]]:
    """Create or replace what the plan says; the answers, in order."""
    parent = f"projects/{resolved.env.project}"
    done = []
    for change in changes:
        if change.action == "noop":
            continue
        if change.kind == DASHBOARD:
            if change.action == "create":
                done.append(client.create_dashboard(parent, change.desired))
            else:
                # The etag it was read with: a change made meanwhile in the console fails instead of being lost.
                assert change.actual is not None
                done.append(client.update_dashboard({**change.desired, "name": change.actual["name"],
                                                     "etag": change.actual.get("etag", "")}))
        elif change.action == "create":
            done.append(client.create_alert_policy(parent, change.desired))
        else:
            assert change.actual is not None
            done.append(client.update_alert_policy({**change.desired, "name": change.actual["name"]}))
        if on_change:
            on_change(change)
    return done


def change_rows(changes: list[Change]) -> list[dict[str, Any]]:
    """As provision shows its plan: action, kind, resource, and for updates each differing field's actual →
    desired."""
    return [{"action": "no change" if c.action == "noop" else c.action, "kind": c.kind, "resource": c.display_name,
             "fields": {f: {"actual": a, "desired": d} for f, (a, d) in c.diffs.items()}} for c in changes]
