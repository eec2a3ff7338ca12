"""`ltmctl metrics` and `ltmctl logs` on the real local stack."""

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
from typer.testing import CliRunner

from ltmctl.cli import app
from ltmctl.local.stack import mint_token
from ltmctl.metrics import scrape as metrics_local
from ltmctl.metrics.figures import sparkline

runner = CliRunner()


def ltm(stack, *args):
    return runner.invoke(app, ["--config", str(stack.resolved.path), *args])


def _store(stack, action, user):
    rows = [{"event_id": str(uuid.uuid4()), "action_id": action, "user_email": user, "app_id": "m-app",
             "app_department": "m-dep", "event_time": "2026-11-29T10:00:00Z", "message_id": "m",
             "publish_time": "2026-11-29T10:00:00Z", "ingest_time": "2026-11-29T10:00:00Z"}]
    assert stack.clients.bigquery.insert_rows_json(stack.table_id, rows) == []


def test_metrics_report_exactly_a_known_mix_of_traffic(stack):
    action = f"m-{uuid.uuid4().hex[:8]}"
    _store(stack, action, "m@example.com")
    token = {"x-goog-iap-jwt-assertion": mint_token(stack.resolved, "metrics@example.com", 300)}
    base = stack.state.api_url
    before = json.loads(ltm(stack, "metrics", "-o", "json").stdout)
    with httpx.Client(base_url=base) as client:
        for i in range(40):
            assert client.get(f"/get_data/{action}:m@example.com", params={"days": 365, "limit": 1 + i % 3},
                              headers=token).status_code == 200
        for _ in range(10):
            assert client.get(f"/get_data/{action}:m@example.com").status_code == 401
        for i in range(5):
            assert client.get(f"/app_info/none-{i}:nothing", headers=token).status_code == 404
        for _ in range(5):
            assert client.get("/get_data/bad value:m@example.com", headers=token).status_code == 422
    after = json.loads(ltm(stack, "metrics", "-o", "json").stdout)

    def delta(cls):
        return after["api"]["by_class"].get(cls, 0) - before["api"]["by_class"].get(cls, 0)

    assert after["api"]["requests"] - before["api"]["requests"] == 60
    assert (delta("2xx"), delta("4xx"), delta("5xx")) == (40, 20, 0)
    assert after["api"]["p50_ms"] is not None and after["api"]["p99_ms"] >= after["api"]["p50_ms"]


def test_rates_and_ingest_outcomes_from_the_endpoints(stack):
    assert httpx.get(stack.state.api_url + "/get_data/a:b@c.co").status_code == 401  # at least one 4xx, in any order
    deadline = time.monotonic() + 10  # a request is counted as it is answered, a moment after the client has it
    while (figures := metrics_local.reduce_api(httpx.get(stack.state.api_url + "/metrics").text)).requests < 1:
        assert time.monotonic() < deadline, "the 401 was never counted"
        time.sleep(0.1)
    assert figures.requests == sum(figures.by_class.values())
    assert figures.rate_4xx == figures.by_class.get("4xx", 0) / figures.requests
    marker = uuid.uuid4().hex
    before = metrics_local.reduce_ingest(httpx.get(stack.state.ingest_metrics_url).text)
    futures = [stack.clients.publisher.publish(stack.topic_path, b"not json at all", marker=marker)]
    event = {"action_id": "m", "user_email": "m@example.com", "app_id": "a", "app_department": "d",
             "event_time": "2026-11-29T10:00:00Z"}
    futures += [stack.clients.publisher.publish(stack.topic_path, json.dumps(event).encode()) for _ in range(3)]
    for f in futures:
        f.result(timeout=30)
    deadline = time.monotonic() + 60
    while True:
        after = metrics_local.reduce_ingest(httpx.get(stack.state.ingest_metrics_url).text)
        if after.received - before.received >= 4 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert after.stored - before.stored == 3
    assert after.dead_lettered - before.dead_lettered == 1
    assert after.dead_letters_by_error["not_json"] - before.dead_letters_by_error.get("not_json", 0) == 1
    table = ltm(stack, "metrics")
    assert table.exit_code == 0 and "api latency p99" in table.stdout and "ingest stored" in table.stdout


