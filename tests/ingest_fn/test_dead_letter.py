"""A dead letter on the real Pub/Sub emulator carries the original bytes, the original attributes and the reason;
the reason is clipped to Pub/Sub's 1024-byte attribute limit without ever splitting a character."""

import uuid

from ingest_fn.dead_letter import DeadLetter, _clip
from ingest_fn.decode import Message, Rejection
from tests.e2e.test_ingest import pull_all


def test_a_dead_letter_keeps_the_original_and_names_the_reason(stack):
    name = f"dl-{uuid.uuid4().hex[:10]}"
    topic = f"projects/{stack.project}/topics/{name}"
    stack.clients.publisher.create_topic(request={"name": topic})
    subscription = stack.fresh_subscription(name)
    original = Message(message_id="m-42", publish_time="2026-11-30T00:00:01.5Z", data=b"\x00{not json\xff",
                       attributes={"origin": "sensor-7", "error": "spoofed by the producer"})
    sent_id = DeadLetter(stack.clients.publisher, topic, timeout_s=10).send(
        original, Rejection("not_json", "line 1 column 2: Expecting value"))
    [letter] = pull_all(stack, subscription, 1)
    assert letter.message_id == sent_id  # the id the caller logs is the dead letter's own
    assert letter.data == original.data
    # the producer's attributes travel along, but never override the reason
    assert dict(letter.attributes) == {
        "origin": "sensor-7", "error": "not_json", "error_detail": "line 1 column 2: Expecting value",
        "ltm_original_message_id": "m-42", "ltm_original_publish_time": "2026-11-30T00:00:01.5Z"}


def test_a_detail_within_the_limit_is_kept_whole() -> None:
    assert _clip("x" * 1024) == "x" * 1024
    assert _clip("é" * 512) == "é" * 512  # 1024 bytes exactly


def test_a_longer_detail_is_cut_at_the_limit_with_an_ellipsis() -> None:
    clipped = _clip("x" * 1025)
    assert clipped == "x" * 1021 + "…" and len(clipped.encode()) == 1024


def test_clipping_never_splits_a_character() -> None:
    clipped = _clip("é" * 600)  # 1200 bytes; the cut after byte 1021 falls inside an 'é'
    assert clipped == "é" * 510 + "…" and len(clipped.encode()) <= 1024


def test_a_lone_surrogate_is_escaped_not_refused() -> None:
    assert _clip("bad \udc80 byte") == "bad \\udc80 byte"


def test_a_publish_that_gets_no_answer_fails_within_the_timeout():
    """A Pub/Sub that takes the connection but never answers: send raises after timeout_s (the delivery is then
    retried) instead of holding the request until the publisher's own retry gives up, minutes later."""
    import concurrent.futures
    import socket

    import pytest

    from ltmctl.clients import publisher_for_emulator

    silent = socket.create_server(("127.0.0.1", 0))  # the kernel completes the handshake; nothing ever answers
    publisher = publisher_for_emulator(f"127.0.0.1:{silent.getsockname()[1]}")
    try:
        letter = DeadLetter(publisher, "projects/p/topics/dead", timeout_s=1.0)
        with pytest.raises(concurrent.futures.TimeoutError):
            letter.send(Message("m-1", "", b"{}", {}), Rejection("not_json", "x"))
    finally:
        publisher.stop()
        silent.close()
