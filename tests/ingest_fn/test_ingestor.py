"""The ingest decision on the real emulators: a row BigQuery refuses is dead-lettered as `schema` while the rest of
its batch is stored; a failed insert or a failed dead-letter publish raises (the function answers 500, so the
delivery is nacked and retried: tests/e2e/test_failure_branches.py), and a failed insert dead-letters nothing."""

import base64
import json
import threading
import uuid

import pytest

from ingest_fn.contract import MAX_EVENT_BYTES, EventValidator
from ingest_fn.dead_letter import DeadLetter
from ingest_fn.decode import Message
from ingest_fn.group_commit import GroupCommitter
from ingest_fn.handler import Ingestor
from ingest_fn.metrics import REGISTRY
from ingest_fn.sink import BigQuerySink, TransientError
from ltmctl.clients import bigquery_for_emulator
from tests.e2e.test_ingest import nothing_arrives, pull_all
from tests.ingest_fn.test_group_commit import ObservedSink, join_all, wait_until


def message(event: dict) -> Message:
    return Message.from_push({"data": base64.b64encode(json.dumps(event).encode()).decode(),
                              "messageId": uuid.uuid4().hex, "publishTime": "2026-11-30T00:00:01.5Z"})


def event(action: str, **extra) -> dict:
    return {"event_id": str(uuid.uuid4()), "action_id": action, "user_email": "i@example.com", "app_id": "crm",
            "app_department": "sales", "event_time": "2026-11-30T00:00:00Z", **extra}


@pytest.fixture
def dead_letters(stack):
    """A dead-letter topic of its own and a subscription that keeps what reaches it: (topic path, subscription)."""
    name = f"dl-{uuid.uuid4().hex[:10]}"
    topic = f"projects/{stack.project}/topics/{name}"
    stack.clients.publisher.create_topic(request={"name": topic})
    return topic, stack.fresh_subscription(name)


def ingestor(sink, publisher, topic: str) -> Ingestor:
    return Ingestor(committer=GroupCommitter(sink), dead_letter=DeadLetter(publisher, topic, timeout_s=10),
                    validator=EventValidator(), max_event_bytes=MAX_EVENT_BYTES)


def handle_together(ing: Ingestor, messages: list[Message], gate: threading.Event) -> dict[str, object]:
    """Handle the messages concurrently, the first insert held at the gate so the rest join one request."""
    outcomes: dict[str, object] = {}

    def run(m):
        try:
            outcomes[m.message_id] = ing.handle(m)
        except Exception as exc:  # noqa: BLE001 - recorded for the assertions
            outcomes[m.message_id] = exc

    threads = [threading.Thread(target=run, args=(m,), daemon=True) for m in messages]
    threads[0].start()
    # The first delivery leads and waits at the gate; the rest queue behind it. A delivery that returns instead (a
    # broken committer) ends the wait at once, and the assertions say what went wrong.
    wait_until(lambda: ing.committer.inserts or not threads[0].is_alive())
    for t in threads[1:]:
        t.start()
    wait_until(lambda: len(ing.committer._pending) >= len(messages) - 1 or not all(t.is_alive() for t in threads))
    gate.set()
    join_all(threads, timeout_s=30.0)
    return outcomes


def test_a_row_bigquery_refuses_is_dead_lettered_as_schema_and_the_rest_of_its_batch_is_stored(stack, dead_letters):
    from google.cloud import bigquery

    # A table where BigQuery itself refuses a row the contract accepts: `source` is an INTEGER column here.
    schema = [bigquery.SchemaField(f.name, "INTEGER" if f.name == "source" else f.field_type, mode=f.mode)
              for f in stack.clients.bigquery.get_table(stack.table_id).schema]
    table_id = f"{stack.project}.{stack.resolved.pipeline.dataset}.refusing_{uuid.uuid4().hex[:8]}"
    stack.clients.bigquery.create_table(bigquery.Table(table_id, schema=schema))
    gate = threading.Event()
    sink = ObservedSink(stack.clients.bigquery, table_id, gate=gate)
    ing = ingestor(sink, stack.clients.publisher, dead_letters[0])
    action = f"refuse-{uuid.uuid4().hex[:8]}"
    good = [message(event(action)) for _ in range(5)]
    bad = message(event(action, source="iot"))
    outcomes = handle_together(ing, [good[0], *good[1:3], bad, *good[3:]], gate)

    assert outcomes[bad.message_id] == "dead_lettered"
    assert all(outcomes[m.message_id] == "stored" for m in good)
    assert [len(b) for b in sink.batches] == [1, 5]  # the refused row shared its request with four good ones
    stored = {json.loads(m.data)["event_id"] for m in good}
    sql = f"SELECT event_id FROM `{table_id}`"
    assert {r.event_id for r in stack.clients.bigquery.query(sql).result()} == stored
    [dead] = pull_all(stack, dead_letters[1], 1)
    assert dead.data == bad.data and dead.attributes["error"] == "schema"
    assert dead.attributes["error_detail"].startswith("BigQuery refused the row")
    assert dead.attributes["ltm_original_message_id"] == bad.message_id


