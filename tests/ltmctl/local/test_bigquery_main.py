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
