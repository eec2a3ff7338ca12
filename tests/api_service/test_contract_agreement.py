"""One definition of valid (issue 12 item 7): for every path value, the contract check, the API's path rules and
BigQuery agree. A value the contract accepts is routed by the API and an event carrying it is stored and read back
unchanged; a value it refuses is refused by the API too (422, or the router's 404 for a '/')."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest

from ingest_fn.contract import MAX_EVENT_BYTES, EventValidator
from ingest_fn.decode import Message, Rejection, decode
from tests.api_service.support import Api

# Values at the edges of each rule: trailing and embedded newlines, '/', other characters a URL must escape,
# case, length limits, non-ASCII.
IDS = ["login", "a", "A.b-c_9", "x" * 128, "x" * 129, "login\n", "log\nin", "\nlogin", "log/in", "-login",
       "log in", "lögin", "login%2F", "login?", ""]
EMAILS = ["ana@example.com", "Ana.Perez@Example.COM", "a+tag@x.io", "o'hara@x.io", "a%b@x.io", "a?b#c@x.io",
          "a:b@x.io", "a\\b@x.io", "~!$&*=^`{|}@x.io", "ana@example.com\n", "a/b@example.com", "ana@exa/mple.com",
          "añа@example.com", "a b@x.io", "a@b", "@x.io", "a@@x.io", "a" * 245 + "@example.com",
          "a" * 250 + "@x.io", "\x7f@x.io"]
CASES = [("action_id", v) for v in IDS] + [("app_department", v) for v in IDS] + \
        [("user_email", v) for v in EMAILS]


def _event(field: str, value: str) -> dict:
    base = {"event_id": str(uuid.uuid4()), "action_id": f"agree-{uuid.uuid4().hex[:10]}",
            "user_email": "agree@example.com", "app_id": "agree", "app_department": f"d-{uuid.uuid4().hex[:10]}",
            "event_time": (datetime.now(UTC) - timedelta(minutes=3)).isoformat(), "payload": {"v": value}}
    return {**base, field: value}


def _path(event: dict, field: str) -> str:
    if field == "app_department":
        first, second, route = event["app_id"], event["app_department"], "app_info"
    else:
        first, second, route = event["action_id"], event["user_email"], "get_data"
    return f"/{route}/{quote(first, safe='')}:{quote(second, safe='@')}"


def _routed(response) -> bool:
    """The API took the value: an answer from the route itself (200, or its own 404 naming the key)."""
    if response.status_code == 200:
        return True
    return response.status_code == 404 and str(response.json().get("detail", "")).startswith("no events")


@pytest.fixture(scope="module")
def validator() -> EventValidator:
    return EventValidator()


def _case_id(n: int, field: str, value: str) -> str:
    """Plain ASCII and unique: an id that carries escapes or non-ASCII cannot name its test again in every runner."""
    shown = "".join(c if c.isascii() and (c.isalnum() or c in "._@+-") else "_" for c in value)[:24]
    return f"{field}-{n}-{shown}"


@pytest.mark.parametrize(("field", "value"), CASES, ids=[_case_id(n, f, v) for n, (f, v) in enumerate(CASES)])
def test_contract_api_and_bigquery_agree(api: Api, insert, validator, field: str, value: str) -> None:
    event = _event(field, value)
    data = json.dumps(event).encode()
    message = Message.from_push({"data": base64.b64encode(data).decode(), "messageId": uuid.uuid4().hex,
                                 "publishTime": datetime.now(UTC).isoformat()})
    row = decode(message, validator, MAX_EVENT_BYTES)
    if isinstance(row, Rejection):  # refused by the contract: the API must refuse the value too
        response = api.get(_path(event, field))
        assert not _routed(response), (response.status_code, response.text)
        return
    insert([row])  # BigQuery stores what the contract accepted ...
    response = api.get(_path(event, field))
    assert response.status_code == 200, response.text  # ... and the API routes it and reads it back unchanged
    body = response.json()
    stored = body["events"][0] if field != "app_department" else None
    if stored is not None:
        assert stored["event_id"] == event["event_id"]
        assert stored["payload"] == {"v": value}
        assert stored["user_email"] == event["user_email"].lower()
        assert stored[field] == (value.lower() if field == "user_email" else value)
    else:
        assert (body["app_department"], body["events"]) == (value, 1)