def test_a_failed_insert_raises_and_dead_letters_nothing(stack, dead_letters):
    dead = bigquery_for_emulator("http://127.0.0.1:9", stack.project)  # nothing listens on port 9
    ing = ingestor(BigQuerySink(dead, stack.table_id, timeout_s=1.0), stack.clients.publisher, dead_letters[0])
    with pytest.raises(TransientError):
        ing.handle(message(event("transient")))
    assert nothing_arrives(stack, dead_letters[1], quiet_s=2.0) == []  # the insert failed before any dead letter


def test_a_failed_dead_letter_publish_raises_so_the_delivery_is_not_acknowledged(stack):
    missing = f"projects/{stack.project}/topics/never-made-{uuid.uuid4().hex[:8]}"
    ing = ingestor(BigQuerySink(stack.clients.bigquery, stack.table_id), stack.clients.publisher, missing)
    bad = Message.from_push({"data": base64.b64encode(b"{not json").decode(), "messageId": "m-dl"})
    with pytest.raises(Exception, match="(?i)not.?found|does not exist"):
        ing.handle(bad)


class BuggyValidator(EventValidator):
    """A contract check with a bug in it: decoding raises instead of answering."""

    def problems(self, event):
        raise RuntimeError("boom")


def _log_lines(capsys, message_id: str) -> list[dict]:
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("message_id") == message_id]


def test_a_stored_event_is_logged_with_its_event_and_message_ids(stack, dead_letters, capsys):
    ing = ingestor(BigQuerySink(stack.clients.bigquery, stack.table_id), stack.clients.publisher, dead_letters[0])
    stored = event("logged")
    m = message(stored)
    assert ing.handle(m) == "stored"
    [line] = _log_lines(capsys, m.message_id)
    assert {k: line.get(k) for k in ("severity", "message", "event_id", "message_id")} == {
        "severity": "INFO", "message": "stored", "event_id": stored["event_id"], "message_id": m.message_id}


def test_a_decoder_bug_dead_letters_the_message_as_undecodable_naming_the_exception(stack, dead_letters, capsys):
    """A decoder that raises would raise on every redelivery: the message is dead-lettered with the exception as its
    reason, logged and counted, not retried into five bare 500s."""
    ing = Ingestor(committer=GroupCommitter(BigQuerySink(stack.clients.bigquery, stack.table_id)),
                   dead_letter=DeadLetter(stack.clients.publisher, dead_letters[0], timeout_s=10),
                   validator=BuggyValidator(), max_event_bytes=MAX_EVENT_BYTES)
    counted = REGISTRY.get_sample_value("ltm_ingest_dead_letters_total", {"error": "undecodable"}) or 0.0
    m = message(event("bug"))
    assert ing.handle(m) == "dead_lettered"
    [dead] = pull_all(stack, dead_letters[1], 1)
    assert dead.data == m.data
    assert (dead.attributes["error"], dead.attributes["error_detail"]) == ("undecodable", "RuntimeError: boom")
    [line] = _log_lines(capsys, m.message_id)
    assert line == {**line, "severity": "WARNING", "message": "dead-lettered", "error": "undecodable",
                    "error_detail": "RuntimeError: boom", "dead_letter_message_id": dead.message_id}
    assert REGISTRY.get_sample_value("ltm_ingest_dead_letters_total", {"error": "undecodable"}) == counted + 1
