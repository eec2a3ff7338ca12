"""plan/apply against the real emulators: create in order, a second apply changes nothing, updates in place."""

import dataclasses
import uuid

import pytest

from infra.apply import apply
from infra.errors import InfraError
from infra.model import PipelineSpec, Subscription, desired
from infra.plan import plan
from infra.providers import providers_for
from ingest_fn.contract import table_schema


@pytest.fixture
def spec(stack):
    # A project of its own, so this test's resources start from nothing on the shared emulators.
    return PipelineSpec(
        project=f"infra-{uuid.uuid4().hex[:8]}", topic="top", dead_letter_topic="top-dlq",
        dead_letter_subscription="top-dlq-keep", subscription="top-ingest", dataset="d", table="events",
        table_schema=table_schema(), push_endpoint=stack.state.ingest_url,
    )


@pytest.fixture
def providers(stack):
    c = stack.clients
    return providers_for(c.publisher, c.subscriber, c.bigquery)


def test_first_apply_creates_everything_in_dependency_order(spec, providers):
    changes = apply(desired(spec), providers)
    assert [c.action for c in changes] == ["create"] * 6
    kinds = [c.resource.kind for c in changes]
    # topics before the subscriptions that use them; the table before the subscription that fills it
    assert kinds.index("bigquery.table") < kinds.index("pubsub.subscription", 3)
    assert kinds[:2] == ["pubsub.topic", "pubsub.topic"]


def test_second_apply_changes_nothing(spec, providers):
    apply(desired(spec), providers)
    assert [c.action for c in apply(desired(spec), providers)] == ["noop"] * 6


def test_actual_state_matches_desired(spec, providers, stack):
    apply(desired(spec), providers)
    sub = stack.clients.subscriber.get_subscription(
        request={"subscription": f"projects/{spec.project}/subscriptions/top-ingest"})
    assert sub.push_config.push_endpoint == stack.state.ingest_url
    assert sub.dead_letter_policy.dead_letter_topic == f"projects/{spec.project}/topics/top-dlq"
    assert sub.dead_letter_policy.max_delivery_attempts == 5
    assert sub.retry_policy.minimum_backoff.total_seconds() == 10
    table = stack.clients.bigquery.get_table(f"{spec.project}.d.events")
    assert table.time_partitioning.field == "event_time"
    assert table.time_partitioning.type_ == "DAY"
    assert table.clustering_fields == ["action_id", "user_email", "app_id"]
    assert [f.name for f in table.schema] == [f["name"] for f in table_schema()]


def test_changed_settings_are_updated_in_place_then_stable(spec, providers, stack):
    apply(desired(spec), providers)
    changed = dataclasses.replace(spec, max_delivery_attempts=9, minimum_backoff_s=3, push_endpoint="http://127.0.0.1:1/")
    steps = plan(desired(changed), providers)
    updates = [c for c in steps if c.action == "update"]
    assert len(updates) == 1 and isinstance(updates[0].resource, Subscription)
    assert set(updates[0].diffs) == {"max_delivery_attempts", "minimum_backoff_s", "push_endpoint"}
    assert updates[0].diffs["max_delivery_attempts"] == (5, 9)
    apply(desired(changed), providers)
    assert all(c.action == "noop" for c in plan(desired(changed), providers))
    sub = stack.clients.subscriber.get_subscription(
        request={"subscription": f"projects/{spec.project}/subscriptions/top-ingest"})
    assert sub.dead_letter_policy.max_delivery_attempts == 9


def test_a_change_that_needs_replacement_is_refused_before_anything_changes(spec, providers):
    apply(desired(spec), providers)
    moved = dataclasses.replace(spec, partition_field="ingest_time", max_delivery_attempts=7)
    with pytest.raises(InfraError, match="cannot be changed in place") as info:
        apply(desired(moved), providers)
    assert "partition_field" in info.value.message
    # nothing was applied, not even the updatable subscription change
    assert [c.action for c in plan(desired(spec), providers)] == ["noop"] * 6


def test_a_table_of_the_previous_contract_is_updated_in_place_keeping_its_rows(spec, providers, stack):
    # Before ingest_mode bigquery: ingest_time REQUIRED, no subscription_name column.
    old_schema = tuple({**c, "mode": "REQUIRED", "description": "When the ingest function wrote the row."}
                       if c["name"] == "ingest_time" else c
                       for c in table_schema() if c["name"] != "subscription_name")
    apply(desired(dataclasses.replace(spec, table_schema=old_schema)), providers)
    from google.cloud.bigquery import DEFAULT_RETRY

    retry = DEFAULT_RETRY.with_timeout(10)  # a broken table answers 500s, which the client retries for minutes
    bq = stack.clients.bigquery
    table_id = f"{spec.project}.d.events"
    row = {"event_id": "e-1", "action_id": "login", "user_email": "a@b.co", "app_id": "crm", "app_department": "x",
           "event_time": "2026-11-30T06:00:00Z", "message_id": "1", "publish_time": "2026-11-30T06:00:01Z",
           "ingest_time": "2026-11-30T06:00:02Z"}
    assert bq.insert_rows_json(table_id, [row], retry=retry) == []

    steps = plan(desired(spec), providers)
    (update,) = [c for c in steps if c.action != "noop"]
    assert update.action == "update" and update.resource.kind == "bigquery.table"
    assert set(update.diffs) == {"schema"}
    apply(desired(spec), providers)

    table = bq.get_table(table_id)
    modes = {f.name: f.mode for f in table.schema}
    assert modes["ingest_time"] == "NULLABLE" and modes["subscription_name"] == "NULLABLE"
    assert [f.name for f in table.schema] == [c["name"] for c in table_schema()]
    # A row as a BigQuery subscription writes it: no ingest_time, the subscription's name. (bqemulator checks
    # neither REQUIRED nor unknown fields on insert, so only the read back below shows the column is really there.)
    written = {**row, "event_id": "e-2", "message_id": "2", "subscription_name": "top-ingest"}
    del written["ingest_time"]
    assert bq.insert_rows_json(table_id, [written], retry=retry) == []
    rows = {r["event_id"]: r for r in bq.query(f"SELECT event_id, ingest_time, subscription_name FROM `{table_id}`")}
    assert set(rows) == {"e-1", "e-2"}
    assert rows["e-2"]["ingest_time"] is None and rows["e-2"]["subscription_name"] == "top-ingest"
    assert all(c.action == "noop" for c in plan(desired(spec), providers))
