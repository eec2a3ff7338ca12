"""decode(): golden Pub/Sub push envelopes to rows or rejections (pure functions, no services needed)."""

import base64
import json

import pytest

from ingest_fn.contract import MAX_EVENT_BYTES, EventValidator
from ingest_fn.decode import Message, Rejection, decode

VALID = {"event_id": "0b6f0c1e-1", "action_id": "login", "user_email": "Ana.Perez@Example.COM",
         "app_id": "crm", "app_department": "sales", "source": "web",
         "event_time": "2026-11-30T07:00:00.123+02:00", "payload": {"ip": "10.0.0.1", "n": [1, 2]}}


def push(data: bytes, **attributes) -> Message:
    envelope = {"message": {"data": base64.b64encode(data).decode(), "messageId": "1234",
                            "publishTime": "2026-11-30T05:00:01.5Z", "attributes": attributes},
                "subscription": "projects/p/subscriptions/s"}
    return Message.from_push(envelope["message"])


@pytest.fixture(scope="module")
def validator():
    return EventValidator()


def test_valid_event_becomes_a_row(validator):
    row = decode(push(json.dumps(VALID).encode(), origin="iot-gw"), validator, MAX_EVENT_BYTES)
    assert row["event_id"] == "0b6f0c1e-1"
    assert row["user_email"] == "ana.perez@example.com"
    assert row["event_time"] == "2026-11-30T05:00:00.123000Z"  # normalised to UTC
    assert row["publish_time"] == "2026-11-30T05:00:01.500000Z"
    assert json.loads(row["payload"]) == VALID["payload"]
    assert json.loads(row["attributes"]) == {"origin": "iot-gw"}
    assert row["message_id"] == "1234"
    assert row["source"] == "web"


def test_event_id_defaults_to_the_message_id(validator):
    event = {k: v for k, v in VALID.items() if k != "event_id"}
    assert decode(push(json.dumps(event).encode()), validator, MAX_EVENT_BYTES)["event_id"] == "1234"


@pytest.mark.parametrize(("data", "error", "detail"), [
    (b"{not json", "not_json", "line 1 column 2"),
    (b"\xc3\x28", "not_utf8", "byte 0"),
    (b"[1, 2]", "schema", "(event): [1, 2] is not of type 'object'"),
    (json.dumps({**VALID, "user_email": "nobody"}).encode(), "schema", "user_email: does not match"),
    (json.dumps({**VALID, "action_id": "x'; DROP TABLE events; --"}).encode(), "schema", "action_id"),
    (json.dumps({**VALID, "event_time": "2026-13-01T00:00:00Z"}).encode(), "schema", "event_time: not a valid"),
    (json.dumps({**VALID, "event_time": "yesterday"}).encode(), "schema", "event_time"),
    (json.dumps({**VALID, "extra": 1}).encode(), "schema", "'extra' was unexpected"),
    (json.dumps({k: v for k, v in VALID.items() if k != "app_id"}).encode(), "schema", "app_id: required"),
    (json.dumps({**VALID, "source": "fax"}).encode(), "schema", "source"),
])
def test_bad_events_are_rejected_with_a_reason(validator, data, error, detail):
    outcome = decode(push(data), validator, MAX_EVENT_BYTES)
    assert isinstance(outcome, Rejection)
    assert outcome.error == error
    assert detail in outcome.detail


def test_too_large_is_checked_before_parsing(validator):
    big = json.dumps({**VALID, "payload": {"blob": "x" * MAX_EVENT_BYTES}}).encode()
    outcome = decode(push(big), validator, MAX_EVENT_BYTES)
    assert outcome.error == "too_large"
    assert str(MAX_EVENT_BYTES) in outcome.detail


