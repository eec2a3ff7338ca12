"""Helpers for the API tests: a local IAP key pair, a hand-moved clock, an app wrapper, event rows."""

from __future__ import annotations

import io
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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
