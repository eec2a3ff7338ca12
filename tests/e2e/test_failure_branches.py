"""Failure branches through the whole local stack (emulator → delivery process → function → BigQuery): a dead-letter
publish that fails is not acknowledged, so the message comes back and is dead-lettered once the topic is there; a
message the function can never take is moved by the subscription's own dead-letter policy after
max_delivery_attempts; the delivery POSTs exactly the body Pub/Sub's push sends."""

import json
import os
import signal
import time
import uuid

import pytest

from ltmctl.local import stack as local_stack
from tests.conftest import running_stack
from tests.e2e.test_ingest import event, pull_all

pytestmark = pytest.mark.e2e
DEADLINE_S = 90


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """A stack of this module's own: its tests take the dead-letter topic and BigQuery away."""
    with running_stack(tmp_path_factory.mktemp("branches")) as s:
        yield s


def figures(s) -> dict:
    return local_stack.delivery_figures(local_stack.read_state(s.resolved))


def wait_for(condition, what: str, deadline_s: float = DEADLINE_S):
    deadline = time.monotonic() + deadline_s
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return result


def test_a_failed_dead_letter_publish_is_not_acknowledged_and_nothing_is_lost(own):
    p = own.resolved.pipeline
    dlq = f"projects/{own.project}/topics/{p.dead_letter_topic}"
    own.clients.publisher.delete_topic(request={"topic": dlq})
    nacked_before = figures(own)["nacked"]
    marker = uuid.uuid4().hex
    [message_id] = [own.clients.publisher.publish(own.topic_path, b"{not json", marker=marker).result(timeout=30)]
    log = own.state.pieces["ingest"].log
    # The function cannot publish the dead letter: it answers 500, and the delivery nacks instead of acknowledging.
    wait_for(lambda: any("ingest failed" in line and message_id in line for line in open(log)), "a failed delivery")
    wait_for(lambda: figures(own)["nacked"] > nacked_before, "the nack")
    # The emulator may redeliver at once: with the function running, the dead letter could be published between
    # the topic's creation and the subscription's, and be dropped by Pub/Sub. Frozen (its process group, gunicorn's
    # workers too), it takes nothing until both exist; what is in flight then waits or times out and is nacked.
    group = os.getpgid(own.state.pieces["ingest"].pid)
    os.killpg(group, signal.SIGSTOP)
    try:
        own.clients.publisher.create_topic(request={"name": dlq})
        kept = own.fresh_subscription(p.dead_letter_topic)
    finally:
        os.killpg(group, signal.SIGCONT)
    # Redelivered after the backoff, and now dead-lettered by the function, with its reason: nothing was lost.
    received = [m for m in pull_all(own, kept, 1) if m.attributes.get("marker") == marker]
    assert len(received) == 1 and received[0].data == b"{not json"
    assert received[0].attributes["error"] == "not_json"
    assert received[0].attributes["ltm_original_message_id"] == message_id


def test_the_subscription_dead_letters_what_the_function_never_takes_after_max_delivery_attempts(own):
    p = own.resolved.pipeline
    kept = own.fresh_subscription(p.dead_letter_topic)
    # Without its table every insert fails at once (404), so every delivery is answered 500; BigQuery being down
    # would do the same, but each attempt would wait out the insert's 10 s retry deadline first.
    table = own.clients.bigquery.get_table(own.table_id)
    own.clients.bigquery.delete_table(own.table_id)
    try:
        nacked_before = figures(own)["nacked"]
        action = f"policy-{uuid.uuid4().hex[:8]}"
        events = [event(action, "p@example.com") for _ in range(3)]
        for e in events:
            own.clients.publisher.publish(own.topic_path, json.dumps(e).encode()).result(timeout=30)
        moved = pull_all(own, kept, 3)
    finally:
        own.clients.bigquery.create_table(table)
    assert sorted(json.loads(m.data)["event_id"] for m in moved) == sorted(e["event_id"] for e in events)
    # Moved by Pub/Sub's policy, not by the function (which would have said why in `error`)...
    assert all("error" not in m.attributes for m in moved)
    # ...after every one of its attempts was nacked by the delivery.
    assert figures(own)["nacked"] - nacked_before >= 3 * p.max_delivery_attempts
    count = own.clients.bigquery.query(
        f"SELECT COUNT(*) AS n FROM `{own.table_id}` WHERE action_id = '{action}'").result()
    assert next(iter(count)).n == 0


def test_the_delivery_posts_the_body_the_emulators_own_push_sends(own):
    """The same message through the emulator's push and through the delivery process: the same JSON body."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from ltmctl.local.delivery import Delivery

    bodies: dict[str, list[dict]] = {"push": [], "delivery": []}

    class Capture(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            bodies[self.path.strip("/")].append(body)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    name = f"body-{uuid.uuid4().hex[:8]}"
    topic = f"projects/{own.project}/topics/{name}"
    own.clients.publisher.create_topic(request={"name": topic})
    policy = {"dead_letter_topic": f"projects/{own.project}/topics/{own.resolved.pipeline.dead_letter_topic}",
              "max_delivery_attempts": 5}
    subscriptions = {kind: f"projects/{own.project}/subscriptions/{name}-{kind}" for kind in bodies}
    own.clients.subscriber.create_subscription(request={
        "name": subscriptions["push"], "topic": topic, "dead_letter_policy": policy,
        "push_config": {"push_endpoint": f"{url}/push"}})
    own.clients.subscriber.create_subscription(request={
        "name": subscriptions["delivery"], "topic": topic, "dead_letter_policy": policy})
    delivery = Delivery(own.clients.subscriber, subscriptions["delivery"], f"{url}/delivery", concurrency=2,
                        ack_deadline_s=20, max_backoff_s=5)
    delivery.start()
    try:
        own.clients.publisher.publish(topic, b'{"a": 1}\xff', origin="sensor-7", k="v").result(timeout=30)
        wait_for(lambda: bodies["push"] and bodies["delivery"], "both deliveries")
    finally:
        delivery.stop(grace_s=2)
        server.shutdown()
    [pushed], [delivered] = bodies["push"], bodies["delivery"]
    assert pushed.pop("subscription") == subscriptions["push"]
    assert delivered.pop("subscription") == subscriptions["delivery"]
    # Google's push adds deliveryAttempt when the subscription has a dead-letter policy; the emulator's push leaves
    # it out (the emulator does count the attempts of pulled messages, which is where this one comes from).
    assert delivered.pop("deliveryAttempt") == 1 and "deliveryAttempt" not in pushed
    assert delivered == pushed
    assert delivered["message"]["attributes"] == {"origin": "sensor-7", "k": "v"}
