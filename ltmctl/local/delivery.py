"""The local stack's push delivery: `python -m ltmctl.local.delivery --subscription PATH --endpoint URL ...`.

On Google Cloud, Pub/Sub pushes each message of the ingest subscription to the ingest service, with up to
instances × concurrency requests in flight. The Pub/Sub emulator pushes with two serial loops per subscription
(one message each, waiting for the answer), which caps the local ingest at a few dozen events per second and
hides how the function batches under load. So locally the subscription is a pull subscription, and this process
does what Pub/Sub's push does: it pulls (synchronous pull: about ten times the messages per second of the
client's streaming pull on this emulator), POSTs each message to the function in the body Google's push sends,
with up to `--concurrency` requests in flight (the concurrency the gcp environment deploys the function with),
acknowledges on 2xx and nacks otherwise, so the emulator's retry backoff and dead-letter policy apply as they do
to a push. Each message's lease is extended while it waits or is in flight, as Pub/Sub holds a push that is
being answered.

It holds at most HOLD_FACTOR × concurrency messages (and HOLD_BYTES), so what it holds but has not yet sent is
the subscription's backlog as far as it reaches: `GET /` answers its figures as JSON (`ltmctl local status`).

Nothing is acknowledged before the function answered 2xx: killed at any moment, every message it held comes back
when its lease runs out (the subscription's ack deadline), and is delivered again.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import queue
import signal
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from ltmctl.text import cut

SERVICE = "ltm-delivery"  # what `GET /` names itself as: the stack's health check tells it from other pieces
HOLD_FACTOR = 4  # messages held (leased) per request slot: the next ones are at hand as soon as a slot frees
HOLD_BYTES = 64 * 1024 * 1024  # and at most this much message data, as the client's flow control bounds it
PULL_WAIT_S = 2.0  # a pull on an empty subscription waits this long for messages (the emulator long-polls)
PULL_BATCH = 100  # the most the emulator returns per pull: refilling in such steps, not one message per freed slot,
# spares both sides a pull request per message (measured: the emulator's and this process's CPU per event halved)
ACK_BATCH = 1000  # ack ids per request
# Acknowledgements wait this long for company: the emulator spends about 1 ms of CPU per acknowledge request
# whatever it carries (measured: 0.34 ms per message acknowledged 5 at a time, 0.13 at 100), and at 20 ms they
# went 6 at a time at 300 events/s. Acknowledging later only keeps answered messages leased a moment longer.
ACK_LINGER_S = 0.1
# Google's push answers are bounded by the ack deadline; here a request that hangs is given up after this long.
REQUEST_TIMEOUT_S = 600.0
MAX_LINE = 65536  # the longest status or header line read from the function
USER_AGENT = "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)"  # what push sends


def push_body(received: Any, subscription: str) -> bytes:
    """The JSON body Pub/Sub's push sends for one received message (a google.pubsub.v1.ReceivedMessage protobuf):
    the message with base64 `data`, `attributes`, `messageId`/`message_id`, `publishTime`/`publish_time`,
    `orderingKey` when set; `deliveryAttempt` when the subscription has a dead-letter policy; `subscription`."""
    m = received.message
    published = m.publish_time.ToJsonString()
    message: dict[str, Any] = {"data": base64.b64encode(m.data).decode("ascii"), "messageId": m.message_id,
                               "message_id": m.message_id, "publishTime": published, "publish_time": published}
    if m.attributes:
        message["attributes"] = dict(m.attributes)
    if m.ordering_key:
        message["orderingKey"] = m.ordering_key
    body: dict[str, Any] = {"message": message, "subscription": subscription}
    if received.delivery_attempt:  # set only under a dead-letter policy, as on Google Cloud
        body["deliveryAttempt"] = received.delivery_attempt
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


class PushConnection:
    """One kept-alive HTTP/1.1 connection to the function, for POSTs of push bodies. http.client spent more of
    this process's CPU on each request (its header objects, the email parser it reads answers with) than the rest
    of the delivery; the requests are all alike, and the answers only need their status and their end."""

    def __init__(self, host: str, port: int, head: bytes) -> None:
        self.sock = socket.create_connection((host, port), timeout=REQUEST_TIMEOUT_S)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rfile = self.sock.makefile("rb")
        self.head = head  # request line and the fixed headers

    def post(self, body: bytes) -> tuple[int, bool]:
        """(the answer's status, whether the server keeps the connection open)."""
        self.sock.sendall(b"%sContent-Length: %d\r\n\r\n%s" % (self.head, len(body), body))
        line = self.rfile.readline(MAX_LINE)
        if not line:
            raise http.client.RemoteDisconnected("Remote end closed connection without response")
        version, _, rest = line.partition(b" ")
        status = int(rest[:3])
        if not version.startswith(b"HTTP/1.") or not 100 <= status <= 599:
            raise http.client.BadStatusLine(line.decode("latin-1"))
        keep, length, chunked = version == b"HTTP/1.1", None, False
        while True:
            header = self.rfile.readline(MAX_LINE)
            if header in (b"\r\n", b"\n", b""):
                break
            name, _, value = header.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection":
                keep = b"keep-alive" in value if version == b"HTTP/1.0" else b"close" not in value
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value
        if chunked:
            while size := int(self.rfile.readline(MAX_LINE).split(b";", 1)[0], 16):
                self.rfile.read(size + 2)
            while self.rfile.readline(MAX_LINE) not in (b"\r\n", b"\n", b""):  # trailers
                pass
        elif length is not None:
            if len(self.rfile.read(length)) < length:
                raise http.client.IncompleteRead(b"")
        else:  # the answer ends where the connection does
            self.rfile.read()
            keep = False
        return status, keep

    def close(self) -> None:
        for closable in (self.rfile, self.sock):
            try:
                closable.close()
            except OSError:
                pass


@dataclass
class Figures:
    """Counters for `local status` and tests; changed under Delivery._lock."""

    pulled: int = 0
    acked: int = 0
    nacked: int = 0
    failed_requests: int = 0  # no HTTP answer at all (refused, reset, timed out): nacked too
    waiting: int = 0  # held, not yet sent
    in_flight: int = 0
    held_bytes: int = 0
    more: bool = False  # the last pull came back with messages: the emulator may hold more than we do
    last_error: str = ""
    last_error_at: float = float("-inf")
    retrying: dict[str, float] = field(default_factory=dict)  # message id -> when it was nacked


class Delivery:
    def __init__(self, subscriber: Any, subscription: str, endpoint: str, concurrency: int, ack_deadline_s: int,
                 max_backoff_s: float) -> None:
        self.subscriber = subscriber
        self.subscription = subscription
        self.endpoint = urlsplit(endpoint)
        self.concurrency = concurrency
        self.ack_deadline_s = ack_deadline_s
        self.max_backoff_s = max_backoff_s
        self.max_held = HOLD_FACTOR * concurrency
        self.pull_batch = max(1, min(PULL_BATCH, self.max_held // 2))
        self.figures = Figures()
        self._lock = threading.Condition()
        self._leases: dict[str, int] = {}  # ack id -> bytes, for every message held (waiting or in flight)
        self._todo: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._answers: deque[tuple[str, bool]] = deque()  # (ack id, acknowledge?) for the acker
        self._answered = threading.Event()
        self._request_head = (f"POST {self.endpoint.path or '/'} HTTP/1.1\r\nHost: {self.endpoint.netloc}\r\n"
                              f"Content-Type: application/json\r\nUser-Agent: {USER_AGENT}\r\n").encode("latin-1")
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- the pieces ------------------------------------------------------------------------------------------

    def start(self) -> None:
        for target, name in [(self._pull_loop, "pull"), (self._ack_loop, "ack"), (self._lease_loop, "lease")]:
            self._threads.append(threading.Thread(target=target, name=f"delivery-{name}", daemon=True))
        for i in range(self.concurrency):
            self._threads.append(threading.Thread(target=self._send_loop, name=f"delivery-send-{i}", daemon=True))
        for thread in self._threads:
            thread.start()

    def _pull_loop(self) -> None:
        from google.api_core import exceptions

        while not self.stopping.is_set():
            with self._lock:
                while not self.stopping.is_set() and (len(self._leases) > self.max_held - self.pull_batch
                                                      or self.figures.held_bytes >= HOLD_BYTES):
                    self._lock.wait(0.5)
                room = self.max_held - len(self._leases)
            if self.stopping.is_set():
                return
            try:
                response = self.subscriber.pull(request={"subscription": self.subscription, "max_messages": room},
                                                timeout=PULL_WAIT_S, retry=None)
            except exceptions.DeadlineExceeded:
                with self._lock:
                    self.figures.more = False
                continue
            except Exception as exc:  # noqa: BLE001 - the emulator restarting, the subscription not yet made
                self._error(f"pull: {exc}")
                self.stopping.wait(0.5)
                continue
            received = response._pb.received_messages  # the protobuf itself: proto-plus wrapping costs per field
            if self.stopping.is_set():  # came back after stop() handed back the rest: hand these back too
                self.release([r.ack_id for r in received])
                return
            with self._lock:
                self.figures.more = len(received) > 0
                self.figures.pulled += len(received)
                self.figures.waiting += len(received)
                for r in received:
                    size = len(r.message.data)
                    self._leases[r.ack_id] = size
                    self.figures.held_bytes += size
            for r in received:
                self._todo.put(r)

    def _send_loop(self) -> None:
        connection: PushConnection | None = None
        while True:
            received = self._todo.get()
            if received is None:
                return
            with self._lock:
                self.figures.waiting -= 1
                self.figures.in_flight += 1
            body = push_body(received, self.subscription)
            status, connection = self._post(body, connection)
            ok = status is not None and 200 <= status < 300
            with self._lock:
                self.figures.in_flight -= 1
                if status is None:
                    self.figures.failed_requests += 1
                message_id = received.message.message_id
                if ok:
                    self.figures.retrying.pop(message_id, None)
                else:
                    self.figures.retrying[message_id] = time.monotonic()
                self._answers.append((received.ack_id, ok))
            self._answered.set()

    def _post(self, body: bytes, connection: PushConnection | None) -> tuple[int | None, PushConnection | None]:
        """(HTTP status or None when nothing answered, the connection to reuse)."""
        for attempt in (1, 2):
            fresh = connection is None
            try:
                if connection is None:
                    connection = PushConnection(self.endpoint.hostname or "127.0.0.1", self.endpoint.port or 80,
                                                self._request_head)
                status, keep = connection.post(body)
                if not keep:
                    connection.close()
                    connection = None
                return status, connection
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                if connection is not None:
                    connection.close()
                connection = None
                # A kept-alive connection the server closed while idle: it never saw the request; send it anew.
                if fresh or attempt == 2:
                    self._error(f"POST {self.endpoint.geturl()}: {exc!r}")
                    return None, None
            except (OSError, ValueError, http.client.HTTPException) as exc:
                if connection is not None:
                    connection.close()
                self._error(f"POST {self.endpoint.geturl()}: {exc!r}")
                return None, None
        return None, None

    def _ack_loop(self) -> None:
        while True:
            self._answered.wait()
            if not self.stopping.is_set():
                time.sleep(ACK_LINGER_S)  # let a few answers come together
            self._answered.clear()
            self.flush()
            if self.stopping.is_set() and not self._answers:
                self._answered.wait(0.05)

    def flush(self) -> None:
        """Send every pending acknowledgement and nack."""
        with self._lock:
            answers, self._answers = list(self._answers), deque()
        if not answers:
            return
        acks = [ack_id for ack_id, ok in answers if ok]
        nacks = [ack_id for ack_id, ok in answers if not ok]
        for start in range(0, len(acks), ACK_BATCH):
            self._call("acknowledge", {"subscription": self.subscription, "ack_ids": acks[start:start + ACK_BATCH]})
        self.release(nacks)
        with self._lock:
            self.figures.acked += len(acks)
            self.figures.nacked += len(nacks)
            for ack_id, _ in answers:
                self.figures.held_bytes -= self._leases.pop(ack_id, 0)
            self._lock.notify_all()

    def release(self, ack_ids: list[str]) -> None:
        """Nack: the message is redelivered after the subscription's retry backoff."""
        for start in range(0, len(ack_ids), ACK_BATCH):
            self._call("modify_ack_deadline", {"subscription": self.subscription,
                                               "ack_ids": ack_ids[start:start + ACK_BATCH], "ack_deadline_seconds": 0})

    def _lease_loop(self) -> None:
        # Renew well before the deadline: a renewal that is a little late costs a redelivery (and a delivery attempt).
        every = max(1.0, self.ack_deadline_s / 3)
        while not self.stopping.wait(every):
            with self._lock:
                held = list(self._leases)
                cutoff = time.monotonic() - self.max_backoff_s - self.ack_deadline_s
                self.figures.retrying = {k: v for k, v in self.figures.retrying.items() if v > cutoff}
            for start in range(0, len(held), ACK_BATCH):
                self._call("modify_ack_deadline", {"subscription": self.subscription,
                                                   "ack_ids": held[start:start + ACK_BATCH],
                                                   "ack_deadline_seconds": self.ack_deadline_s})

    def _call(self, method: str, request: dict[str, Any]) -> None:
        try:
            getattr(self.subscriber, method)(request=request, timeout=30)
        except Exception as exc:  # noqa: BLE001 - an unacknowledged message is redelivered: late, never lost
            self._error(f"{method}: {exc}")

    def _error(self, text: str) -> None:
        with self._lock:
            self.figures.last_error, self.figures.last_error_at = cut(text, 300), time.monotonic()
        sys.stdout.write(json.dumps({"severity": "WARNING", "message": cut(text, 2000)}) + "\n")
        sys.stdout.flush()

    # -- stopping and reporting ------------------------------------------------------------------------------

    def stop(self, grace_s: float) -> None:
        """Stop pulling; hand back what was not sent yet; give requests in flight grace_s to be answered."""
        self.stopping.set()
        unsent = []
        while True:
            try:
                item = self._todo.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                unsent.append(item.ack_id)
        with self._lock:
            self.figures.waiting -= len(unsent)
            for ack_id in unsent:
                self.figures.held_bytes -= self._leases.pop(ack_id, 0)
        self.release(unsent)  # deliverable again at once, to the next delivery process
        for _ in range(self.concurrency):
            self._todo.put(None)
        deadline = time.monotonic() + grace_s
        for thread in self._threads:
            if thread.name.startswith("delivery-send"):
                thread.join(max(0.0, deadline - time.monotonic()))
        self.flush()
        with self._lock:
            left = list(self._leases)
        self.release(left)  # still in flight after the grace: deliverable again (the function may store it twice)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            f = self.figures
            return {"service": SERVICE, "subscription": self.subscription, "endpoint": self.endpoint.geturl(),
                    "concurrency": self.concurrency, "in_flight": f.in_flight, "waiting": f.waiting,
                    "more": f.more or len(self._leases) >= self.max_held, "retrying": len(f.retrying),
                    "pulled": f.pulled, "acked": f.acked, "nacked": f.nacked, "failed_requests": f.failed_requests,
                    # a pull before infra made the subscription is no news a minute later
                    "last_error": f.last_error if time.monotonic() - f.last_error_at < 60 else ""}


def serve_status(delivery: Delivery, port: int) -> ThreadingHTTPServer:
    from ltmctl.local.status_http import serve_json

    def figures(path: str) -> dict[str, Any]:
        answer = delivery.snapshot()
        if path == "/retrying":  # which messages: `local down` counts them once with the emulator's
            with delivery._lock:
                answer["retrying_ids"] = list(delivery.figures.retrying)
        return answer

    return serve_json(port, "delivery-status", figures)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ltmctl.local.delivery", description=__doc__.splitlines()[0])
    parser.add_argument("--subscription", required=True, help="projects/P/subscriptions/S (a pull subscription)")
    parser.add_argument("--endpoint", required=True, help="the ingest function's URL")
    parser.add_argument("--concurrency", type=int, default=80, help="requests in flight at most")
    parser.add_argument("--ack-deadline", type=int, default=60, help="the subscription's ack deadline, seconds")
    parser.add_argument("--max-backoff", type=float, default=600, help="the subscription's maximum retry backoff")
    parser.add_argument("--port", type=int, required=True, help="port of the status endpoint (GET /)")
    parser.add_argument("--stop-grace", type=float, default=3.0, help="seconds in-flight requests get on SIGTERM")
    args = parser.parse_args(argv)
    if not os.environ.get("PUBSUB_EMULATOR_HOST"):
        parser.error("PUBSUB_EMULATOR_HOST must point at the Pub/Sub emulator")

    from google.cloud import pubsub_v1

    delivery = Delivery(pubsub_v1.SubscriberClient(), args.subscription, args.endpoint, args.concurrency,
                        args.ack_deadline, args.max_backoff)
    server = serve_status(delivery, args.port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    delivery.start()
    stop.wait()
    delivery.stop(args.stop_grace)
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
