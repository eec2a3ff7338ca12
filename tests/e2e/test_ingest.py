"""Ingest end to end on the real stack: Pub/Sub emulator → delivery → the ingest function → bqemulator."""

import json
import time
import uuid

import pytest

from api_service import queries

DEADLINE_S = 60


def event(action: str, user: str, **extra) -> dict:
    return {"event_id": str(uuid.uuid4()), "action_id": action, "user_email": user, "app_id": "crm",
            "app_department": "sales", "source": "iot", "event_time": "2026-11-29T10:00:00Z", **extra}


def publish(stack, payloads: list[bytes], **attributes) -> list[str]:
    futures = [stack.clients.publisher.publish(stack.topic_path, data, **attributes) for data in payloads]
    return [f.result(timeout=30) for f in futures]


def rows_for(stack, action: str) -> list[dict]:
    sql = f"SELECT * FROM `{stack.table_id}` WHERE action_id = @a"
    from google.cloud import bigquery

    config = bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("a", "STRING", action)])
    return [dict(r) for r in stack.clients.bigquery.query(sql, job_config=config).result()]


def wait_rows(stack, action: str, count: int, deadline_s: float = DEADLINE_S) -> list[dict]:
    deadline = time.monotonic() + deadline_s
    while True:
        rows = rows_for(stack, action)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.3)


def pull_all(stack, subscription: str, expected: int) -> list:
    received, deadline = [], time.monotonic() + DEADLINE_S
    while len(received) < expected and time.monotonic() < deadline:
        response = stack.clients.subscriber.pull(
            request={"subscription": subscription, "max_messages": 100}, timeout=10)
        if response.received_messages:
            stack.clients.subscriber.acknowledge(
                request={"subscription": subscription, "ack_ids": [m.ack_id for m in response.received_messages]})
        received += [m.message for m in response.received_messages]
    return received


def nothing_arrives(stack, subscription: str, quiet_s: float = 5.0) -> list:
    """Whatever reaches subscription within quiet_s: a check that can fail, unlike pulling for 0 messages."""
    received, deadline = [], time.monotonic() + quiet_s
    while time.monotonic() < deadline:
        response = stack.clients.subscriber.pull(
            request={"subscription": subscription, "max_messages": 100}, timeout=max(0.5, deadline - time.monotonic()))
        received += [m.message for m in response.received_messages]
    return received


def test_valid_events_become_rows_with_every_field_right(stack):
    action = f"act-{uuid.uuid4().hex[:8]}"
    events = [event(action, f"User{i}@Example.com", payload={"seq": i, "tags": ["a"]}) for i in range(20)]
    started = time.monotonic()
    ids = publish(stack, [json.dumps(e).encode() for e in events], origin="sensor-7")
    rows = wait_rows(stack, action, 20)
    elapsed = time.monotonic() - started
    assert len(rows) == 20, f"only {len(rows)} of 20 rows after {elapsed:.1f}s"
    by_id = {r["event_id"]: r for r in rows}
    for e, message_id in zip(events, ids, strict=True):
        row = by_id[e["event_id"]]
        assert row["action_id"] == action
        assert row["user_email"] == e["user_email"].lower()
        assert (row["app_id"], row["app_department"], row["source"]) == ("crm", "sales", "iot")
        assert row["event_time"].isoformat() == "2026-11-29T10:00:00+00:00"
        assert row["payload"] == e["payload"]
        assert row["attributes"] == {"origin": "sensor-7"}
        assert row["message_id"] == message_id
        assert row["publish_time"] <= row["ingest_time"]


@pytest.mark.parametrize(("data", "error"), [
    (b"definitely { not json", "not_json"),
    (b"\xff\xfe\xfa", "not_utf8"),
    (json.dumps({"action_id": "only-this"}).encode(), "schema"),
    (json.dumps(event("ok", "a@b.co", payload={"blob": "x" * (1024 * 1024)})).encode(), "too_large"),
    # Issue 12 item 8: these raised in the function (500 five times, then a dead letter without a reason).
    (json.dumps(event("ok", "a@b.co", event_time="0001-01-01T00:00:00+01:00")).encode(), "schema"),
    (json.dumps(event("ok", "a@b.co", payload={"deep": "X"})).replace('"X"', "[" * 100_000 + "]" * 100_000).encode(),
     "schema"),
    (json.dumps(event("ok", "a@b.co", payload={"s": "\ud800"})).encode(), "schema"),
    (json.dumps(event("ok\n", "a@b.co")).encode(), "schema"),
], ids=["not_json", "not_utf8", "schema", "too_large", "year_0", "deep", "surrogate", "newline"])
def test_bad_events_go_to_the_dead_letter_topic_with_their_reason(stack, data, error):
    dead_letters = stack.fresh_subscription(stack.resolved.pipeline.dead_letter_topic)
    marker = uuid.uuid4().hex
    [message_id] = publish(stack, [data], marker=marker)
    received = [m for m in pull_all(stack, dead_letters, 1) if m.attributes.get("marker") == marker]
    assert len(received) == 1
    dead = received[0]
    assert dead.data == data  # the original bytes, untouched
    assert dead.attributes["error"] == error
    assert dead.attributes["error_detail"]
    assert dead.attributes["ltm_original_message_id"] == message_id
    # and nothing of it reached the table
    sql = f"SELECT COUNT(*) AS n FROM `{stack.table_id}` WHERE message_id = @m"
    from google.cloud import bigquery

    config = bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("m", "STRING", message_id)])
    assert next(iter(stack.clients.bigquery.query(sql, job_config=config).result())).n == 0


