"""Property (DESIGN §5, "one definition of valid"), on the real local stack: any event the contract accepts is
stored and readable through the API unchanged; any it refuses is dead-lettered with its reason.

Events are drawn from config/contract/event.schema.json: every field by hypothesis-jsonschema from its own
subschema (its pattern, length and enum), put together by the schema's `required`/`properties`; payloads are any
JSON within the stated limits. (hypothesis-jsonschema 0.23.1 cannot draw whole objects under hypothesis 6.170,
whose internals it calls, hence the assembly here.) Some are then broken one way or another. The verdict each
one should get is the contract's own (ingest's decode with the shared validator); the property is that the running
pipeline — Pub/Sub emulator, ingest function, bqemulator, API — honours it, message by message.

Examples are batches of messages published together, so a bad one meets good ones in the same group commit.
Profile `contract-e2e`: LTM_PROPERTY_EXAMPLES examples (default 10) of up to 6 messages, no per-example deadline.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from ingest_fn.contract import MAX_EVENT_BYTES, EventValidator, event_schema, limits
from ingest_fn.decode import Message, Rejection, decode

settings.register_profile(
    "contract-e2e", max_examples=int(os.environ.get("LTM_PROPERTY_EXAMPLES", "10")), deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large])

SCHEMA = event_schema()
LIMITS = limits()
FIELDS = {name: from_schema(sub) for name, sub in SCHEMA["properties"].items() if name not in ("payload",
                                                                                              "event_time")}
SCALARS = (st.none() | st.booleans() | st.integers(LIMITS.min_integer, LIMITS.max_integer)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                            max_size=3),
                    max_leaves=12)
OFFSETS = st.sampled_from(["Z", "z", "+00:00", "-03:30", "+14:00"])


@st.composite
def recent_time(draw) -> str:
    """Inside the API's look-back window, so what is stored can be read back; the full range has unit tests."""
    moment = datetime.now(UTC) - timedelta(seconds=draw(st.integers(60, 300 * 86400)),
                                           microseconds=draw(st.integers(0, 999_999)))
    offset = draw(OFFSETS)
    zone = UTC if offset in ("Z", "z") else datetime.strptime(offset, "%z").tzinfo
    text = moment.astimezone(zone).isoformat()
    return text.replace("+00:00", offset) if offset in ("Z", "z") else text


@st.composite
def event(draw) -> dict:
    required = [n for n in SCHEMA["required"] if n in FIELDS]
    optional = [n for n in FIELDS if n not in SCHEMA["required"]]
    drawn = draw(st.fixed_dictionaries({n: FIELDS[n] for n in required},
                                       optional={n: FIELDS[n] for n in optional}))
    drawn["event_time"] = draw(recent_time())
    if "event_id" in drawn:  # unique, so read-time de-duplication never merges two examples' events
        drawn["event_id"] = f"{drawn['event_id'][:90]}-{uuid.uuid4().hex}"
    if draw(st.booleans()):
        drawn["payload"] = draw(st.dictionaries(st.text(max_size=6), JSON, max_size=4))
    return drawn


def _deep(levels: int) -> dict:
    value: dict = {}
    for _ in range(levels - 1):
        value = {"d": value}
    return value


BREAKS = [
    lambda e, v: {**e, "action_id": v},
    lambda e, v: {**e, "user_email": v},
    lambda e, v: {k: x for k, x in e.items() if k != "app_id"},
    lambda e, v: {**e, "unknown": v},
    lambda e, v: {**e, "payload": {"s": "\ud800"}},
    lambda e, v: {**e, "payload": _deep(LIMITS.max_payload_depth + 1)},
    lambda e, v: {**e, "payload": {"n": LIMITS.max_integer + 1}},
    lambda e, v: {**e, "payload": [v]},
    lambda e, v: {**e, "event_time": "0001-01-01T00:00:00+01:00"},
    lambda e, v: {**e, "event_time": v},
    lambda e, v: {**e, "action_id": e["action_id"] + "\n"},
]


