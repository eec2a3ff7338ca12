"""Helpers for the API tests: a local IAP key pair, a hand-moved clock, an app wrapper, event rows."""

from __future__ import annotations

import gzip
import io
import json
import threading
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from api_service import iap_local
from api_service.iap import HEADER

AUDIENCE = "/projects/123456789/global/backendServices/987654321"
READER = "reader@example.com"

# Path values an attacker or a broken client might send: SQL fragments, quotes, 10 kB strings, unicode,
# encoded slashes and NULs, empty parts. Every one must get a 4xx, never a 5xx.
HOSTILE = [
    "' OR 1=1 --:a@b.co", "a:' OR '1'='1'@b.co", "a:x@b.co' OR 1=1 --", "a\";DROP TABLE events;--:a@b.co",
    "a:a@b.co%27%20OR%201%3D1", "`ltm-test.ltm.events`:a@b.co", "a:" + "x" * 10_000 + "@b.co",
    "x" * 10_000 + ":a@b.co", "ação:a@b.co", "a:usér@exämple.co", "a:😀@b.co", "a:a@b.co%00",
    "a%2Fb:a@b.co", "a:a%2Fb@c.co", "a:a@b.co%2F", "a%00:a@b.co", "..%2F..%2Fhealthz:a@b.co", ":",
    "::", "a::b@c.co", "a:a@b.co:", "%3A:a@b.co", "a:%40@b.co", "a:a@b.co?limit=0", "a:a@b.co#x",
    "a:a@b.co/", "a%5C:a@b.co", "a:a@b.co%0d%0aX-Injected: 1", "a:@", "a:a@.", "%ZZ:a@b.co", "a:%FF@b.co",
]


@dataclass(frozen=True)
class Keys:
    private_pem: bytes
    private_path: Path
    jwks_path: Path
    kid: str

    def token(self, email: str | None = READER, **claims: Any) -> str:
        return iap_local.mint(self.private_pem, self.kid, claims.pop("audience", AUDIENCE), email, **claims)

    def headers(self, **claims: Any) -> dict[str, str]:
        return {HEADER: self.token(**claims)}


class Clock:
    """A clock the test moves by hand, so TTL expiry needs no sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Api:
    client: TestClient
    clock: Clock
    log: io.StringIO
    keys: Keys

    def get(self, path: str, auth: bool = True, **kwargs: Any) -> Any:
        headers = {**(self.keys.headers() if auth else {}), **kwargs.pop("headers", {})}
        return self.client.get(path, headers=headers, **kwargs)

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.getvalue().splitlines()]


def unique(prefix: str) -> str:
    """An id no other test uses: the table is shared by the whole session."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_row(*, action_id: str, user_email: str = "someone@example.com", app_id: str = "app-1",
              app_department: str = "sales", age: timedelta = timedelta(minutes=5), event_id: str | None = None,
              payload: dict[str, Any] | None = None, source: str | None = "app") -> dict[str, Any]:
    """A row as the ingest function would store it, `age` before now (inside the look-back window)."""
    now = datetime.now(UTC)
    return {
        "event_id": event_id or str(uuid.uuid4()), "action_id": action_id, "user_email": user_email.lower(),
        "app_id": app_id, "app_department": app_department, "source": source, "event_time": _ts(now - age),
        "payload": json.dumps(payload if payload is not None else {"n": 1}), "message_id": unique("msg"),
        "publish_time": _ts(now - age + timedelta(seconds=1)), "ingest_time": _ts(now),
        "attributes": json.dumps({"origin": "test"}),
    }


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: Any  # the decoded JSON body, or None


class RecordingProxy:
    """Loopback HTTP in front of bqemulator that keeps every request it forwards: what the API's own BigQuery
    client really sends (query text, parameters, maximumBytesBilled), seen on the wire rather than inside it."""

    def __init__(self, upstream: str) -> None:
        self.requests: list[Request] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                data = gzip.decompress(raw) if self.headers.get("Content-Encoding") == "gzip" else raw
                outer.requests.append(Request(self.command, self.path, json.loads(data) if data else None))
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "content-length", "connection", "accept-encoding")}
                request = urllib.request.Request(upstream + self.path, data=raw or None, headers=headers,
                                                 method=self.command)
                try:
                    with urllib.request.urlopen(request, timeout=60) as answer:
                        status, reply, kind = answer.status, answer.read(), answer.headers.get("Content-Type")
                except urllib.error.HTTPError as exc:
                    status, reply, kind = exc.code, exc.read(), exc.headers.get("Content-Type")
                self.send_response(status)
                self.send_header("Content-Type", kind or "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def queries(self) -> list[dict[str, Any]]:
        """The bodies of the jobs.query and jobs.insert requests, in order."""
        return [r.body for r in self.requests if r.method == "POST" and r.path.split("?")[0].endswith(
            ("/queries", "/jobs"))]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
