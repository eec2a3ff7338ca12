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


@pytest.mark.parametrize(("seconds", "spelled"), [
    (1764482400.0, "1.7644824E9"), (1764482400.123456, "1.764482400123456E9"), (0.0, "0.0"), (1.5, "1.5"),
    (-86400.0, "-86400.0"), (10_000_000.0, "1.0E7"), (-62135596800.0, "-6.21355968E10"), (0.0005, "5.0E-4")])
def test_float_seconds_are_spelled_as_bigquery_spells_them(seconds, spelled):
    from ltmctl.local.bigquery_main import java_double

    assert java_double(seconds) == spelled and float(spelled) == seconds


# One instant with microseconds, in a plain column, an ARRAY and a STRUCT; and a DATETIME, which has no such format.
INSTANT_US = 1796018400123456  # 2026-11-30T06:00:00.123456Z
T = "TIMESTAMP '2026-11-30 06:00:00.123456+00'"
SELECT_INSTANTS = f"SELECT {T} AS t, [{T}] AS a, STRUCT({T} AS t) AS s, DATETIME '2026-11-30 06:00:00' AS d"
AS_ASKED = {"FLOAT64": "1.796018400123456E9", "INT64": str(INSTANT_US),
            "ISO8601_STRING": "2026-11-30T06:00:00.123456000000Z"}


def _cells(row):
    t, a, s, d = (cell["v"] for cell in row["f"])
    return t, a[0]["v"], s["f"][0]["v"], d


@pytest.mark.parametrize(("options", "expected"), [
    ({}, "FLOAT64"), ({"useInt64Timestamp": True}, "INT64"), ({"useInt64Timestamp": False}, "FLOAT64"),
    ({"timestampOutputFormat": "INT64"}, "INT64"), ({"timestampOutputFormat": "FLOAT64"}, "FLOAT64"),
    ({"timestampOutputFormat": "ISO8601_STRING"}, "ISO8601_STRING"),
    ({"timestampOutputFormat": "TIMESTAMP_OUTPUT_FORMAT_UNSPECIFIED"}, "FLOAT64")])
def test_timestamps_come_in_the_format_the_request_asks_for(stack, options, expected):
    """BigQuery answers float seconds unless formatOptions ask otherwise, on jobs.query, jobs.getQueryResults and
    tabledata.list; bqemulator alone answers int64 microseconds whatever was asked, which `bq` cannot read."""
    from datetime import UTC, datetime

    import httpx

    base = f"{stack.state.bigquery_endpoint}/bigquery/v2/projects/{stack.project}"
    params = {f"formatOptions.{key}": str(value).lower() if isinstance(value, bool) else value
              for key, value in options.items()}
    want = (AS_ASKED[expected],) * 3 + ("2026-11-30T06:00:00",)

    # jobs.query: formatOptions in the body
    answer = httpx.post(f"{base}/queries", json={"query": SELECT_INSTANTS, "useLegacySql": False,
                                                 "formatOptions": options}, timeout=60)
    assert answer.status_code == 200, answer.text
    assert _cells(answer.json()["rows"][0]) == want

    # jobs.getQueryResults: formatOptions as query parameters
    job_id = answer.json()["jobReference"]["jobId"]
    results = httpx.get(f"{base}/queries/{job_id}", params=params, timeout=60)
    assert results.status_code == 200, results.text
    assert _cells(results.json()["rows"][0]) == want

    # tabledata.list on a table holding the same row
    table_id = f"{stack.project}.{stack.resolved.pipeline.dataset}.instants_{expected.lower()}_{len(params)}"
    client = stack.clients.bigquery
    client.delete_table(table_id, not_found_ok=True)
    client.query_and_wait(f"CREATE TABLE `{table_id}` AS {SELECT_INSTANTS}")
    try:
        path = table_id.split(".")
        listed = httpx.get(f"{base}/datasets/{path[1]}/tables/{path[2]}/data", params=params, timeout=60)
        assert listed.status_code == 200, listed.text
        assert _cells(listed.json()["rows"][0]) == want
        # google-cloud-bigquery asks for int64 and reads the same instant, exactly
        instant = datetime(2026, 11, 30, 6, 0, 0, 123456, tzinfo=UTC)
        assert next(iter(client.list_rows(table_id)))["t"] == instant
        assert [r["t"] for r in client.query_and_wait(f"SELECT t FROM `{table_id}`")] == [instant]
    finally:
        client.delete_table(table_id, not_found_ok=True)


