"""Dead letters that add up to more than gRPC's default 4 MiB per answer, and a run that fails mid-pull: list and
replay see every message, and never leave some held while reporting the subscription empty."""

import json
import uuid

import grpc
import pytest
from google.cloud import pubsub_v1
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport
from typer.testing import CliRunner

from ltmctl import clients, dead_letters
from ltmctl.cli import app
from tests.conftest import start_stack, stop_stack

runner = CliRunner()


def dlq(s, *args):
    return runner.invoke(app, ["--config", str(s.resolved.path), "dlq", *args])


@pytest.fixture
def own_stack(tmp_path):
    s = start_stack(tmp_path)  # its own: megabytes of dead letters would slow the shared one's other tests
    try:
        yield s
    finally:
        stop_stack(s)


def test_list_and_replay_handle_more_than_4_mib_and_a_failed_pull_leaves_no_false_zero(own_stack):
    s = own_stack
    dlq_topic = s.clients.publisher.topic_path(s.project, s.resolved.pipeline.dead_letter_topic)
    marker = uuid.uuid4().hex
    big = json.dumps({"action_id": "too-big", "blob": "x" * 900_000}).encode()
    for _ in range(6):  # 5.4 MB: more than one gRPC answer may carry by default
        s.clients.publisher.publish(dlq_topic, big, marker=marker, error="too_large").result(timeout=30)

    listed = dlq(s, "list", "--limit", "1000", "--output", "json")
    assert listed.exit_code == 0, listed.output
    assert len([x for x in json.loads(listed.stdout) if x["attributes"].get("marker") == marker]) == 6
    again = dlq(s, "list", "--limit", "1000", "--output", "json")  # nothing left held by the first
    assert again.exit_code == 0 and len(json.loads(again.stdout)) == 6

    # A reader whose channel refuses big answers: its pull fails after the emulator leased the messages to it.
    host = s.state.pubsub_host
    small = pubsub_v1.SubscriberClient(transport=SubscriberGrpcTransport(
        channel=grpc.insecure_channel(host, options=[("grpc.max_receive_message_length", 1_000_000)]), host=host))
    failing = clients.Clients(s.project, s.clients.publisher, small, s.clients.bigquery)
    note = dead_letters.lease_note(s.resolved)
    with pytest.raises(dead_letters.PullFailed) as info:
        dead_letters.peek(failing, s.resolved.pipeline.dead_letter_subscription, limit=1000, lease_note=note)
    assert "held until their acknowledgement deadline" in info.value.message
    small.transport.close()

    after = dlq(s, "list", "--limit", "1000")
    assert after.exit_code == 0, after.output
    message = " ".join(after.stderr.split())
    # The failed pull took them: the emulator shows none, and list must not let that pass for "empty".
    assert "0 dead letter(s)" in message
    assert "may not be counted" in message and "held (invisible) until" in message
    replayed = dlq(s, "replay", "--yes")
    message = " ".join(replayed.stderr.split())
    assert "Replayed 0 " in message and "may not be counted" in message