def test_sparkline_and_slo_rows():
    assert sparkline([1, 2, 3, None, 8]) == "▁▂▃ █"
    slow = metrics_local.Snapshot(10.0, metrics_local.ApiFigures(requests=10, by_class={"5xx": 1}, p99=(0.5, 1.0)),
                                  None)
    rows = {r.name: r for r in metrics_local.rows(slow, None, 0.0, type("S", (), {"latency_p99_ms": 500,
                                                                                  "error_rate": 0.01})())}
    # The bucket (500, 1000] ms is all over the 500 ms objective; its upper bound is shown, marked as a bound.
    assert rows["api latency p99"].status == "breach"
    assert (rows["api latency p99"].value, rows["api latency p99"].estimate) == (1000.0, "bucket upper bound")
    assert rows["api 5xx rate"].status == "breach" and rows["api 5xx rate"].value == 0.1
    assert rows["api requests/s"].value == 1.0


def _read_until(proc, text: str, timeout_s: float = 30.0) -> dict | None:
    """The first line of proc's output holding text, as JSON; None if none came in time (readline blocks, so a
    timer ends the wait by stopping the process)."""
    timer = threading.Timer(timeout_s, proc.terminate)
    timer.start()
    try:
        for line in proc.stdout:
            if text in line:
                return json.loads(line)
        return None
    finally:
        timer.cancel()


def test_logs_follow_shows_a_line_written_after_it_started(stack):
    script = shutil.which("ltmctl", path=str(Path(sys.executable).parent)) or "ltmctl"
    before, after = (f"follow-{uuid.uuid4().hex[:8]}" for _ in range(2))
    httpx.get(stack.state.api_url + f"/get_data/x:y@z.io?{before}=1")
    proc = subprocess.Popen([script, "--config", str(stack.resolved.path), "logs", "api", "--follow", "-o", "json",
                             "--since", "1m"], stdout=subprocess.PIPE, text=True, env={**os.environ})
    try:
        assert _read_until(proc, before) is not None  # it is reading: the line from before it started came out
        httpx.get(stack.state.api_url + f"/get_data/x:y@z.io?{after}=1")
        found = _read_until(proc, after)
        assert found is not None
        assert found["service"] == "api" and found["severity"] == "WARNING"
        assert found["entry"]["httpRequest"]["status"] == 401
    finally:
        proc.terminate()
        proc.wait(10)


def test_logs_filters_by_severity_and_since(stack):
    # Its own lines, so it holds alone and in any order: a 401 is logged as a WARNING, /healthz as INFO.
    warned, fine = (f"sev-{uuid.uuid4().hex[:8]}" for _ in range(2))
    httpx.get(stack.state.api_url + f"/get_data/x:y@z.io?{warned}=1")
    httpx.get(stack.state.api_url + f"/healthz?{fine}=1")
    deadline = time.monotonic() + 30
    while True:
        everything = ltm(stack, "logs", "all", "-o", "json")
        assert everything.exit_code == 0
        if warned in everything.stdout and fine in everything.stdout:
            break
        assert time.monotonic() < deadline, "the two requests were never logged"
        time.sleep(0.2)
    entries = [json.loads(line) for line in everything.stdout.splitlines()]
    assert {e["service"] for e in entries} <= {"api", "ingest"}
    shown = ltm(stack, "logs", "--severity", "warning", "-o", "json").stdout
    warnings = [json.loads(line) for line in shown.splitlines()]
    assert all(e["severity"] in ("WARNING", "ERROR", "CRITICAL") for e in warnings)
    assert warned in shown and fine not in shown
    assert ltm(stack, "logs", "--since", "2999-01-01T00:00:00Z", "-o", "json").stdout == ""
    assert ltm(stack, "logs", "--since", "yesterday").exit_code == 2
    assert ltm(stack, "logs", "nothing").exit_code == 2


def test_png_of_the_local_figures_is_a_valid_image(stack, tmp_path):
    out = tmp_path / "metrics.png"
    result = ltm(stack, "metrics", "--png", str(out))
    assert result.exit_code == 0, result.output
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(out) as image:
        assert image.width > 100 and image.height > 100