def test_an_unknown_timestamp_format_is_refused(stack):
    import httpx

    base = f"{stack.state.bigquery_endpoint}/bigquery/v2/projects/{stack.project}"
    answer = httpx.post(f"{base}/queries", json={"query": "SELECT 1", "useLegacySql": False,
                                                 "formatOptions": {"timestampOutputFormat": "SECONDS"}}, timeout=60)
    assert answer.status_code == 400 and "timestampOutputFormat" in answer.json()["error"]["message"]


def test_the_discovery_document_is_served_with_this_endpoint_as_its_root(stack):
    """`bq` reads the API's description from its --api endpoint; google-api-python-client builds a client from it."""
    import httpx
    from googleapiclient.discovery import build_from_document

    endpoint = stack.state.bigquery_endpoint
    answer = httpx.get(f"{endpoint}/$discovery/rest", params={"version": "v2"}, timeout=60)
    assert answer.status_code == 200
    document = answer.json()
    assert (document["id"], document["rootUrl"], document["baseUrl"]) == (
        "bigquery:v2", f"{endpoint}/", f"{endpoint}/bigquery/v2/")
    assert "formatOptions.useInt64Timestamp" in document["resources"]["tabledata"]["methods"]["list"]["parameters"]
    assert httpx.get(f"{endpoint}/discovery/v1/apis/bigquery/v2/rest", timeout=60).json()["rootUrl"] == f"{endpoint}/"
    assert httpx.get(f"{endpoint}/$discovery/rest", params={"version": "v3"}, timeout=60).status_code == 404

    import httplib2

    api = build_from_document(document, http=httplib2.Http())
    datasets = api.datasets().list(projectId=stack.project).execute()
    assert stack.resolved.pipeline.dataset in [d["datasetReference"]["datasetId"] for d in datasets["datasets"]]


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


def _table(stack, schema):
    import uuid

    from google.cloud import bigquery

    table_id = f"{stack.project}.{stack.resolved.pipeline.dataset}.t_{uuid.uuid4().hex[:8]}"
    stack.clients.bigquery.create_table(bigquery.Table(table_id, schema=[bigquery.SchemaField(*f) for f in schema]))
    return table_id


