"""After `provision`, each runtime identity does exactly its job, through the services' own code and Google's
clients, against the strict fake: ingest writes the events table and publishes dead letters, the API reads the
table with queries, Pub/Sub's agent may forward dead letters. Each grant is needed (taking it away makes that
call fail with 403 naming the permission), and no identity can do another's job."""

from __future__ import annotations

import pytest
from google.api_core import exceptions

from ingest_fn.sink import TransientError
from tests.gcp.runtime_support import (
    EVENT,
    api_client,
    ingestor,
    published,
    push,
    revoke,
    stored_rows,
)
from tests.gcp.support import API_SA, DLQ_TOPIC, INGEST_SA, INGEST_SUB, PROJECT, PUBSUB_AGENT

TABLE = f"{PROJECT}.ltm.events"
MAIN_TOPIC = f"projects/{PROJECT}/topics/ltm-events"
MAX_BYTES = 10_000_000_000  # the API's default cap (api_service.settings)


def _get_data(fake, member):
    from api_service.queries import get_data

    client = api_client(fake, member)
    try:  # as the route calls it
        return get_data(client, TABLE, action_id="login", user_email="ana@example.com", limit=100, days=30,
                        max_bytes=MAX_BYTES, timeout_s=5)
    finally:
        client.close()


def _app_info(fake, member):
    from api_service.queries import app_info

    client = api_client(fake, member)
    try:
        return app_info(client, TABLE, app_id="app-1", app_department="sales", days=30, max_bytes=MAX_BYTES,
                        timeout_s=5)
    finally:
        client.close()


def _denied(exc_info, permission):
    """The 403 reached the product code and names the permission IAM refused."""
    text = str(exc_info.value) + str(getattr(exc_info.value, "__cause__", ""))
    assert "403" in text, text
    assert f"'{permission}'" in text, text


# --- ingest ---------------------------------------------------------------------------------------------------------

def test_ingest_stores_a_valid_event_as_its_account(provisioned):
    outcome = ingestor(provisioned, INGEST_SA).handle_push(push(EVENT))

    assert outcome == "stored"
    (row,) = stored_rows(provisioned)
    assert {k: row[k] for k in EVENT} == {**EVENT, "event_time": row["event_time"]}
    assert row["message_id"] == "m-1"
    (insert,) = provisioned.find("POST", r"/datasets/ltm/tables/events/insertAll$")
    assert insert.principal == INGEST_SA and insert.status == 200
    assert insert.body["rows"][0]["insertId"] == "ev-1"  # the event id is the row id


def test_ingest_dead_letters_an_invalid_event_as_its_account(provisioned):
    outcome = ingestor(provisioned, INGEST_SA).handle_push(push(b"not json", "m-9"))

    assert outcome == "dead_lettered"
    assert stored_rows(provisioned) == []
    (message,) = published(provisioned, DLQ_TOPIC)
    assert message["attributes"]["error"] == "not_json"
    assert message["attributes"]["ltm_original_message_id"] == "m-9"
    (publish,) = provisioned.find("POST", r"/topics/ltm-events-dlq:publish$")
    assert publish.principal == INGEST_SA and publish.status == 200


def test_a_row_bigquery_refuses_is_dead_lettered_with_bigquerys_reason(provisioned):
    """The fake refuses rows that do not fit the table, as BigQuery does: the sink tells that from a failure."""
    from ingest_fn.sink import BigQuerySink

    client = api_client(provisioned, INGEST_SA)  # any BigQuery client acting as the ingest account
    result = BigQuerySink(client, TABLE).insert([{**EVENT, "message_id": "m-1",
                                                  "publish_time": "2025-01-02T03:04:06Z"},
                                                 {**EVENT, "event_id": "ev-2", "message_id": "m-2",
                                                  "publish_time": "2025-01-02T03:04:06Z", "colour": "red"}])

    assert set(result.refused) == {1} and "no such field: colour" in result.refused[1]
    # The sink asks BigQuery to skip invalid rows (#15): the valid row of the same request is stored, not retried.
    assert result.unstored == []
    assert [(r["event_id"], r["message_id"]) for r in stored_rows(provisioned)] == [(EVENT["event_id"], "m-1")]


# --- the API --------------------------------------------------------------------------------------------------------

def test_the_api_runs_its_queries_as_its_account(provisioned):
    assert _get_data(provisioned, API_SA) == (0, [])  # the fake evaluates no SQL: every query answers no rows
    assert _app_info(provisioned, API_SA) is None

    # One jobs.query each, in short-query mode: no job to insert, no results to fetch (tests/gcp/test_api_queries.py)
    queries = provisioned.find("POST", r"/projects/my-project-id/queries$")
    assert len(queries) == 2 and all(r.principal == API_SA and r.status == 200 for r in queries)
    assert all(f"`{TABLE}`" in r.body["query"] for r in queries)
    # every parameter typed as GoogleSQL names the type (the fake refuses a type BigQuery does not know)
    assert [{p["name"]: p["parameterType"]["type"] for p in r.body["queryParameters"]} for r in queries] == [
        {"action_id": "STRING", "user_email": "STRING", "days": "INT64", "limit": "INT64", "max_answer_bytes": "INT64"},
        {"app_id": "STRING", "app_department": "STRING", "days": "INT64", "top": "INT64"}]
    assert [r.method_id for r in provisioned.requests] == ["bigquery.jobs.query"] * 2


