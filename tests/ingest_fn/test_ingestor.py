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
from ingest_fn.sink import BigQuerySink, TransientError
from ltmctl.clients import bigquery_for_emulator
from tests.e2e.test_ingest import pull_all
from tests.ingest_fn.test_group_commit import ObservedSink, wait_until


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

    threads = [threading.Thread(target=run, args=(m,)) for m in messages]
    threads[0].start()
    # The first delivery leads and waits at the gate; the rest queue behind it. A delivery that returns instead (a
    # broken committer) ends the wait at once, and the assertions say what went wrong.
    wait_until(lambda: ing.committer.inserts or not threads[0].is_alive())
    for t in threads[1:]:
        t.start()
    wait_until(lambda: len(ing.committer._pending) >= len(messages) - 1 or not all(t.is_alive() for t in threads))
    gate.set()
    for t in threads:
        t.join(60)
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
    assert pull_all(stack, dead_letters[1], 0) == []


def test_a_failed_dead_letter_publish_raises_so_the_delivery_is_not_acknowledged(stack):
    missing = f"projects/{stack.project}/topics/never-made-{uuid.uuid4().hex[:8]}"
    ing = ingestor(BigQuerySink(stack.clients.bigquery, stack.table_id), stack.clients.publisher, missing)
    bad = Message.from_push({"data": base64.b64encode(b"{not json").decode(), "messageId": "m-dl"})
    with pytest.raises(Exception, match="(?i)not.?found|does not exist"):
        ing.handle(bad)