def test_a_count_not_yet_written_when_bigquery_is_killed_is_counted_again_at_start(stack):
    """Counts are written to the catalog table at most once a second: the rows of a kill's last second are in the
    table but not in its written count, and the start after the kill counts them."""
    import os
    import signal
    import time

    from ltmctl.local import processes
    from ltmctl.local import stack as local_stack

    client = stack.clients.bigquery
    table_id = _table(stack, [("n", "INT64")])
    time.sleep(1.2)  # the next insert writes the counts (more than a second since the last write) ...
    assert client.insert_rows_json(table_id, [{"n": 1}, {"n": 2}]) == []
    assert client.insert_rows_json(table_id, [{"n": 3}]) == []  # ... and this one, right after, leaves its count
    assert client.get_table(table_id).num_rows == 3

    piece = local_stack.read_state(stack.resolved).pieces["bigquery"]
    os.kill(piece.proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while processes.alive(piece.proc):
        assert time.monotonic() < deadline, "bigquery outlived SIGKILL"
        time.sleep(0.05)
    local_stack.restart_piece(stack.resolved, "bigquery")

    assert client.get_table(table_id).num_rows == 3
    assert sorted(r.n for r in client.query_and_wait(f"SELECT n FROM `{table_id}`")) == [1, 2, 3]
    client.delete_table(table_id)


def test_inserts_at_once_are_all_counted(stack):
    """Each insert adds its rows to the count the insert before it left, however they overlap."""
    from concurrent.futures import ThreadPoolExecutor

    client = stack.clients.bigquery
    table_id = _table(stack, [("n", "INT64"), ("s", "STRING")])
    wide = "x" * 20_000  # requests of about 2 MB: each arrives in many reads, so the requests overlap

    def insert(k: int) -> list:
        return client.insert_rows_json(table_id, [{"n": k * 100 + i, "s": wide} for i in range(100)])

    with ThreadPoolExecutor(12) as pool:
        assert list(pool.map(insert, range(24))) == [[]] * 24
    assert client.get_table(table_id).num_rows == 2400
    assert next(iter(client.query_and_wait(f"SELECT COUNT(DISTINCT n) AS c FROM `{table_id}`"))).c == 2400
    client.delete_table(table_id)


def test_insert_all_answers_as_bigquery_does_for_bad_rows_geography_and_a_missing_table(stack):
    import httpx
    from google.api_core.exceptions import NotFound

    client = stack.clients.bigquery
    table_id = _table(stack, [("n", "INT64"), ("s", "STRING")])
    mixed = [{"n": 1, "s": "a"}, {"n": "not a number"}, {"n": 3}]
    errors = client.insert_rows_json(table_id, mixed, skip_invalid_rows=True)
    assert [e["index"] for e in errors] == [1]
    assert sorted(r.n for r in client.query_and_wait(f"SELECT n FROM `{table_id}`")) == [1, 3]
    assert client.get_table(table_id).num_rows == 2
    client.delete_table(table_id)

    places = _table(stack, [("name", "STRING"), ("at", "GEOGRAPHY")])  # bqemulator's own route: WKT goes in parsed
    assert client.insert_rows_json(places, [{"name": "origin", "at": "POINT(1 2)"}]) == []
    row = next(iter(client.query_and_wait(f"SELECT name, ST_X(at) AS x, ST_Y(at) AS y FROM `{places}`")))
    assert (row.name, row.x, row.y) == ("origin", 1.0, 2.0)
    client.delete_table(places)

    with pytest.raises(NotFound):
        client.insert_rows_json(table_id, [{"n": 1}])
    answer = httpx.post(f"{stack.state.bigquery_endpoint}/bigquery/v2/projects/{stack.project}/datasets/"
                        f"{stack.resolved.pipeline.dataset}/tables/nowhere/insertAll", json={"rows": []})
    assert answer.status_code == 404 and answer.json()["error"]["status"] == "NOT_FOUND"


def test_middleware_that_would_do_nothing_is_left_out():
    """The access log (it writes at info) and bqemulator's own counters (served nowhere with metrics off) are each
    a BaseHTTPMiddleware layer costing every request; they stay only when they would do something."""
    code = """
from types import SimpleNamespace
from starlette.applications import Starlette
from bqemulator import server
from bqemulator.api.middleware import (AccessLogMiddleware, CorrelationIdMiddleware, GzipRequestMiddleware,
                                       MetricsMiddleware)

def bqemulators_layers(context):  # the four layers bqemulator's create_app adds, in its order
    app = Starlette()
    app.add_middleware(MetricsMiddleware, metrics=None)
    for layer in (AccessLogMiddleware, CorrelationIdMiddleware, GzipRequestMiddleware):
        app.add_middleware(layer)
    return app

server.create_app = bqemulators_layers
from ltmctl.local.bigquery_main import _idle_layers_left_out
_idle_layers_left_out()
for level, metrics in [("warning", False), ("error", True), ("info", False), ("debug", True)]:
    app = server.create_app(SimpleNamespace(settings=SimpleNamespace(log_level=level, metrics_enabled=metrics)))
    print("layers:", level, metrics, [m.cls.__name__.removesuffix("Middleware") for m in app.user_middleware])
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert [line.removeprefix("layers: ") for line in result.stdout.splitlines() if line.startswith("layers: ")] == [
        "warning False ['GzipRequest', 'CorrelationId']",
        "error True ['GzipRequest', 'CorrelationId', 'Metrics']",
        "info False ['GzipRequest', 'CorrelationId', 'AccessLog']",
        "debug True ['GzipRequest', 'CorrelationId', 'AccessLog', 'Metrics']",
    ], result.stderr


def test_the_stacks_bigquery_serves_no_counters_of_its_own(stack):
    import httpx

    assert httpx.get(f"{stack.state.bigquery_endpoint}/metrics").status_code == 404
    assert httpx.get(f"{stack.state.bigquery_endpoint}/healthz").status_code == 200
