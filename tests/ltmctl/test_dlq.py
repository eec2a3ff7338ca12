"""`ltmctl dlq list/replay/purge` on the real local stack.

The dead-letter subscription is shared with every other test of the session, so each test marks its own
messages with a unique attribute and asserts on those (whole-subscription totals only right after a purge)."""

import base64
import datetime as dt
import json
import time
import uuid

from typer.testing import CliRunner

from ltmctl import dead_letters
from ltmctl.cli import app

runner = CliRunner()
DEADLINE_S = 60


def dlq(stack, *args):
    return runner.invoke(app, ["--config", str(stack.resolved.path), "dlq", *args])


def publish(stack, topic_path, data: bytes, **attributes) -> str:
    return stack.clients.publisher.publish(topic_path, data, **attributes).result(timeout=30)


def listed(stack) -> list[dict]:
    result = dlq(stack, "list", "--limit", "1000", "--output", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def wait_listed(stack, done, what: str) -> list[dict]:
    """List until `done(letters)` holds; every listing leaves the messages in place."""
    deadline = time.monotonic() + DEADLINE_S
    while not done(letters := listed(stack)):
        assert time.monotonic() < deadline, f"never saw {what}"
    return letters


def marked(letters, marker) -> list[dict]:
    return [letter for letter in letters if letter["attributes"].get("marker") == marker]


def pull_marked(stack, subscription, marker, expected) -> list:
    received, deadline = [], time.monotonic() + DEADLINE_S
    while len(received) < expected and time.monotonic() < deadline:
        response = stack.clients.subscriber.pull(request={"subscription": subscription, "max_messages": 100},
                                                 timeout=10)
        if response.received_messages:
            stack.clients.subscriber.acknowledge(request={"subscription": subscription, "ack_ids": [
                m.ack_id for m in response.received_messages]})
        received += [m.message for m in response.received_messages if m.message.attributes.get("marker") == marker]
    return received


def test_list_shows_dead_letters_with_their_reason_and_leaves_them_in_place(stack):
    marker = uuid.uuid4().hex
    not_json = publish(stack, stack.topic_path, b"not json", marker=marker)
    schema = publish(stack, stack.topic_path, json.dumps({"action_id": "only"}).encode(), marker=marker)

    letters = marked(wait_listed(stack, lambda ls: len(marked(ls, marker)) == 2, "both dead letters"), marker)
    by_original = {letter["original_message_id"]: letter for letter in letters}
    assert set(by_original) == {not_json, schema}
    assert by_original[not_json]["error"] == "not_json"
    assert by_original[schema]["error"] == "schema"
    assert all(letter["error_detail"] for letter in letters)
    assert by_original[not_json]["data_preview"] == "not json"
    assert base64.b64decode(by_original[schema]["data_base64"]) == json.dumps({"action_id": "only"}).encode()
    assert dt.datetime.fromisoformat(by_original[not_json]["publish_time"]).tzinfo is not None

    # listing twice: still all there, same messages
    again = marked(listed(stack), marker)
    assert sorted(letter["message_id"] for letter in again) == sorted(letter["message_id"] for letter in letters)

    table = dlq(stack, "list")
    assert table.exit_code == 0, table.output
    assert "not_json" in table.stdout and "left in place" in table.stderr


def test_replay_republishes_with_original_data_and_attributes_and_loses_nothing(stack):
    pipeline = stack.resolved.pipeline
    marker = uuid.uuid4().hex
    # An event that is still invalid: replayed, it will be dead-lettered again by the ingest function.
    invalid = b"still { not json"
    publish(stack, stack.topic_path, invalid, marker=marker, origin="sensor-9")
    # A valid event dead-lettered as if BigQuery had been down: replayed, it must become a row.
    event = {"event_id": str(uuid.uuid4()), "action_id": "replayed", "user_email": "r@example.com", "app_id": "crm",
             "app_department": "sales", "event_time": "2026-11-29T10:00:00Z"}
    dlq_topic = f"projects/{stack.project}/topics/{pipeline.dead_letter_topic}"
    publish(stack, dlq_topic, json.dumps(event).encode(), marker=marker, origin="sensor-9",
            error="transient", error_detail="BigQuery unavailable (simulated)",
            ltm_original_message_id="0", ltm_original_publish_time="2026-11-29T10:00:00Z",
            CloudPubSubDeadLetterSourceDeliveryCount="5")
    letters = marked(wait_listed(stack, lambda ls: len(marked(ls, marker)) == 2, "both dead letters"), marker)
    dead_ids = {letter["message_id"] for letter in letters}
    invalid_id = next(letter["message_id"] for letter in letters if letter["error"] == "not_json")
    valid_id = next(letter["message_id"] for letter in letters if letter["error"] == "transient")

    refused = dlq(stack, "replay")  # no TTY under CliRunner, no --yes
    assert refused.exit_code == 2 and "--yes" in refused.stderr

    watch = stack.fresh_subscription(pipeline.topic)  # before the replay, so it sees the re-published messages
    result = dlq(stack, "replay", "--yes")
    assert result.exit_code == 0, result.output
    assert "Replayed" in result.stderr and "0 failed" in result.stderr

    republished = {m.attributes["ltm_replayed_from"]: m for m in pull_marked(stack, watch, marker, 2)}
    assert set(republished) == dead_ids
    assert republished[invalid_id].data == invalid
    assert dict(republished[invalid_id].attributes) == {"marker": marker, "origin": "sensor-9",
                                                        "ltm_replayed_from": invalid_id}
    assert dict(republished[valid_id].attributes) == {"marker": marker, "origin": "sensor-9",
                                                      "ltm_replayed_from": valid_id}

    # the valid one is stored now, with the producer's attributes and where it came from
    from google.cloud import bigquery

    sql = f"SELECT attributes FROM `{stack.table_id}` WHERE event_id = @e"
    config = bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("e", "STRING",
                                                                                     event["event_id"])])
    deadline, rows = time.monotonic() + DEADLINE_S, []
    while not rows:
        assert time.monotonic() < deadline, "the replayed event never became a row"
        rows = list(stack.clients.bigquery.query(sql, job_config=config).result())
        time.sleep(0.3)
    assert rows[0]["attributes"] == {"marker": marker, "origin": "sensor-9", "ltm_replayed_from": valid_id}

    # the replayed dead letters left the subscription; the invalid one came back once, as a new dead letter
    after = marked(wait_listed(
        stack, lambda ls: any(m["attributes"].get("ltm_replayed_from") == invalid_id for m in marked(ls, marker)),
        "the invalid event dead-lettered again"), marker)
    assert not dead_ids & {letter["message_id"] for letter in after}
    [back] = after
    assert back["error"] == "not_json" and base64.b64decode(back["data_base64"]) == invalid


