"""The local stack's server for the ingest function gives a CloudEvent function what functions-framework gives it:
the same event for the same request, and the same answer. Each request is sent to both: functions-framework's own
app (Flask, its test client) and ltmctl.local.ingest_server on a loopback port."""

from __future__ import annotations

import base64
import http.client
import json
import threading
from pathlib import Path

import pytest

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


def test_the_worker_ends_with_the_process_that_started_it(tmp_path):
    """The stack watches and kills the pid it started; a worker left behind would go on taking deliveries."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    source = tmp_path / "main.py"
    source.write_text(FUNCTION)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    parent = subprocess.Popen([sys.executable, "-m", "ltmctl.local.ingest_server", "--target", "record",
                               "--signature-type", "cloudevent", "--source", str(source), "--host", "127.0.0.1",
                               "--port", str(port)], env={**os.environ, "LTM_TEST_SEEN": str(tmp_path / "seen")})
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/")
                assert connection.getresponse().status == 405
                connection.close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the server never answered"
                time.sleep(0.1)
        children = Path(f"/proc/{parent.pid}/task/{parent.pid}/children").read_text().split()
        (worker,) = [int(pid) for pid in children]
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 5
        while True:
            try:
                if Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                    break  # dead, not yet reaped by whoever inherited it
            except FileNotFoundError:
                break
            assert time.monotonic() < deadline, "the worker outlived its parent"
            time.sleep(0.05)
    finally:
        if parent.poll() is None:
            parent.kill()
        for pid in locals().get("children", []):  # a worker left behind when the behaviour is broken
            try:
                os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass
