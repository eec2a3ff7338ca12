"""`ltmctl dlq list` and `dlq replay` in a gcp environment: pulls, releases, acknowledgements and publishes that
reach the strict fake's Pub/Sub (each request checked against Google's discovery document, authorized by IAM)."""

from __future__ import annotations

import base64
import json

from ltmctl.gcp.clients import GcpClients
from ltmctl.gcp.fake.pubsub import PubSubApi
from tests.gcp.support import PROJECT

TOPIC = f"projects/{PROJECT}/topics/ltm-events"
DLQ_TOPIC = f"projects/{PROJECT}/topics/ltm-events-dlq"
KEEP = f"projects/{PROJECT}/subscriptions/ltm-events-dlq-keep"
LETTERS = [(b"{not json", {"error": "not_json", "error_detail": "Expecting property name", "origin": "a"}),
           (b'{"action_id": "x"}', {"error": "schema", "error_detail": "'user_email' is a required property"})]


def _dead_letter(fake) -> list[str]:
    """The two letters on the dead-letter topic, as the ingest function publishes them; their message ids."""
    google = GcpClients.for_endpoint(PROJECT, fake.endpoint)
    try:
        return [google.publisher.publish(DLQ_TOPIC, data, **attributes).result(30) for data, attributes in LETTERS]
    finally:
        google.close()


def test_dlq_list_shows_the_letters_and_leaves_them_in_place(fake, ltmctl):
    assert ltmctl("provision", "--yes").exit_code == 0
    ids = _dead_letter(fake)
    fake.clear_requests()

    result = ltmctl("dlq", "list", "-o", "json")

    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert [(d["message_id"], d["error"], d["error_detail"]) for d in shown] == [
        (i, a["error"], a["error_detail"]) for i, (_, a) in zip(ids, LETTERS, strict=True)]
    pulls = fake.find("POST", r"/subscriptions/ltm-events-dlq-keep:pull$")
    assert pulls and all(p.principal == fake.owner for p in pulls)
    assert not fake.find("POST", r":acknowledge$")  # a look, not a removal
    released = fake.find("POST", r"/subscriptions/ltm-events-dlq-keep:modifyAckDeadline$")
    assert released and all(r.body.get("ackDeadlineSeconds", 0) == 0 for r in released)  # 0 is left out in JSON
    backlog = fake.api(PubSubApi).backlog[KEEP]
    assert len(backlog) == 2 and not any(leased for _, leased in backlog.values())  # released for the next reader


def test_dlq_replay_republishes_then_acknowledges(fake, ltmctl):
    assert ltmctl("provision", "--yes").exit_code == 0
    ids = _dead_letter(fake)
    fake.clear_requests()

    result = ltmctl("dlq", "replay", "--yes")

    assert result.exit_code == 0, result.output
    assert "Replayed 2 dead letter(s)" in result.output
    replayed = fake.api(PubSubApi).published[TOPIC]
    assert [base64.b64decode(m["data"]) for m in replayed] == [data for data, _ in LETTERS]
    assert [m["attributes"] for m in replayed] == [{"origin": "a", "ltm_replayed_from": ids[0]},
                                                   {"ltm_replayed_from": ids[1]}]
    assert fake.api(PubSubApi).backlog[KEEP] == {}  # acknowledged, so gone
    publish = fake.find("POST", r"/topics/ltm-events:publish$")
    acks = fake.find("POST", r"/subscriptions/ltm-events-dlq-keep:acknowledge$")
    assert publish and acks and fake.requests.index(publish[-1]) < fake.requests.index(acks[0])  # publish first