@st.composite
def message(draw) -> bytes:
    base = draw(event())
    kind = draw(st.integers(0, len(BREAKS) + 3))
    if kind >= len(BREAKS) + 2:  # most messages are valid
        return json.dumps(base, ensure_ascii=draw(st.booleans())).encode()
    if kind == len(BREAKS) + 1:
        return draw(st.binary(max_size=40))
    if kind == len(BREAKS):
        return json.dumps(base).encode()[: draw(st.integers(0, 30))]
    value = draw(st.text(max_size=10) | st.integers() | st.none())
    return json.dumps(BREAKS[kind](base, value)).encode()


def _verdict(data: bytes, validator: EventValidator) -> dict | Rejection:
    envelope = {"data": base64.b64encode(data).decode(), "messageId": "0", "publishTime": "2026-01-01T00:00:00Z"}
    return decode(Message.from_push(envelope), validator, MAX_EVENT_BYTES)


def test_the_pipeline_honours_the_contract_for_any_event(stack):
    from ltmctl.local.stack import mint_token

    validator = EventValidator()
    dead_letters = stack.fresh_subscription(stack.resolved.pipeline.dead_letter_topic)
    headers = {"x-goog-iap-jwt-assertion": mint_token(stack.resolved, "prop@example.com", 3600)}
    api = httpx.Client(base_url=stack.state.api_url, headers=headers, timeout=30)
    seen_dead: dict[str, dict] = {}

    def pull_dead(run: str) -> None:
        response = stack.clients.subscriber.pull(request={"subscription": dead_letters, "max_messages": 100},
                                                 timeout=5)
        if response.received_messages:
            stack.clients.subscriber.acknowledge(request={"subscription": dead_letters, "ack_ids": [
                m.ack_id for m in response.received_messages]})
        for received in response.received_messages:
            seen_dead[received.message.attributes.get("prop", "") + "/" + received.message.attributes.get("n", "")] \
                = dict(received.message.attributes)

    def stored(event: dict) -> dict | None:
        path = f"/get_data/{quote(event['action_id'], safe='')}:{quote(event['user_email'], safe='@')}"
        response = api.get(path, params={"limit": 1000, "days": 365})
        assert response.status_code in (200, 404), (path, response.status_code, response.text)
        events = response.json().get("events", []) if response.status_code == 200 else []
        return next((e for e in events if e["event_id"] == event["_id"]), None)

    @settings(settings.get_profile("contract-e2e"))
    @given(st.lists(message(), min_size=1, max_size=6))
    def check(batch: list[bytes]) -> None:
        run = uuid.uuid4().hex
        verdicts = [_verdict(data, validator) for data in batch]
        futures = [stack.clients.publisher.publish(stack.topic_path, data, prop=run, n=str(i))
                   for i, data in enumerate(batch)]
        message_ids = [f.result(timeout=30) for f in futures]
        expected = {}
        for i, (data, verdict, message_id) in enumerate(zip(batch, verdicts, message_ids, strict=True)):
            if isinstance(verdict, Rejection):
                expected[i] = verdict
            else:
                sent = json.loads(data)
                sent["_id"] = sent.get("event_id") or message_id
                expected[i] = sent
        deadline, pending = time.monotonic() + 40, dict(expected)
        while pending and time.monotonic() < deadline:
            pull_dead(run)
            for i, want in list(pending.items()):
                if isinstance(want, Rejection):
                    if f"{run}/{i}" in seen_dead:
                        got = seen_dead[f"{run}/{i}"]
                        assert got.get("error") == want.error and got.get("error_detail"), (batch[i][:200], got)
                        del pending[i]
                elif (row := stored(want)) is not None:
                    assert row["action_id"] == want["action_id"] and row["app_id"] == want["app_id"]
                    assert row["app_department"] == want["app_department"]
                    assert row["user_email"] == want["user_email"].lower()
                    assert row["source"] == want.get("source")
                    assert row["payload"] == want.get("payload"), (want.get("payload"), row["payload"])
                    sent_time = datetime.fromisoformat(want["event_time"].replace("z", "Z"))
                    assert datetime.fromisoformat(row["event_time"]) == sent_time
                    assert f"{run}/{i}" not in seen_dead
                    del pending[i]
            time.sleep(0.2)
        assert not pending, {i: (batch[i][:200], expected[i]) for i in pending}

    try:
        check()
    finally:
        api.close()