def test_a_failed_replay_publish_keeps_the_dead_letter(stack):
    marker = uuid.uuid4().hex
    publish(stack, stack.topic_path, b"keep me", marker=marker)
    [letter] = marked(wait_listed(stack, lambda ls: len(marked(ls, marker)) == 1, "the dead letter"), marker)

    report = dead_letters.replay(stack.clients, stack.resolved.pipeline.dead_letter_subscription,
                                 f"no-such-topic-{marker[:8]}")
    assert report.replayed == [] and report.failed
    assert letter["message_id"] in {message_id for message_id, _ in report.failed}
    assert [kept["message_id"] for kept in marked(listed(stack), marker)] == [letter["message_id"]]


def test_purge_needs_yes_then_empties_the_subscription(stack):
    marker = uuid.uuid4().hex
    publish(stack, stack.topic_path, b"purge me", marker=marker)
    wait_listed(stack, lambda ls: len(marked(ls, marker)) == 1, "the dead letter")

    refused = dlq(stack, "purge")
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    assert len(marked(listed(stack), marker)) == 1

    before = dt.datetime.now(dt.UTC)
    result = dlq(stack, "purge", "--yes")
    assert result.exit_code == 0, result.output
    # Other tests' dead letters may still be arriving; everything published before the purge is gone.
    remaining = listed(stack)
    assert not marked(remaining, marker)
    assert all(dt.datetime.fromisoformat(letter["publish_time"]) >= before for letter in remaining), remaining


