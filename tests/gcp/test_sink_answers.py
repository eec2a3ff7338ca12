"""The sink reads every per-row answer of a streaming insert as BigQuery gives it, against the strict fake: a row
refused for several reasons names them all, and a row BigQuery did not store for a passing reason (`stopped`, a
per-row `backendError`) is to be retried, never dead-lettered, while the rest of its request is stored."""

from __future__ import annotations

from ingest_fn.sink import BigQuerySink
from ltmctl.gcp.fake.bigquery import BigQueryApi
from tests.gcp.runtime_support import EVENT, api_client, stored_rows
from tests.gcp.support import INGEST_SA, PROJECT

TABLE = f"{PROJECT}.ltm.events"


def _row(n: int, **extra) -> dict:
    return {**EVENT, "event_id": f"ev-{n}", "message_id": f"m-{n}", "publish_time": "2025-01-02T03:04:06Z", **extra}


def test_a_row_refused_for_two_reasons_names_both(provisioned):
    client = api_client(provisioned, INGEST_SA)
    result = BigQuerySink(client, TABLE).insert([_row(1, colour="red", size=3), _row(2)])
    assert result.refused == {0: "no such field: colour.; no such field: size."}
    assert result.unstored == []
    assert [r["event_id"] for r in stored_rows(provisioned)] == ["ev-2"]


def test_a_row_not_stored_for_a_passing_reason_is_retried_and_the_rest_are_stored(provisioned):
    provisioned.api(BigQueryApi).row_faults["ev-2"] = "backendError"
    client = api_client(provisioned, INGEST_SA)
    result = BigQuerySink(client, TABLE).insert([_row(1), _row(2), _row(3, colour="red")])
    assert result.unstored == [1]
    assert set(result.refused) == {2}
    assert [r["event_id"] for r in stored_rows(provisioned)] == ["ev-1"]