def test_an_event_delivered_twice_is_read_once(stack):
    action = f"dup-{uuid.uuid4().hex[:8]}"
    twice = event(action, "dup@example.com")
    once = event(action, "dup@example.com", event_time="2026-11-29T11:00:00Z")
    publish(stack, [json.dumps(twice).encode(), json.dumps(twice).encode(), json.dumps(once).encode()])
    assert len(wait_rows(stack, action, 3)) == 3  # bqemulator keeps both copies (no insertId de-duplication)
    count, rows = queries.get_data(stack.clients.bigquery, stack.table_id, action_id=action,
                                   user_email="dup@example.com", days=3650)
    assert count == 2
    assert [r["event_id"] for r in rows] == [once["event_id"], twice["event_id"]]  # newest first


def test_bigquery_down_while_publishing_loses_nothing(tmp_path):
    # A stack of its own: this test takes BigQuery away.
    from ltmctl.local import stack as local_stack
    from tests.conftest import start_stack, stop_stack

    s = start_stack(tmp_path)
    try:
        action = f"outage-{uuid.uuid4().hex[:8]}"
        dead_letters = s.fresh_subscription(s.resolved.pipeline.dead_letter_topic)  # before anything can fail
        local_stack.restart_piece(s.resolved, "bigquery", stop_only=True)
        events = [event(action, "o@example.com") for _ in range(30)]
        publish(s, [json.dumps(e).encode() for e in events])
        ingest_log = s.state.pieces["ingest"].log
        deadline = time.monotonic() + DEADLINE_S
        # deliveries must have failed (and so been left for redelivery) before BigQuery comes back
        while "ingest failed; the delivery will be retried" not in open(ingest_log).read():
            assert time.monotonic() < deadline, "no delivery failed while BigQuery was down"
            time.sleep(0.2)
        local_stack.restart_piece(s.resolved, "bigquery")
        rows = wait_rows(s, action, 30)
        assert sorted({r["event_id"] for r in rows}) == sorted(e["event_id"] for e in events)
        assert nothing_arrives(s, dead_letters) == []  # an outage is retried, never dead-lettered
    finally:
        stop_stack(s)


@pytest.mark.timeout(480)
def test_bigquery_killed_mid_batch_loses_nothing(tmp_path):
    # SIGKILL while deliveries are being stored: the insert in flight fails and is retried (by the sink within its
    # deadline, or by Pub/Sub redelivering), committed rows survive in the emulator's write-ahead log, and nothing
    # acknowledged is missing afterwards, nor counted twice.
    import os
    import signal

    from ltmctl.local import processes
    from ltmctl.local import stack as local_stack
    from tests.conftest import start_stack, stop_stack

    s = start_stack(tmp_path)
    try:
        action = f"killed-{uuid.uuid4().hex[:8]}"
        dead_letters = s.fresh_subscription(s.resolved.pipeline.dead_letter_topic)  # before anything can fail
        # Enough that the delivery's 80 requests at a time, joined into inserts of tens of rows, are far from done
        # when the first rows are stored (150 were all stored before the kill once).
        events = [event(action, "k@example.com") for _ in range(3000)]
        publish(s, [json.dumps(e).encode() for e in events])

        def stored() -> int:  # the function's log line per stored event: cheaper to poll than the table
            return open(s.state.pieces["ingest"].log).read().count('"message": "stored"')

        deadline = time.monotonic() + DEADLINE_S
        while stored() < 10:
            assert time.monotonic() < deadline, "nothing was stored"
            time.sleep(0.02)
        bigquery = local_stack.read_state(s.resolved).pieces["bigquery"]
        os.kill(bigquery.pid, signal.SIGKILL)
        while processes.alive(bigquery.proc):
            time.sleep(0.05)
        stored_before = stored()
        assert stored_before < len(events)  # killed mid-stream, not after the last insert
        local_stack.restart_piece(s.resolved, "bigquery")
        rows = wait_rows(s, action, len(events), deadline_s=240)  # a bound for a loaded CI machine
        assert sorted({r["event_id"] for r in rows}) == sorted(e["event_id"] for e in events)
        count, _ = queries.get_data(s.clients.bigquery, s.table_id, action_id=action, user_email="k@example.com",
                                    days=3650)
        assert count == len(events)  # stored once as far as any read can tell
        assert nothing_arrives(s, dead_letters) == []
    finally:
        stop_stack(s)