def test_no_local_stack_says_how_to_start_one(project_dir):
    result = runner.invoke(app, ["--config", str(project_dir / "config" / "ltm.yaml"), "dlq", "list"])
    assert result.exit_code == 4, result.output
    assert "ltmctl local up" in result.stderr


def test_replay_keeps_the_producers_attributes_only():
    letter = dead_letters.DeadLetter("42", "2026-11-29T10:00:00Z", b"x", {
        "origin": "sensor-7", "error": "schema", "error_detail": "…", "ltm_original_message_id": "7",
        "ltm_original_publish_time": "2026-11-29T09:59:59Z", "ltm_replayed_from": "3",
        "CloudPubSubDeadLetterSourceDeliveryCount": "5"})
    assert dead_letters.replay_attributes(letter) == {"origin": "sensor-7", "ltm_replayed_from": "42"}


def test_preview_is_short_and_shows_bytes_that_are_not_text():
    assert dead_letters.DeadLetter("1", "", b"\xff\xfeok", {}).preview() == "\\xff\\xfeok"
    long = dead_letters.DeadLetter("1", "", b"a\n" + b"b" * 100, {}).preview(10)
    assert long == "a\\nbbbbbb…" and len(long) == 10
    policy = dead_letters.DeadLetter("1", "", b"", {"CloudPubSubDeadLetterSourceDeliveryCount": "5"})
    assert policy.error == "delivery_attempts_exhausted" and "5 delivery attempts" in policy.error_detail


def _reasons_as_shown(text: str, message_id: str) -> str:
    """The reason under `message_id`'s line of `dlq list`, its wrapped lines joined again."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == [message_id])
    block = []
    for line in lines[start + 1:]:
        if not line.startswith(" "):
            break
        block.append(line)
    reason = next(i for i, line in enumerate(block) if line.split()[:1] == ["reason"])
    indent = len(block[reason]) - len(block[reason].split(None, 1)[1])
    joined = [block[reason][indent:]]
    for line in block[reason + 1:]:
        if line[:indent].strip():  # the next label
            break
        joined.append(line[indent:])
    return " ".join(part.strip() for part in joined)


def test_list_shows_the_whole_reason_at_any_width(stack):
    import os
    import subprocess
    import sys

    marker = uuid.uuid4().hex
    # Four missing fields and a pattern: a reason of about 200 characters, longer than any terminal line here.
    publish(stack, stack.topic_path, json.dumps({"action_id": "only", "user_email": "nobody"}).encode(),
            marker=marker)
    [letter] = marked(wait_listed(stack, lambda ls: len(marked(ls, marker)) == 1, "the dead letter"), marker)
    reason = letter["error_detail"]
    assert len(reason) > 150, reason
    for width in (60, 80, 200):
        shown = subprocess.run([sys.executable, "-m", "ltmctl", "--config", str(stack.resolved.path), "dlq", "list",
                                "--limit", "1000"], capture_output=True, text=True, timeout=120,
                               env={**os.environ, "COLUMNS": str(width)})
        assert shown.returncode == 0, shown.stderr
        assert max(len(line) for line in shown.stdout.splitlines()) <= width
        assert _reasons_as_shown(shown.stdout, letter["message_id"]) == reason, (width, shown.stdout)


def test_preview_shows_control_characters_as_escapes():
    assert dead_letters.DeadLetter("1", "", b"a\x00b\x1b[31mc", {}).preview() == "a\\x00b\\x1b[31mc"


def test_an_empty_list_prints_no_header(capsys):
    from ltmctl.commands.dlq import _table

    _table([])
    assert capsys.readouterr().out == ""
