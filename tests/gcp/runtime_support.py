"""The runtime identities against the fake: the services' own code and clients, each acting as its account, and
taking one grant away from what the fake stores."""

from __future__ import annotations

import base64
import json
from typing import Any

from ltmctl.gcp.fake import FakeGcp
from ltmctl.gcp.fake.bigquery import BigQueryApi
from ltmctl.gcp.fake.pubsub import PubSubApi
from ltmctl.gcp.fake.resourcemanager import ResourceManagerApi
from tests.gcp.support import DATASET, EVENTS_TABLE, PROJECT

EVENT = {"event_id": "ev-1", "action_id": "login", "user_email": "ana@example.com", "app_id": "app-1",
         "app_department": "sales", "event_time": "2025-01-02T03:04:05Z"}


def push(event: Any, message_id: str = "m-1") -> dict[str, Any]:
    """The CloudEvent data of a Pub/Sub push delivery carrying `event` (a dict as JSON, or raw bytes)."""
    data = event if isinstance(event, bytes) else json.dumps(event).encode()
    return {"message": {"data": base64.b64encode(data).decode(), "messageId": message_id,
                        "publishTime": "2025-01-02T03:04:06.000Z", "attributes": {"source": "test"}}}


def ingestor(fake: FakeGcp, member: str) -> Any:
    """ingest_fn's Ingestor, built by its composition root, with clients acting as `member`."""
    from google.oauth2.credentials import Credentials

    from ingest_fn.main import build
    from ingest_fn.settings import Settings

    settings = Settings(project=PROJECT, dataset="ltm", table="events", dead_letter_topic="ltm-events-dlq",
                        insert_timeout_s=5.0)
    return build(settings, credentials=Credentials(fake.token_for(member)), api_endpoint=fake.endpoint)


def api_client(fake: FakeGcp, member: str) -> Any:
    """The API service's BigQuery client, built by its own factory, acting as `member`."""
    from google.oauth2.credentials import Credentials

    from api_service.app import build_bigquery_client
    from api_service.settings import Settings

    settings = Settings(project=PROJECT, iap_audience="/projects/123456789012/global/backendServices/1")
    return build_bigquery_client(settings, credentials=Credentials(fake.token_for(member)),
                                 api_endpoint=fake.endpoint)


def stored_rows(fake: FakeGcp) -> list[dict[str, Any]]:
    return [r["json"] for r in fake.api(BigQueryApi).rows.get(EVENTS_TABLE, [])]


def published(fake: FakeGcp, topic: str) -> list[dict[str, Any]]:
    return fake.api(PubSubApi).published.get(topic, [])


# --- taking one grant away ------------------------------------------------------------------------------------------

def _drop_binding(policy: dict[str, Any], role: str, member: str) -> None:
    found = [b for b in policy["bindings"] if b["role"] == role and member in b["members"]]
    assert found, f"{member} does not hold {role} here"
    for binding in found:
        binding["members"].remove(member)


def revoke(fake: FakeGcp, where: str, role: str, member: str) -> None:
    """Remove just `member` from `role` in the policy the fake stores for `where`: "dataset", "table", "project",
    or a full resource name (topic, subscription, Cloud Run service)."""
    bq = fake.api(BigQueryApi)
    if where == "dataset":
        access = bq.datasets[DATASET]["access"]
        legacy = {"roles/bigquery.dataViewer": "READER"}.get(role, role)
        kept = [e for e in access if not (e.get("role") == legacy and e.get("userByEmail") == member.split(":")[1])]
        assert len(kept) < len(access), f"{member} has no {role} entry on the dataset"
        bq.datasets[DATASET]["access"] = kept
    elif where == "table":
        _drop_binding(bq.policies.policies[EVENTS_TABLE], role, member)
    elif where == "project":
        _drop_binding(fake.api(ResourceManagerApi).policies.policies[PROJECT], role, member)
    else:
        from ltmctl.gcp.fake.run import CloudRunApi

        for api in (fake.api(PubSubApi), fake.api(CloudRunApi)):
            if where in api.policies.policies:
                _drop_binding(api.policies.policies[where], role, member)
                return
        raise AssertionError(f"the fake stores no policy for {where}")