# Issue 12 item 8: every message that can never be stored is a Rejection with its reason, never an exception
# (which made functions-framework answer 500 until the delivery attempts ran out, with no reason recorded).
@pytest.mark.parametrize(("data", "error", "detail"), [
    (json.dumps({**VALID, "event_time": "0001-01-01T00:00:00+01:00"}).encode(), "schema",
     "event_time: outside the range"),
    (json.dumps({**VALID, "payload": {"deep": "X"}}).replace('"X"', "[" * 100_000 + "]" * 100_000).encode(),
     "schema", "nested deeper than"),
    (b'{"payload": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "schema", "nested deeper than"),
    (json.dumps({**VALID, "payload": {"s": "\ud800"}}).encode(), "schema", "lone surrogate"),
    (json.dumps({**VALID, "payload": {"n": "X"}}).replace('"X"', "NaN").encode(), "not_json", "not valid JSON: NaN"),
    (json.dumps({**VALID, "payload": {"n": 1}}).replace('"n": 1', '"n": ' + "9" * 5000).encode(), "schema",
     "digits"),
])
def test_messages_that_used_to_raise_are_rejected_with_a_reason(validator, data, error, detail):
    outcome = decode(push(data), validator, MAX_EVENT_BYTES)
    assert isinstance(outcome, Rejection), outcome
    assert outcome.error == error and detail in outcome.detail


def test_every_problem_of_an_event_is_named_in_one_reason(validator):
    event = {**{k: v for k, v in VALID.items() if k != "app_id"}, "user_email": "nobody"}
    problems = validator.problems(event)
    assert len(problems) == 2
    outcome = decode(push(json.dumps(event).encode()), validator, MAX_EVENT_BYTES)
    assert outcome == Rejection("schema", f"{problems[0]}; {problems[1]}")


def test_times_are_utc_whatever_the_machines_time_zone(validator, monkeypatch):
    import time

    monkeypatch.setenv("TZ", "Asia/Kolkata")  # +05:30, no daylight saving: a local time no UTC reading matches
    time.tzset()
    try:
        row = decode(push(json.dumps(VALID).encode()), validator, MAX_EVENT_BYTES)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert row["event_time"] == "2026-11-30T05:00:00.123000Z"
    assert row["publish_time"] == "2026-11-30T05:00:01.500000Z"


@pytest.mark.parametrize(("raw", "data"), [
    ("not base64!!", b"not base64!!"),  # kept as sent, so the dead letter carries what the producer published
    ("{\"a\": 1}", b"{\"a\": 1}"),
    ("x\udcff", b"x\xff"),  # a lone surrogate (undecodable bytes) back to its byte
    ("aGk=!", b"aGk=!"),  # base64 with a stray character is not read as the base64 around it ("hi")
])
def test_data_that_is_no_base64_is_kept_as_its_bytes(raw, data):
    assert Message.from_push({"data": raw, "messageId": "m"}).data == data


def test_the_snake_case_ids_of_pushs_body_are_read_too():
    message = Message.from_push({"data": "", "message_id": "m-7", "publish_time": "2026-11-30T05:00:01Z"})
    assert (message.message_id, message.publish_time) == ("m-7", "2026-11-30T05:00:01Z")
    assert Message.from_push({}).message_id == ""


def test_a_message_without_attributes_stores_null_not_an_empty_object(validator):
    row = decode(push(json.dumps(VALID).encode()), validator, MAX_EVENT_BYTES)
    assert row["attributes"] is None


@pytest.mark.parametrize(("sent", "stored"), [
    ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000000Z"),  # the contract's first instant
    ("0999-06-01T12:00:00.5-01:00", "0999-06-01T13:00:00.500000Z"),
    ("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999Z"),  # its last
])
def test_every_year_the_contract_accepts_is_written_with_four_digits(validator, sent, stored):
    # BigQuery reads a TIMESTAMP's year as four digits: "1-01-01T..." (what glibc's strftime writes for year 1)
    # is no timestamp it stores.
    row = decode(push(json.dumps({**VALID, "event_time": sent}).encode()), validator, MAX_EVENT_BYTES)
    assert row["event_time"] == stored


def test_a_message_without_a_publish_time_is_stored_with_the_time_it_was_decoded(validator):
    from datetime import UTC, datetime

    before = datetime.now(UTC)
    message = Message.from_push({"data": base64.b64encode(json.dumps(VALID).encode()).decode(), "messageId": "9"})
    row = decode(message, validator, MAX_EVENT_BYTES)
    assert isinstance(row, dict), row
    stored = datetime.fromisoformat(row["publish_time"].replace("Z", "+00:00"))
    assert before <= stored <= datetime.now(UTC)
