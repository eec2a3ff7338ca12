"""The local stack's server for the ingest function gives a CloudEvent function what functions-framework gives it:
the same event for the same request, and the same answer. Each request is sent to both: functions-framework's own
app (Flask, its test client) and ltmctl.local.ingest_server on a loopback port."""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from ltmctl.local.processes import free_ports

FUNCTION = '''
import json, os
import functions_framework

@functions_framework.cloud_event
def record(event):
    with open(os.environ["LTM_TEST_SEEN"], "a") as seen:
        seen.write(json.dumps({"attributes": dict(event.get_attributes()), "data": event.data}, sort_keys=True) + "\\n")
    if isinstance(event.data, dict) and (event.data.get("message") or {}).get("attributes", {}).get("fail"):
        raise RuntimeError("asked to fail")
'''


def _push(**extra_message) -> bytes:
    message = {"data": base64.b64encode(b'{"a": 1}').decode(), "messageId": "m-1", "message_id": "m-1",
               "publishTime": "2026-12-01T10:00:00.123Z", "publish_time": "2026-12-01T10:00:00.123Z",
               "attributes": {"k": "v"}, **extra_message}
    return json.dumps({"message": message, "subscription": "projects/p/subscriptions/s",
                       "deliveryAttempt": 2}).encode()


JSON = {"Content-Type": "application/json"}
CASES = [
    ("push", "POST", "/", JSON, _push()),
    ("push with an ordering key, on a topic path", "POST", "/projects/p/topics/t", JSON, _push(orderingKey="o")),
    ("push the function fails on", "POST", "/", JSON, _push(attributes={"fail": "1"})),
    ("a binary-mode CloudEvent", "POST", "/", {**JSON, "ce-specversion": "1.0", "ce-id": "e-1", "ce-source": "//x/y",
                                               "ce-type": "t.t", "ce-time": "2026-12-01T10:00:00Z"}, b'{"x": 2}'),
    ("a structured-mode CloudEvent", "POST", "/", {"Content-Type": "application/cloudevents+json"},
     b'{"specversion": "1.0", "id": "e-2", "source": "//x/y", "type": "t.t", "time": "2026-12-01T10:00:00Z", '
     b'"data": {"x": 3}}'),
    ("a structured-mode CloudEvent sent as plain JSON", "POST", "/", JSON,
     b'{"specversion": "1.0", "id": "e-3", "source": "//x/y", "type": "t.t", "time": "2026-12-01T10:00:00Z", '
     b'"data": {"x": 4}}'),
    ("JSON naming an unknown specversion", "POST", "/", JSON, b'{"specversion": "0.1", "id": "e-4"}'),
    ("JSON that is no event", "POST", "/", JSON, b'{"foo": 1}'),
    ("a body that is not JSON", "POST", "/", JSON, b"{not json"),
    ("a push without a JSON content type", "POST", "/", {"Content-Type": "text/plain"}, _push()),
    ("GET", "GET", "/", {}, b""),
]


