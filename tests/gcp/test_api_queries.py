"""The API service's queries on Google Cloud, against the strict fake: its own app, its own BigQuery client (built by
its factory, acting as the API's account after `provision`), and IAP assertions it verifies. A cold answer costs one
BigQuery request, `jobs.query` in short-query mode, carrying the byte cap and every value as a named parameter;
identical concurrent cold requests share it; a query over the cap and one that outlives the timeout get the API's
answers for them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api_service import iap_local
from api_service.iap import HEADER
from ltmctl.gcp.fake.bigquery import MIB, BigQueryApi
from tests.gcp.runtime_support import api_client
from tests.gcp.support import API_SA, EVENTS_TABLE, PROJECT

AUDIENCE = "/projects/123456789012/global/backendServices/1"
TABLE = f"{PROJECT}.ltm.events"


@pytest.fixture
def make_app(provisioned, tmp_path) -> Iterator[Callable[..., tuple[Any, dict[str, str], Any]]]:
    """(the API app, a valid IAP header, its settings), on the fake, with settings overridden as asked."""
    from api_service.app import create_app
    from api_service.settings import Settings

    private_path, jwks_path = iap_local.generate_keypair(tmp_path)
    pem = private_path.read_bytes()
    header = {HEADER: iap_local.mint(pem, iap_local.key_id(pem), AUDIENCE, "reader@example.com")}
    base = Settings(project=PROJECT, iap_audience=AUDIENCE, iap_jwks_file=str(jwks_path))
    clients = []

    def make(**overrides: Any) -> tuple[Any, dict[str, str], Any]:
        client = api_client(provisioned, API_SA)  # the service's factory: Google's endpoint swapped for the fake's
        clients.append(client)
        settings = replace(base, **overrides)
        return create_app(settings, bigquery_client=client), header, settings

    yield make
    for client in clients:
        client.close()


def _bigquery(fake) -> list[Any]:
    return [r for r in fake.requests if r.method_id.startswith("bigquery.")]


def _params(request) -> dict[str, str]:
    return {p["name"]: p["parameterValue"]["value"] for p in request.body["queryParameters"]}


def _types(request) -> dict[str, str]:
    return {p["name"]: p["parameterType"]["type"] for p in request.body["queryParameters"]}


def test_a_cold_answer_is_one_jobs_query_with_the_cap_and_the_parameters(provisioned, make_app):
    app, header, settings = make_app()
    with TestClient(app, raise_server_exceptions=False) as http:
        cold = http.get("/get_data/login:Ana@Example.com?days=7", headers=header)
        sent = _bigquery(provisioned)
        hot = http.get("/get_data/login:Ana@Example.com?days=7", headers=header)
        assert _bigquery(provisioned) == sent  # served from the cache: no request at all
        info = http.get("/app_info/app-1:sales", headers=header)

    assert cold.status_code == 404 and cold.headers["X-Cache"] == "miss"  # the fake evaluates no such SQL: no rows
    assert hot.headers["X-Cache"] == "hit"
    assert info.status_code == 404
    # No jobs.insert, no jobs.get, no getQueryResults polling: one request per cold answer.
    first, second = _bigquery(provisioned)
    assert [first.method_id, second.method_id] == ["bigquery.jobs.query"] * 2
    assert first.status == second.status == 200 and first.principal == API_SA
    for request in (first, second):
        body = request.body
        assert body["jobCreationMode"] == "JOB_CREATION_OPTIONAL"
        assert body["maximumBytesBilled"] == str(settings.max_bytes_billed)
        assert body["useLegacySql"] is False and body["parameterMode"] == "NAMED"
        # BigQuery holds the answer at most half the API's timeout: the other half is for polling a job it makes.
        assert 0 < body["timeoutMs"] <= settings.query_timeout_s * 1000 / 2
        assert f"`{TABLE}`" in body["query"]
    assert _params(first) == {"action_id": "login", "user_email": "ana@example.com", "days": "7", "limit": "100",
                              "max_answer_bytes": str(settings.max_answer_bytes)}
    assert _params(second) == {"app_id": "app-1", "app_department": "sales", "days": str(settings.lookback_days),
                               "top": "5"}
    assert _types(first) == {"action_id": "STRING", "user_email": "STRING", "days": "INT64", "limit": "INT64",
                             "max_answer_bytes": "INT64"}
    assert _types(second) == {"app_id": "STRING", "app_department": "STRING", "days": "INT64", "top": "INT64"}
    assert provisioned.api(BigQueryApi).jobs == {}  # short-query mode: BigQuery created no job


def test_rows_come_back_inline_from_the_one_request(provisioned):
    """The rows of a short query are in jobs.query's answer itself; the client reads them without a second call."""
    from api_service import queries

    row = {"action_id": "login", "user_email": "ana@example.com", "app_id": "app-1", "app_department": "sales",
           "event_time": "2025-01-02T03:04:05Z", "publish_time": "2025-01-02T03:04:06Z", "message_id": "m"}
    provisioned.api(BigQueryApi).rows[EVENTS_TABLE] = [{"insertId": f"e{i}", "json": {**row, "event_id": f"e{i}"}}
                                                       for i in range(3)]
    client = api_client(provisioned, API_SA)
    try:
        config = queries._job_config([("action_id", "STRING", "login")], 10**10)
        rows = list(queries._run(client, f"SELECT * FROM `{TABLE}` WHERE action_id = @action_id", config, 5.0))
    finally:
        client.close()
    assert sorted(r["event_id"] for r in rows) == ["e0", "e1", "e2"]
    assert [r.method_id for r in _bigquery(provisioned)] == ["bigquery.jobs.query"]


def test_identical_concurrent_cold_requests_share_one_jobs_query(provisioned, make_app):
    # Each query runs 0.5 s, so all requests arrive while the first of each key is in flight; with no cache at all,
    # only the single flight can let them share it.
    provisioned.api(BigQueryApi).query_s = 0.5
    app, header, _ = make_app(cache_ttl_s=0, cache_not_found_ttl_s=0)
    paths = [f"/get_data/{'a' if i % 2 else 'b'}:ana@example.com" for i in range(16)]

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
            return await asyncio.gather(*(http.get(p, headers=header) for p in paths))

    responses = asyncio.run(run())
    assert [r.status_code for r in responses] == [404] * 16
    assert [r.json()["detail"].split("'")[1] for r in responses] == [p.split("/")[2].split(":")[0] for p in paths]
    sent = _bigquery(provisioned)
    assert [r.method_id for r in sent] == ["bigquery.jobs.query"] * 2  # 16 requests, two keys: two queries
    assert sorted(_params(r)["action_id"] for r in sent) == ["a", "b"]


def test_a_query_whose_job_fails_for_a_passing_reason_is_sent_again(provisioned, make_app):
    """BigQuery answers 400 `jobInternalError` when the job it made of a query fails inside: the request was
    right, so the query is sent again (a new requestId) and the user gets the answer, not a 503."""
    provisioned.api(BigQueryApi).job_faults = ["jobInternalError", "jobRateLimitExceeded"]
    app, header, _ = make_app()
    with TestClient(app, raise_server_exceptions=False) as http:
        response = http.get("/get_data/login:ana@example.com", headers=header)

    assert response.status_code == 404 and response.json()["error"] == "not_found"
    sent = _bigquery(provisioned)
    assert [(r.method_id, r.status) for r in sent] == [("bigquery.jobs.query", 400)] * 2 + [
        ("bigquery.jobs.query", 200)]
    assert [r.error["errors"][0]["reason"] for r in sent[:2]] == ["jobInternalError", "jobRateLimitExceeded"]
    assert len({r.body["requestId"] for r in sent}) == 3
    assert all(_params(r) == _params(sent[0]) for r in sent)


def test_a_query_over_the_byte_cap_is_refused_by_bigquery_and_answered_503(provisioned, make_app):
    # 12 MiB of stored rows: the fake, which prunes nothing, bills them all; the cap is the API's least, 10 MiB.
    provisioned.api(BigQueryApi).rows[EVENTS_TABLE] = [
        {"insertId": f"e{i}", "json": {"event_id": f"e{i}", "payload": "x" * MIB}} for i in range(12)]
    app, header, settings = make_app(max_bytes_billed=10 * MIB)
    with TestClient(app, raise_server_exceptions=False) as http:
        response = http.get("/get_data/login:ana@example.com", headers=header)

    assert response.status_code == 503 and response.json()["error"] == "backend_unavailable"
    (refused,) = _bigquery(provisioned)  # not retried: it would bill the same
    assert refused.method_id == "bigquery.jobs.query" and refused.status == 400
    assert refused.body["maximumBytesBilled"] == str(10 * MIB)
    assert refused.error["errors"][0]["reason"] == "bytesBilledLimitExceeded"
    assert refused.error["message"].startswith(f"Query exceeded limit for bytes billed: {10 * MIB}.")


@pytest.mark.timeout(60)
def test_a_query_that_outlives_the_timeout_is_cancelled_and_answered_504(provisioned, make_app):
    bq = provisioned.api(BigQueryApi)
    bq.query_s = 30.0
    app, header, _ = make_app(query_timeout_s=1.0)
    with TestClient(app, raise_server_exceptions=False) as http:
        response = http.get("/get_data/login:ana@example.com", headers=header)

    assert response.status_code == 504 and response.json()["error"] == "timeout"
    sent = _bigquery(provisioned)
    assert sent[0].method_id == "bigquery.jobs.query" and sent[0].status == 200
    # BigQuery made a job of the query that did not finish in timeoutMs; the client waited, then cancelled it.
    (job,) = bq.jobs.values()
    assert job["status"]["errorResult"]["reason"] == "stopped"
    assert sent[-1].method_id == "bigquery.jobs.cancel"
    assert {r.method_id for r in sent[1:-1]} <= {"bigquery.jobs.getQueryResults", "bigquery.jobs.get"}
