"""Metrics count exactly what was sent; log lines are what Cloud Logging reads."""

from __future__ import annotations

import io
import re
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api_service.app import create_app
from api_service.logs import trace_fields
from api_service.settings import Settings
from ltmctl.local.processes import free_ports
from tests.api_service.support import Api, Keys, event_row, unique

GET_DATA = "/get_data/{action_id}:{user_email}"
APP_INFO = "/app_info/{app_id}:{app_department}"


def _samples(api: Api) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = api.get("/metrics", auth=False)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def test_metrics_count_exactly_the_requests_sent(make_api, insert) -> None:
    api = make_api()  # a fresh app: its registry starts empty
    action = unique("m")
    insert([event_row(action_id=action)])
    for _ in range(3):
        api.get(f"/get_data/{action}:someone@example.com")  # 1 miss, 2 hits
    api.get(f"/get_data/{unique('none')}:someone@example.com")  # 404
    api.get("/get_data/bad value:someone@example.com")  # 422
    api.get("/app_info/app-1:sales", auth=False)  # 401
    api.get("/nowhere")

    samples = _samples(api)

    def requests(route: str, status: str) -> float:
        return samples.get(("ltm_api_requests_total", (("route", route), ("status_class", status))), 0)

    assert (requests(GET_DATA, "2xx"), requests(GET_DATA, "4xx"), requests(GET_DATA, "5xx")) == (3, 2, 0)
    assert (requests(APP_INFO, "2xx"), requests(APP_INFO, "4xx")) == (0, 1)
    assert requests("unmatched", "4xx") == 1
    assert samples[("ltm_api_request_duration_seconds_count", (("route", GET_DATA),))] == 5
    assert samples[("ltm_api_cache_lookups_total", (("result", "hit"), ("route", GET_DATA)))] == 2
    assert samples[("ltm_api_cache_lookups_total", (("result", "miss"), ("route", GET_DATA)))] == 2
    labels = {dict(labels).get("route") for _, labels in samples}
    assert not any(label and "someone" in label for label in labels)  # path values never become labels


def test_two_apps_keep_separate_counts(make_api) -> None:
    one, two = make_api(), make_api()
    one.get("/healthz", auth=False)
    assert ("ltm_api_requests_total", (("route", "/healthz"), ("status_class", "2xx"))) not in _samples(two)


def test_one_json_line_per_request_in_cloud_logging_shape(api: Api, insert) -> None:
    action = unique("log")
    insert([event_row(action_id=action)])
    trace = "105445aa7843bc8bf206b12000100000"
    api.get(f"/get_data/{action}:someone@example.com?limit=5",
            headers={"X-Cloud-Trace-Context": f"{trace}/1;o=1", "User-Agent": "probe/1.0",
                     "X-Forwarded-For": "203.0.113.9, 10.0.0.1"})
    api.get("/get_data/x:y", auth=False)
    api.get("/healthz", auth=False)

    ok, refused, health = api.log_lines()
    request = ok["httpRequest"]
    assert ok["severity"] == "INFO" and ok["message"] == f"GET {GET_DATA} 200"
    assert request["requestMethod"] == "GET" and request["status"] == 200
    assert request["requestUrl"].endswith(f"/get_data/{action}:someone@example.com?limit=5")
    assert re.fullmatch(r"\d+\.\d{6}s", request["latency"])
    # the rightmost entry is what Cloud Run's front end appended; the first is whatever the client wrote
    assert (request["userAgent"], request["remoteIp"]) == ("probe/1.0", "10.0.0.1")
    assert ok["logging.googleapis.com/trace"] == f"projects/ltm-test/traces/{trace}"
    assert ok["logging.googleapis.com/spanId"] == "1" and ok["logging.googleapis.com/trace_sampled"] is True
    assert ok["email"] == "reader@example.com" and ok["cache"] == "miss" and ok["route"] == GET_DATA
    assert refused["severity"] == "WARNING" and refused["httpRequest"]["status"] == 401
    assert health["severity"] == "INFO" and "logging.googleapis.com/trace" not in health


def test_backend_failures_are_503_and_logged_as_errors(make_api) -> None:
    api = make_api(table="no_such_table")
    response = api.get("/get_data/a:b@c.co")
    assert response.status_code == 503 and response.json()["error"] == "backend_unavailable"
    line = api.log_lines()[-1]
    assert line["severity"] == "ERROR" and "NotFound" in line["message"]


def test_trace_headers() -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    assert trace_fields("p", None, f"00-{trace}-00f067aa0ba902b7-01") == {
        "logging.googleapis.com/trace": f"projects/p/traces/{trace}",
        "logging.googleapis.com/trace_sampled": True, "logging.googleapis.com/spanId": "00f067aa0ba902b7"}
    assert trace_fields("p", trace, None)["logging.googleapis.com/trace_sampled"] is False
    assert trace_fields("p", "not-a-trace\n{}", "garbage") == {}


@pytest.mark.timeout(60)
def test_bigquery_that_does_not_answer_in_time_gives_504(settings: Settings, keys: Keys) -> None:
    """A BigQuery that accepts the request and answers nothing within the query timeout: the client's retry gives up
    on reads that timed out, which is the query taking too long (504), not BigQuery being unavailable (503)."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))  # accepts (the kernel's backlog) and never answers
    try:
        endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
        app = create_app(replace(settings, bigquery_endpoint=endpoint, query_timeout_s=1), log_stream=io.StringIO())
        with TestClient(app, raise_server_exceptions=False) as client:
            data = client.get("/get_data/a:b@c.co", headers=keys.headers())
    finally:
        listener.close()
    assert data.status_code == 504 and data.json()["error"] == "timeout"


@pytest.mark.timeout(60)  # the library's own retry would wait 10 minutes; ours must give up within seconds
def test_unreachable_bigquery_gives_503_quickly(settings: Settings, keys: Keys) -> None:
    closed = free_ports(1)[0]  # nothing listens there
    app = create_app(replace(settings, bigquery_endpoint=f"http://127.0.0.1:{closed}", query_timeout_s=1),
                     log_stream=io.StringIO())
    with TestClient(app, raise_server_exceptions=False) as client:
        ready = client.get("/readyz")
        data = client.get("/get_data/a:b@c.co", headers=keys.headers())
    assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
    assert data.status_code in (503, 504) and data.json()["error"] in ("backend_unavailable", "timeout")
