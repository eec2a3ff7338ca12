"""Fifty gcp environments on the fake: their config, their projects, a metrics scope over some of them, and
traffic in Cloud Monitoring for each (tests/gcp/test_fleet.py and bench/fleet.py)."""

from __future__ import annotations

from typing import Any

from ltmctl.gcp.fake import FakeGcp
from ltmctl.gcp.fake.monitoring import MonitoringApi
from ltmctl.gcp.fake.resourcemanager import ResourceManagerApi
from tests.gcp.test_metrics_gcp import at, delta_point, distribution, gauge_point

SCOPING = "fleet-scope-host"
SIZE = 50
SCOPED = range(0, 40)  # environments whose projects the metrics scope of SCOPING monitors
BREACHING = 17  # scoped: p99 of 950 ms against an objective of 500 ms (1.9 times over), and 5xx
STALE = 42  # not scoped: the oldest unacked message is 420 s old against 300 s (1.4 times over)
LOCKED = 49  # not scoped: its project grants the operator nothing
OPERATOR = "user:ops@example.com"


def name(i: int) -> str:
    return f"fleet-{i:02d}"


def project(i: int) -> str:
    return f"fleet-proj-{i:02d}"


def config_text(size: int = SIZE, scoped: range = SCOPED) -> str:
    lines = ["environments:"]
    for i in range(size):
        lines += [f"  {name(i)}:", "    backend: gcp", f"    project: {project(i)}", "    region: us-central1"]
        if i in scoped:
            lines.append(f"    monitoring: {{metrics_scope: {SCOPING}}}")
    return "\n".join(lines) + "\n"


def add_projects(fake: FakeGcp, size: int = SIZE) -> None:
    fake.projects[SCOPING] = "900000000001"
    for i in range(size):
        fake.projects[project(i)] = str(900000001000 + i)
    fake.enable("monitoring.googleapis.com")


def grant(fake: FakeGcp, project_id: str, member: str, role: str) -> None:
    rm = fake.api(ResourceManagerApi)
    policy = rm.policy(project_id)
    policy["bindings"] += [{"role": role, "members": [member]}]
    rm.policies.policies[project_id] = policy


def link(fake: FakeGcp, scoping: str, monitored: str, token: str) -> Any:
    """What `gcloud beta monitoring metrics-scopes create projects/MONITORED --project=SCOPING` sends."""
    from google.auth.transport.requests import AuthorizedSession
    from google.oauth2.credentials import Credentials

    with AuthorizedSession(Credentials(token)) as session:
        return session.post(f"{fake.endpoint}/v1/locations/global/metricsScopes/{scoping}/projects",
                            json={"name": f"locations/global/metricsScopes/{scoping}/projects/{monitored}"})


def _run(metric: str, project_id: str, service: str, kind: str, value_type: str, points: list[dict[str, Any]],
         **labels: str) -> dict[str, Any]:
    return {"metric": {"type": metric, "labels": labels},
            "resource": {"type": "cloud_run_revision",
                         "labels": {"project_id": project_id, "service_name": service,
                                    "revision_name": f"{service}-r1", "location": "us-central1",
                                    "configuration_name": service}},
            "metricKind": kind, "valueType": value_type, "points": points}


def _pubsub(metric: str, project_id: str, resource_type: str, label: str, value: str, kind: str,
            points: list[dict[str, Any]]) -> dict[str, Any]:
    return {"metric": {"type": metric},
            "resource": {"type": resource_type, "labels": {"project_id": project_id, label: value}},
            "metricKind": kind, "valueType": "INT64", "points": points}


def traffic(i: int) -> dict[str, Any]:
    """What environment i's newest step holds: latency bucket counts, requests by class, backlog, oldest age."""
    if i == BREACHING:
        return {"latency": {1: 90, 7: 10}, "classes": {"2xx": 94, "5xx": 6}, "backlog": 3, "oldest": 40}
    if i == STALE:
        return {"latency": {1: 100}, "classes": {"2xx": 100}, "backlog": 250, "oldest": 420}
    # Healthy: all requests under 10 ms or 10-20 ms (their mix differs per environment), no errors.
    return {"latency": {1: 50 + i, 2: 50 - i % 7}, "classes": {"2xx": 100 + i}, "backlog": i, "oldest": 10 + i}


def seed(fake: FakeGcp, size: int = SIZE) -> None:
    """Each environment's traffic, written as Cloud Run and Pub/Sub write it (raw series, per project)."""
    add = fake.api(MonitoringApi).add_series
    for i in range(size):
        p, t = project(i), traffic(i)
        add(_run("run.googleapis.com/request_latencies", p, "ltm-api", "DELTA", "DISTRIBUTION",
                 [delta_point(at(0), distribution(t["latency"]))], response_code="200", response_code_class="2xx"))
        for cls, count in t["classes"].items():
            add(_run("run.googleapis.com/request_count", p, "ltm-api", "DELTA", "INT64",
                     [delta_point(at(0), {"int64Value": str(count)})], response_code=cls[0] + "00",
                     response_code_class=cls))
        sub = ("pubsub_subscription", "subscription_id", "ltm-events-ingest")
        add(_pubsub("pubsub.googleapis.com/subscription/num_undelivered_messages", p, *sub, "GAUGE",
                    [gauge_point(at(0), t["backlog"])]))
        add(_pubsub("pubsub.googleapis.com/subscription/oldest_unacked_message_age", p, *sub, "GAUGE",
                    [gauge_point(at(0), t["oldest"])]))
        add(_pubsub("pubsub.googleapis.com/subscription/dead_letter_message_count", p, *sub, "DELTA",
                    [delta_point(at(0), {"int64Value": str(i % 3)})]))


def set_up(fake: FakeGcp, size: int = SIZE, scoped: range = SCOPED, locked: int | None = LOCKED) -> str:
    """Projects, the scope, the operator's grants (monitoring.viewer on the scoping project and on each project
    outside the scope, none on the locked one), traffic; returns the operator's token."""
    add_projects(fake, size)
    owner = fake.token_for(fake.owner)
    for i in scoped:
        answer = link(fake, SCOPING, project(i), owner)
        assert answer.status_code == 200, answer.text
    grant(fake, SCOPING, OPERATOR, "roles/monitoring.viewer")
    for i in range(size):
        if i not in scoped and i != locked:
            grant(fake, project(i), OPERATOR, "roles/monitoring.viewer")
    seed(fake, size)
    return fake.token_for(OPERATOR)
