"""The delivery's own HTTP/1.1 connection: it reads every way an answer may end, keeps the connection only when the
server does, and a kept-alive connection the server closed is retried once on a new one."""

from __future__ import annotations

import socketserver
import threading

import pytest

from ltmctl.local.delivery import Delivery, PushConnection

ANSWERS = {
    "length": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK",
    "chunked": b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    "close": b"HTTP/1.1 204 No Content\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    "http10": b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end",
}


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def server():
    """Answers each POST with ANSWERS[path]; records each request's body; closes after one request on /once."""
    bodies: list[bytes] = []

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            while True:
                line = self.rfile.readline()
                if not line:
                    return
                path = line.split()[1].decode().strip("/")
                length = 0
                while (header := self.rfile.readline()) not in (b"\r\n", b""):
                    name, _, value = header.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                bodies.append(self.rfile.read(length))
                self.wfile.write(ANSWERS[path.removesuffix("-once")])
                if path.endswith("-once") or path in ("close", "http10"):
                    return

    srv = _Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield srv.server_address[1], bodies
    srv.shutdown()
    srv.server_close()


def _head(path: str) -> bytes:
    return f"POST /{path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n".encode()


@pytest.mark.parametrize("path, expected", [("length", (200, True)), ("chunked", (500, True)),
                                            ("close", (204, False)), ("http10", (200, False))])
def test_every_way_an_answer_ends_is_read_and_the_connection_kept_only_if_the_server_keeps_it(server, path,
                                                                                              expected):
    port, bodies = server
    connection = PushConnection("127.0.0.1", port, _head(path))
    try:
        assert connection.post(b'{"n":1}') == expected
        if expected[1]:  # the answer was read to its end: the next request on the connection gets its own
            assert connection.post(b'{"n":2}') == expected
    finally:
        connection.close()
    assert bodies == [b'{"n":1}', b'{"n":2}'][: 2 if expected[1] else 1]


def test_a_kept_alive_connection_the_server_closed_is_retried_once_on_a_new_one(server):
    port, bodies = server
    delivery = Delivery(subscriber=None, subscription="projects/p/subscriptions/s",
                        endpoint=f"http://127.0.0.1:{port}/length-once", concurrency=1, ack_deadline_s=60,
                        max_backoff_s=10)
    status, connection = delivery._post(b"first", None)
    assert status == 200 and connection is not None  # the server said nothing of closing: kept
    status, connection = delivery._post(b"second", connection)  # the server closed it after the first
    assert status == 200
    assert bodies == [b"first", b"second"]
    assert delivery.figures.last_error == ""
    connection.close()