# --- each grant is needed -------------------------------------------------------------------------------------------

def _ingest_stores(fake):
    return ingestor(fake, INGEST_SA).handle_push(push(EVENT))


def _ingest_dead_letters(fake):
    return ingestor(fake, INGEST_SA).handle_push(push(b"not json"))


GRANTS = [
    # (where, role, member, the runtime call that needs it, the permission it fails on)
    pytest.param("table", "roles/bigquery.dataEditor", INGEST_SA, _ingest_stores, "bigquery.tables.updateData",
                 id="ingest-table-editor"),
    pytest.param("dataset", "roles/bigquery.routineMetadataViewer", INGEST_SA, _ingest_stores,
                 "bigquery.datasets.get", id="ingest-dataset-metadata"),
    pytest.param(DLQ_TOPIC, "roles/pubsub.publisher", INGEST_SA, _ingest_dead_letters, "pubsub.topics.publish",
                 id="ingest-dlq-publisher"),
    pytest.param("dataset", "roles/bigquery.dataViewer", API_SA, lambda f: _get_data(f, API_SA),
                 "bigquery.tables.getData", id="api-dataset-reader"),
    pytest.param("project", "roles/bigquery.jobUser", API_SA, lambda f: _get_data(f, API_SA),
                 "bigquery.jobs.create", id="api-job-user"),
]


@pytest.mark.parametrize(("where", "role", "member", "call", "permission"), GRANTS)
def test_without_the_grant_the_runtime_call_is_refused(provisioned, where, role, member, call, permission):
    call(provisioned)  # with every grant provision made, it works

    revoke(provisioned, where, role, member)

    with pytest.raises((exceptions.Forbidden, TransientError)) as exc_info:
        call(provisioned)
    _denied(exc_info, permission)


# --- and no identity can do another's job ---------------------------------------------------------------------------

def test_ingest_cannot_read_the_table_with_a_query(provisioned):
    with pytest.raises(exceptions.Forbidden) as exc_info:
        _get_data(provisioned, INGEST_SA)
    _denied(exc_info, "bigquery.jobs.create")


def test_the_api_cannot_write_the_table(provisioned):
    from ingest_fn.sink import BigQuerySink

    client = api_client(provisioned, API_SA)
    with pytest.raises(TransientError) as exc_info:
        BigQuerySink(client, TABLE, timeout_s=5).insert([{**EVENT, "message_id": "m-1",
                                                          "publish_time": "2025-01-02T03:04:06Z"}])
    _denied(exc_info, "bigquery.tables.updateData")
    assert stored_rows(provisioned) == []


@pytest.mark.parametrize("member", [INGEST_SA, API_SA])
def test_no_runtime_account_can_publish_to_the_main_topic(provisioned, member):
    from ingest_fn.dead_letter import DeadLetter
    from ingest_fn.decode import Message, Rejection

    publisher = ingestor(provisioned, member).dead_letter.publisher
    sender = DeadLetter(publisher, MAIN_TOPIC, timeout_s=10)
    with pytest.raises(exceptions.Forbidden) as exc_info:
        sender.send(Message("m-1", "2025-01-02T03:04:06Z", b"{}", {}), Rejection("schema", "x"))
    _denied(exc_info, "pubsub.topics.publish")
    assert published(provisioned, MAIN_TOPIC) == []


def test_the_api_cannot_publish_dead_letters(provisioned):
    publisher = ingestor(provisioned, API_SA).dead_letter
    with pytest.raises(exceptions.Forbidden) as exc_info:
        publisher.send(*_bad_message())
    _denied(exc_info, "pubsub.topics.publish")


def _bad_message():
    from ingest_fn.decode import Message, Rejection

    return Message("m-1", "2025-01-02T03:04:06Z", b"nope", {}), Rejection("not_json", "x")


# --- Pub/Sub's agent forwards dead letters --------------------------------------------------------------------------

AGENT_NEEDS = [
    # Pub/Sub's service agent publishes undeliverable messages to the dead-letter topic and acknowledges them on the
    # source subscription (https://cloud.google.com/pubsub/docs/handling-failures#grant_forwarding_permissions).
    pytest.param(DLQ_TOPIC, "roles/pubsub.publisher", "pubsub.topics.publish", id="publish-dead-letters"),
    pytest.param(INGEST_SUB, "roles/pubsub.subscriber", "pubsub.subscriptions.consume", id="ack-the-source"),
]


@pytest.mark.parametrize(("resource", "role", "permission"), AGENT_NEEDS)
def test_pubsubs_agent_may_forward_dead_letters_and_needs_each_grant(provisioned, resource, role, permission):
    assert provisioned.authorize(PUBSUB_AGENT, permission, resource)
    assert not provisioned.authorize(INGEST_SA, permission, INGEST_SUB if "consume" in permission else
                                     f"projects/{PROJECT}/topics/ltm-events")

    revoke(provisioned, resource, role, PUBSUB_AGENT)

    assert not provisioned.authorize(PUBSUB_AGENT, permission, resource)
