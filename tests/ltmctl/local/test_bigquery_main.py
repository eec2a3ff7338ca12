"""The bqemulator launcher: it skips the automatic per-write table copies and keeps explicit snapshots, and its
jobs.query answers a failed query with the HTTP error, as BigQuery does."""

import subprocess
import sys

import pytest


def test_automatic_snapshots_are_skipped_and_explicit_ones_kept():
    # In a child process: the patch changes bqemulator's class for the life of the process.
    code = """
from bqemulator.versioning.snapshots import SnapshotManager
from ltmctl.local.bigquery_main import _skip_automatic_snapshots
calls = []
SnapshotManager.capture = lambda self, p, d, t, *, kind="AUTO": calls.append(kind) or "snapshot"
_skip_automatic_snapshots()
assert SnapshotManager.capture(object(), "p", "d", "t") is None
assert SnapshotManager.capture(object(), "p", "d", "t", kind="USER") == "snapshot"
assert calls == ["USER"], calls
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "ok", result.stderr


def test_a_failed_jobs_query_is_googles_http_error_and_a_good_one_answers_inline(stack):
    """query_and_wait (the API's path) reads a 200 answer as rows: a failure must come back as the HTTP error."""
    import httpx
    from google.api_core.exceptions import NotFound

    project = stack.table_id.split(".")[0]
    url = f"{stack.state.bigquery_endpoint}/bigquery/v2/projects/{project}/queries"
    missing = httpx.post(url, json={"query": f"SELECT 1 FROM `{project}.ltm.no_such_table`", "useLegacySql": False})
    assert missing.status_code == 404
    error = missing.json()["error"]
    assert error["status"] == "NOT_FOUND" and error["errors"][0]["reason"] == "notFound"

    answer = httpx.post(url, json={"query": "SELECT @n AS n", "useLegacySql": False, "parameterMode": "NAMED",
                                   "queryParameters": [{"name": "n", "parameterType": {"type": "INT64"},
                                                        "parameterValue": {"value": "7"}}]})
    assert answer.status_code == 200 and answer.json()["jobComplete"] is True
    assert answer.json()["rows"] == [{"f": [{"v": "7"}]}]

    client = stack.clients.bigquery
    with pytest.raises(NotFound):
        list(client.query_and_wait(f"SELECT 1 FROM `{project}.ltm.no_such_table`"))
    assert [tuple(r) for r in client.query_and_wait("SELECT 2 AS n")] == [(2,)]


def test_a_request_is_converted_once_and_bad_rows_are_found_as_bqemulator_finds_them():
    # In a child process: the patch changes bqemulator's module for the life of the process.
    code = """
import pyarrow as pa
from bqemulator.api.routes import tabledata
from ltmctl.local.bigquery_main import _rows_converted_once
original_partition, original_convert = tabledata._partition_rows_for_insert, tabledata.bq_rows_to_arrow
conversions = []
def counted(rows, schema):
    conversions.append(len(rows))
    return original_convert(rows, schema)
schema = pa.schema([pa.field("n", pa.int64()), pa.field("s", pa.string())])
mixed = [{"json": {"n": 1, "s": "a"}}, {"json": {"n": "not a number", "s": "b"}}, {"json": {"n": 3}}]
expected = original_partition(mixed, schema)
assert len(expected[0]) == 2 and len(expected[1]) == 1, expected
tabledata.bq_rows_to_arrow = counted
_rows_converted_once()
assert tabledata._partition_rows_for_insert(mixed, schema) == expected  # the same rows kept, the same errors
good = [{"json": {"n": 1, "s": "a"}}, {"json": {"n": 2}}]
conversions.clear()
kept, errors = tabledata._partition_rows_for_insert(good, schema)
assert (kept, errors) == (good, [])
table = tabledata.bq_rows_to_arrow(kept, schema)  # as insert_all converts the kept rows next
assert table.to_pylist() == [{"n": 1, "s": "a"}, {"n": 2, "s": None}]
assert conversions == [2], conversions  # once, whole: not row by row, not again for the insert
assert tabledata.bq_rows_to_arrow(kept, schema).to_pylist() == table.to_pylist() and conversions == [2, 2]
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip().splitlines()[-1:] == ["ok"], result.stderr[-3000:]  # bqemulator logs on stdout


def test_row_counts_of_streaming_inserts_are_stored_in_the_catalog(stack):
    """The count written in place after each insert is what a restarted emulator reads back."""
    import uuid

    from google.cloud import bigquery

    from ltmctl.local import stack as local_stack

    client = stack.clients.bigquery
    table_id = f"{stack.project}.{stack.resolved.pipeline.dataset}.counts_{uuid.uuid4().hex[:8]}"
    client.create_table(bigquery.Table(table_id, schema=[bigquery.SchemaField("n", "INT64"),
                                                          bigquery.SchemaField("s", "STRING")]))
    for batch in ([{"n": 1, "s": "a"}, {"n": 2}], [{"n": 3}]):
        assert client.insert_rows_json(table_id, batch) == []
    before = client.get_table(table_id)
    assert before.num_rows == 3

    local_stack.restart_piece(stack.resolved, "bigquery")

    after = client.get_table(table_id)
    assert after.num_rows == 3
    assert [f.name for f in after.schema] == ["n", "s"] and after.etag == before.etag
    assert sorted(r.n for r in client.query_and_wait(f"SELECT n FROM `{table_id}`")) == [1, 2, 3]
    client.delete_table(table_id)
