"""`ltmctl logs` in a gcp environment: google-cloud-logging's HTTP client against the fake's entries:list."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ltmctl.gcp.fake import FakeGcp
from ltmctl.gcp.fake.logging import LoggingApi
from ltmctl.gcp.fake.server import quota_exceeded
from ltmctl.logs import cloud_logging as logs_gcp
from tests.gcp.support import PROJECT

T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
LIST_PATH = "^/v2/entries:list$"


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def run_entry(service: str, when: datetime, severity: str | None = "INFO", *, message: str | None = None,
              http: dict[str, Any] | None = None, text: str | None = None, **fields: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "logName": f"projects/{PROJECT}/logs/run.googleapis.com%2Fstdout",
        "resource": {"type": "cloud_run_revision",
                     "labels": {"project_id": PROJECT, "service_name": service, "revision_name": f"{service}-r1",
                                "location": "us-central1", "configuration_name": service}},
        "timestamp": iso(when)}
    if severity:
        entry["severity"] = severity  # Google leaves DEFAULT out
    if text is not None:
        entry["textPayload"] = text
    else:
        entry["jsonPayload"] = {"message": message or "", **fields}
    if http:
        entry["httpRequest"] = http
    return entry


def request(status: int, path: str, latency: str = "0.012300s") -> dict[str, Any]:
    return {"requestMethod": "GET", "requestUrl": f"https://ltm-api-xyz.a.run.app{path}", "status": status,
            "latency": latency, "responseSize": "123"}


@pytest.fixture
def logging_api(fake: FakeGcp) -> LoggingApi:
    fake.enable("logging.googleapis.com")
    api = fake.api(LoggingApi)
    add = api.add_entry
    add(run_entry("ltm-api", T0 - timedelta(hours=2), message="too old"))
    add(run_entry("ltm-api", T0 + timedelta(seconds=1), "WARNING", message="GET /get_data 401",
                  http=request(401, "/get_data/a:b@c.io"), route="/get_data/{action_id}:{user_email}"))
    add(run_entry("ltm-ingest", T0 + timedelta(seconds=2), "ERROR", message="insert failed", error="unavailable"))
    add(run_entry("other-service", T0 + timedelta(seconds=3), "ERROR", message="not ours"))
    add(run_entry("ltm-api", T0 + timedelta(seconds=4), None, text="Uvicorn running on http://0.0.0.0:8000"))
    return api


def lines(result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_entries_of_both_services_oldest_first_with_the_right_filter(ltmctl, fake, logging_api):
    got = lines(ltmctl("logs", "-o", "json", "--since", "2026-11-29T10:00:00Z"))
    assert [(e["service"], e["severity"], e["message"]) for e in got] == [
        ("api", "WARNING", "GET /get_data 401"), ("ingest", "ERROR", "insert failed"),
        ("api", "DEFAULT", "Uvicorn running on http://0.0.0.0:8000")]
    # The JSON entry is the line the service wrote: Cloud Logging's httpRequest put back next to the payload.
    assert got[0]["entry"]["httpRequest"]["status"] == 401 and got[0]["time"] == "2026-11-29T10:00:01+00:00"
    assert got[1]["entry"] == {"message": "insert failed", "error": "unavailable"}
    (sent,) = fake.find("POST", LIST_PATH)
    assert sent.body["resourceNames"] == [f"projects/{PROJECT}"]
    assert sent.body["orderBy"] == "timestamp asc"
    assert sent.body["filter"] == ('resource.type="cloud_run_revision" AND (resource.labels.service_name="ltm-api" '
                                   'OR resource.labels.service_name="ltm-ingest") AND '
                                   'timestamp>="2026-11-29T10:00:00.000000Z"')


def test_one_service_and_a_minimum_severity(ltmctl, fake, logging_api):
    got = lines(ltmctl("logs", "api", "-o", "json", "--since", "2026-11-29T09:00:00Z", "--severity", "warning"))
    assert [e["message"] for e in got] == ["GET /get_data 401"]
    (sent,) = fake.find("POST", LIST_PATH)
    assert sent.body["filter"] == ('resource.type="cloud_run_revision" AND resource.labels.service_name="ltm-api" '
                                   'AND timestamp>="2026-11-29T09:00:00.000000Z" AND severity>=WARNING')


def test_text_lines_show_method_path_status_and_latency(ltmctl, logging_api):
    result = ltmctl("logs", "--since", "2026-11-29T10:00:00Z")
    assert result.exit_code == 0, result.output
    shown = result.stdout.splitlines()
    assert "WARNING  api    GET /get_data/a:b@c.io 401 12.3 ms" in shown[0]
    assert 'ERROR    ingest insert failed {"error": "unavailable"}' in shown[1]
    assert "not ours" not in result.stdout and "too old" not in result.stdout


def test_every_page_is_read(ltmctl, fake):
    fake.enable("logging.googleapis.com")
    api = fake.api(LoggingApi)
    for i in range(120):
        api.add_entry(run_entry("ltm-api", T0 + timedelta(milliseconds=i), message=f"line {i}"))
    got = lines(ltmctl("logs", "-o", "json", "--since", "2026-11-29T10:00:00Z"))
    assert [e["message"] for e in got] == [f"line {i}" for i in range(120)]
    assert len(fake.find("POST", LIST_PATH)) == 3  # the fake answers 50 per page


def test_follow_shows_each_new_entry_once_including_late_arrivals(fake, logging_api):
    from google.cloud import logging as cloud_logging
    from google.oauth2.credentials import Credentials

    client = cloud_logging.Client(project=PROJECT, credentials=Credentials(fake.token_for(fake.owner)), _use_grpc=False,
                                  client_options={"api_endpoint": fake.endpoint})
    polls: list[int] = []

    def sleep(_: float) -> None:
        polls.append(len(polls))
        if len(polls) == 1:
            logging_api.add_entry(run_entry("ltm-api", T0 + timedelta(seconds=60), message="new"))
        if len(polls) == 2:
            # Written before "new" but received after it was shown: still inside the look-back, shown once.
            logging_api.add_entry(run_entry("ltm-ingest", T0 + timedelta(seconds=45), message="late"))

    entries = logs_gcp.read(client, PROJECT, {"ltm-api": "api", "ltm-ingest": "ingest"}, since=T0, follow=True,
                            poll_s=0.0, stop=lambda: len(polls) >= 3, sleep=sleep)
    messages = [e.message for e in entries]
    assert messages == ["GET /get_data 401", "insert failed", "Uvicorn running on http://0.0.0.0:8000", "new",
                        "late"]
    bounds = [r.body["filter"].split('timestamp>="')[1].split('"')[0] for r in fake.find("POST", LIST_PATH)]
    # The lower bound moves up to the newest entry seen, less the look-back for late arrivals.
    assert bounds == [iso(T0), iso(T0), iso(T0 + timedelta(seconds=60 - logs_gcp.LATE_S)),
                      iso(T0 + timedelta(seconds=60 - logs_gcp.LATE_S))]


def test_follow_rides_out_a_read_quota_error(fake, logging_api):
    from google.cloud import logging as cloud_logging
    from google.oauth2.credentials import Credentials

    client = cloud_logging.Client(project=PROJECT, credentials=Credentials(fake.token_for(fake.owner)), _use_grpc=False,
                                  client_options={"api_endpoint": fake.endpoint})
    fake.fail(LIST_PATH, quota_exceeded("logging.googleapis.com", "logging.googleapis.com/read_requests",
                                        "ReadRequestsPerMinutePerProject"), times=1)
    waits: list[float] = []
    entries = list(logs_gcp.read(client, PROJECT, {"ltm-api": "api"}, since=T0, follow=True, poll_s=0.0,
                                 stop=lambda: True, sleep=waits.append))
    assert [e.message for e in entries] == ["GET /get_data 401", "Uvicorn running on http://0.0.0.0:8000"]
    assert waits == [logs_gcp.BACKOFF_S]


def test_logs_follow_shows_an_entry_written_after_it_started(config_path, fake, logging_api):
    script = shutil.which("ltmctl", path=str(Path(sys.executable).parent)) or "ltmctl"
    proc = subprocess.Popen([script, "--config", str(config_path), "--env", "dev", "logs", "--follow", "-o", "json",
                             "--since", "2026-11-29T10:00:00Z"], stdout=subprocess.PIPE, text=True,
                            env={**os.environ})
    try:
        first = json.loads(proc.stdout.readline())
        assert first["message"] == "GET /get_data 401"
        logging_api.add_entry(run_entry("ltm-api", datetime.now(UTC), "ERROR", message="after start",
                                        http=request(500, "/app_info/x:y")))
        deadline = time.monotonic() + 30
        found = None
        while found is None and time.monotonic() < deadline:
            line = json.loads(proc.stdout.readline())
            if line["message"] == "after start":
                found = line
        assert found is not None and found["service"] == "api" and found["entry"]["httpRequest"]["status"] == 500
    finally:
        proc.terminate()
        proc.wait(10)


def test_disabled_logging_api_says_how_to_enable_it(ltmctl):
    result = ltmctl("logs", "--since", "10m")
    assert result.exit_code == 4
    assert "gcloud services enable logging.googleapis.com" in " ".join(result.output.split())


def test_the_fakes_filter_grammar():
    from ltmctl.gcp.fake.filters import Filter
    from ltmctl.gcp.fake.server import ApiError

    record = {"resource.type": "cloud_run_revision", "resource.labels.service_name": "ltm-api", "severity": 400}
    convert = {"severity": lambda v: {"INFO": 200, "WARNING": 400, "ERROR": 500}[v]}

    def ok(text: str) -> bool:
        return Filter(text).matches(record.get, lambda f, v: convert.get(f, lambda x: x)(v))

    assert ok('resource.type="cloud_run_revision" resource.labels.service_name=("ltm-ingest" OR "ltm-api")')
    assert ok('(resource.labels.service_name="x" OR resource.labels.service_name="ltm-api") AND severity>=WARNING')
    assert not ok('resource.type="cloud_run_revision" AND severity>=ERROR')
    assert ok('NOT resource.labels.service_name="other" AND resource.labels.service_name:"api"')
    for broken in ('resource.type="x" AND', 'resource.type=', '(resource.type="x"', 'resource.type "x"'):
        with pytest.raises(ApiError):
            Filter(broken)
