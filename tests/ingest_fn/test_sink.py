"""The sink on the real bqemulator: per-row outcomes of one request (stored, refused with BigQuery's own words) and
whole-request failures as TransientError."""

import uuid

import pytest

from ingest_fn.sink import BigQuerySink, TransientError
from ltmctl.clients import bigquery_for_emulator
from tests.api_service.support import event_row


def _refusing_table(stack) -> str:
    """A table where BigQuery refuses a row the contract accepts: `source` is an INTEGER column here."""
    from google.cloud import bigquery

    schema = [bigquery.SchemaField(f.name, "INTEGER" if f.name == "source" else f.field_type, mode=f.mode)
              for f in stack.clients.bigquery.get_table(stack.table_id).schema]
    table_id = f"{stack.project}.{stack.resolved.pipeline.dataset}.sink_{uuid.uuid4().hex[:8]}"
    stack.clients.bigquery.create_table(bigquery.Table(table_id, schema=schema))
    return table_id


def test_a_refused_row_is_named_with_bigquerys_reason_and_the_others_are_stored(stack):
    table_id = _refusing_table(stack)
    rows = [event_row(action_id="sink", source=None), event_row(action_id="sink", source="iot"),
            event_row(action_id="sink", source=None)]
    result = BigQuerySink(stack.clients.bigquery, table_id).insert(rows)
    # what BigQuery itself says about that row, sent alone to a table of the same shape
    [raw] = stack.clients.bigquery.insert_rows_json(_refusing_table(stack), [rows[1]], skip_invalid_rows=True)
    assert raw["errors"] and all(e["reason"] == "invalid" for e in raw["errors"])
    assert result.refused == {1: "; ".join(e["message"] for e in raw["errors"])}
    assert result.unstored == []
    stored = {r.event_id for r in stack.clients.bigquery.query(f"SELECT event_id FROM `{table_id}`").result()}
    assert stored == {rows[0]["event_id"], rows[2]["event_id"]}


def test_every_row_of_a_clean_request_is_stored_under_its_event_id(stack):
    action = f"sink-{uuid.uuid4().hex[:8]}"
    rows = [event_row(action_id=action) for _ in range(3)]
    result = BigQuerySink(stack.clients.bigquery, stack.table_id).insert(rows)
    assert (result.refused, result.unstored) == ({}, [])
    sql = f"SELECT event_id FROM `{stack.table_id}` WHERE action_id = '{action}'"
    assert sorted(r.event_id for r in stack.clients.bigquery.query(sql).result()) == sorted(r["event_id"] for r in rows)


def test_an_unreachable_bigquery_is_a_transient_error(stack):
    dead = bigquery_for_emulator("http://127.0.0.1:9", stack.project)  # nothing listens on port 9
    with pytest.raises(TransientError, match="^BigQuery insert failed: "):
        BigQuerySink(dead, stack.table_id, timeout_s=1.0).insert([event_row(action_id="sink")])


def test_a_missing_table_is_a_transient_error_not_a_refused_row(stack):
    """Not a property of the events: retried until the table is back, never dead-lettered."""
    missing = f"{stack.project}.{stack.resolved.pipeline.dataset}.missing_{uuid.uuid4().hex[:8]}"
    with pytest.raises(TransientError):
        BigQuerySink(stack.clients.bigquery, missing, timeout_s=2.0).insert([event_row(action_id="sink")])


def test_a_bigquery_that_never_answers_is_a_transient_error_within_the_timeout(stack):
    """Connected but silent (a hung backend): every request and the retries around them are bounded by timeout_s,
    so the delivery fails and is retried instead of holding its push request for the library's ten minutes."""
    import socket

    silent = socket.create_server(("127.0.0.1", 0))  # the kernel completes the handshake; nothing ever answers
    try:
        client = bigquery_for_emulator(f"http://127.0.0.1:{silent.getsockname()[1]}", stack.project)
        with pytest.raises(TransientError):
            BigQuerySink(client, stack.table_id, timeout_s=1.0).insert([event_row(action_id="sink")])
    finally:
        silent.close()