@pytest.fixture
def both(tmp_path, monkeypatch):
    """(functions-framework's test client, (host, port) of ingest_server, the file each records events in)."""
    from functions_framework import create_app

    from ltmctl.local import ingest_server

    source = tmp_path / "main.py"
    source.write_text(FUNCTION)
    seen = {"ff": tmp_path / "seen-ff", "ours": tmp_path / "seen-ours"}
    monkeypatch.setenv("LTM_TEST_SEEN", str(seen["ff"]))
    flask_app = create_app("record", str(source), "cloudevent")
    function = ingest_server.load_function("record", str(source), "cloudevent")
    server = ingest_server.serve(ingest_server.App(function, threads=4), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield flask_app.test_client(), server.server_address, seen
    finally:
        server.shutdown()
        server.server_close()


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.parametrize("name, method, path, headers, body", CASES, ids=[c[0] for c in CASES])
def test_the_function_sees_the_same_event_and_the_request_gets_the_same_answer(both, monkeypatch, name, method,
                                                                                path, headers, body):
    client, (host, port), seen = both
    monkeypatch.setenv("LTM_TEST_SEEN", str(seen["ff"]))
    expected = client.open(path, method=method, headers=headers, data=body)
    monkeypatch.setenv("LTM_TEST_SEEN", str(seen["ours"]))
    connection = http.client.HTTPConnection(host, port, timeout=10)
    connection.request(method, path, body=body or None, headers=headers)
    got = connection.getresponse()
    got_body = got.read()
    connection.close()

    assert got.status == expected.status_code, (got_body, expected.data)
    assert got.getheader("X-Google-Status") == expected.headers.get("X-Google-Status")
    if expected.status_code == 200:
        assert got_body == expected.data == b"OK"
    assert _lines(seen["ours"]) == _lines(seen["ff"])
    if name.startswith("push"):
        (event,) = [json.loads(line) for line in _lines(seen["ours"])]
        assert event["attributes"]["id"] == "m-1" and event["data"]["message"]["attributes"]


def test_a_connection_is_kept_for_many_requests_and_chunked_bodies_are_read(both):
    _, (host, port), seen = both
    connection = http.client.HTTPConnection(host, port, timeout=10)
    for i in range(3):
        body = _push(messageId=f"m-{i}")
        if i == 1:  # chunked, as a client that streams its body sends it
            connection.request("POST", "/", body=iter([body[:10], body[10:]]), headers=JSON, encode_chunked=True)
        else:
            connection.request("POST", "/", body=body, headers=JSON)
        response = connection.getresponse()
        assert (response.status, response.read(), response.will_close) == (200, b"OK", False)
    connection.close()
    assert [json.loads(line)["attributes"]["id"] for line in _lines(seen["ff"])] == ["m-0", "m-1", "m-2"]


def test_threads_bound_the_requests_in_the_function_at_once(tmp_path, monkeypatch):
    """THREADS (functions-framework's variable) is how many requests the function runs at once."""
    from ltmctl.local import ingest_server

    inside, most, release = [0], [0], threading.Event()
    lock = threading.Lock()

    def slow(_event):
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        release.wait(10)
        with lock:
            inside[0] -= 1

    server = ingest_server.serve(ingest_server.App(slow, threads=3), "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    statuses = []

    def post():
        connection = http.client.HTTPConnection(*server.server_address, timeout=20)
        connection.request("POST", "/", body=_push(), headers=JSON)
        statuses.append(connection.getresponse().status)
        connection.close()

    posts = [threading.Thread(target=post) for _ in range(6)]
    for p in posts:
        p.start()
    try:
        for _ in range(200):
            with lock:
                if inside[0] == 3:
                    break
            threading.Event().wait(0.01)
        threading.Event().wait(0.2)  # had the bound not held, the other three would be inside by now
        with lock:
            assert inside[0] == 3
    finally:
        release.set()
        for p in posts:
            p.join(20)
        server.shutdown()
        server.server_close()
    assert statuses == [200] * 6 and most[0] == 3


def _start(tmp_path: Path, source: Path, port: int, target: str = "record", **env: str) -> subprocess.Popen:
    """`python -m ltmctl.local.ingest_server` serving `target` from source, once it answers (GET: 405)."""
    server = subprocess.Popen([sys.executable, "-m", "ltmctl.local.ingest_server", "--target", target,
                               "--signature-type", "cloudevent", "--source", str(source), "--host", "127.0.0.1",
                               "--port", str(port)], env={**os.environ, "LTM_TEST_SEEN": str(tmp_path / "seen"), **env})
    deadline = time.monotonic() + 30
    while True:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/")
            assert connection.getresponse().status == 405
            connection.close()
            return server
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, "the server never answered"
            time.sleep(0.1)


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"  # dead, not yet reaped
    except FileNotFoundError:
        return True


def _wait_gone(pid: int, within_s: float, failure: str) -> None:
    deadline = time.monotonic() + within_s
    while not _gone(pid):
        assert time.monotonic() < deadline, failure
        time.sleep(0.05)


def _stop(server: subprocess.Popen, workers: list[int]) -> None:
    if server.poll() is None:
        server.kill()
        server.wait(10)
    for pid in workers:  # a worker left behind when the behaviour is broken
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def test_the_worker_ends_with_the_process_that_started_it(tmp_path):
    """The stack watches and kills the pid it started; a worker left behind would go on taking deliveries."""
    source = tmp_path / "main.py"
    source.write_text(FUNCTION)
    parent, workers = _start(tmp_path, source, free_ports(1)[0]), []
    try:
        workers = _children(parent.pid)
        assert len(workers) == 1
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        _wait_gone(workers[0], 5, "the worker outlived its parent")
    finally:
        _stop(parent, workers)


COUNTING = FUNCTION + '''
import time
from prometheus_client import CollectorRegistry, Counter

REGISTRY = CollectorRegistry()
CALLS = Counter("ltm_test_calls", "Events the function saw.", registry=REGISTRY)


@functions_framework.cloud_event
def count(event):
    with open(os.environ["LTM_TEST_SEEN"], "a") as seen:
        seen.write(f"{os.getpid()}\\n")
    CALLS.inc()
    time.sleep(0.02)
'''


def test_workers_share_the_port_and_one_endpoint_serves_the_sum_of_their_counters(tmp_path):
    """WORKERS=2: two processes, each with its own copy of the function (a Cloud Run instance each), take the
    connections of one port; their counters are kept in files and the server's own endpoint on LTM_METRICS_PORT
    serves the sum. When one worker dies, the server stops the other and exits, so the stack sees it down."""
    source = tmp_path / "main.py"
    source.write_text(COUNTING)
    port, metrics_port = free_ports(2)
    server = _start(tmp_path, source, port, "count", WORKERS="2", THREADS="4", LTM_METRICS_PORT=str(metrics_port),
                    PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "counters"))
    workers: list[int] = []
    try:
        workers = _children(server.pid)
        assert len(workers) == 2
        requests, statuses = 64, []

        def post(n: int) -> None:
            for _ in range(n):  # a connection per request: each is taken by whichever worker accepts first
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
                connection.request("POST", "/", body=_push(), headers={**JSON, "Connection": "close"})
                statuses.append(connection.getresponse().status)
                connection.close()

        posts = [threading.Thread(target=post, args=(requests // 8,)) for _ in range(8)]
        for thread in posts:
            thread.start()
        for thread in posts:
            thread.join(60)
        assert statuses == [200] * requests
        served_by = [int(line) for line in (tmp_path / "seen").read_text().split()]
        assert len(served_by) == requests and set(served_by) == set(workers)
        exposition = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
        assert f"ltm_test_calls_total {float(requests)}" in exposition.splitlines()
        assert sorted(p.name for p in (tmp_path / "counters").glob("counter_*.db")) == sorted(
            f"counter_{pid}.db" for pid in [server.pid, *workers])

        os.kill(workers[0], signal.SIGKILL)
        assert server.wait(10) == 128 + signal.SIGKILL  # the worker's end, as a shell reports a killed process
        _wait_gone(workers[1], 10, "the other worker outlived the first")
    finally:
        _stop(server, workers)


def test_sigterm_stops_every_worker_and_the_server_exits_0(tmp_path):
    """`local down` sends SIGTERM: each worker finishes what it holds and exits, then the server does, with 0. Run
    by hand (no PROMETHEUS_MULTIPROC_DIR), it keeps the counters in a temporary directory and removes it."""
    source = tmp_path / "main.py"
    source.write_text(COUNTING)
    (tmp_path / "tmp").mkdir()
    port, metrics_port = free_ports(2)
    environment = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "environ", {**environment, "TMPDIR": str(tmp_path / "tmp")})
        server = _start(tmp_path, source, port, "count", WORKERS="3", LTM_METRICS_PORT=str(metrics_port))
    workers: list[int] = []
    try:
        workers = _children(server.pid)
        assert len(workers) == 3
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        connection.request("POST", "/", body=_push(), headers=JSON)
        assert connection.getresponse().status == 200
        connection.close()
        exposition = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
        assert "ltm_test_calls_total 1.0" in exposition.splitlines()
        (counters,) = (tmp_path / "tmp").iterdir()
        assert counters.name.startswith("ltm-ingest-metrics-") and any(counters.glob("counter_*.db"))

        server.send_signal(signal.SIGTERM)
        assert server.wait(10) == 0
        assert all(_gone(pid) for pid in workers)
        assert list((tmp_path / "tmp").iterdir()) == []
    finally:
        _stop(server, workers)
