"""`ltmctl publish` on the real local stack."""

import json
import uuid

from typer.testing import CliRunner

from ltmctl import synthetic
from ltmctl.cli import app
from ltmctl.environments import open_environment
from tests.conftest import TEST_CONFIG, make_project

runner = CliRunner()


def ltm(stack, *args, **kwargs):
    return runner.invoke(app, ["--config", str(stack.resolved.path), *args], **kwargs)


def pull_marked(stack, subscription, marker, expected):
    from tests.e2e.test_ingest import pull_all

    return [m for m in pull_all(stack, subscription, expected) if m.attributes.get("run") == marker]


def test_synthetic_events_are_valid_and_reproducible():
    from ingest_fn.contract import EventValidator

    validator = EventValidator()
    first = list(synthetic.events(200, seed=3))
    again = list(synthetic.events(200, seed=3))
    assert [e["event_id"] for e in first] == [e["event_id"] for e in again]
    assert all(validator.problems(e) == [] for e in first)
    assert {e["source"] for e in synthetic.events(50, seed=1, source="iot")} == {"iot"}
    assert len({e["app_id"] for e in first}) > 3


def test_with_ingest_mode_bigquery_producers_must_send_event_id(tmp_path):
    # Nothing defaults event_id there: a message without one would fail the write and be dead-lettered.
    from ltmctl import config, pipeline

    event = {"action_id": "login", "user_email": "Ana@Example.com", "app_id": "crm", "app_department": "sales",
             "event_time": "2026-11-30T06:00:00Z"}
    push = config.load(make_project(tmp_path / "push"), "local")
    bigquery = config.load(make_project(tmp_path / "bq", TEST_CONFIG.replace(
        "  table: events\n", "  table: events\n  ingest_mode: bigquery\n")), "local")
    assert pipeline.event_validator(push).problems(event) == []
    assert pipeline.event_validator(bigquery).problems(event) == ["event_id: required field is missing"]
    assert pipeline.event_validator(bigquery).problems({**event, "event_id": "e-1"}) == []


def test_publish_count_with_attributes(stack):
    sub = stack.fresh_subscription(stack.resolved.pipeline.topic)
    marker = uuid.uuid4().hex
    result = ltm(stack, "publish", "--count", "25", "--seed", "5", "--attr", f"run={marker}", "--attr", "k=v",
                 "--output", "json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["published"] == 25 and summary["failed"] == 0
    assert summary["first_message_id"] and summary["last_message_id"]
    got = pull_marked(stack, sub, marker, 25)
    assert len(got) == 25
    assert all(m.attributes["k"] == "v" for m in got)
    expected = {e["event_id"] for e in synthetic.events(25, seed=5)}
    assert {json.loads(m.data)["event_id"] for m in got} == expected


def test_jsonl_file_with_bad_lines_reports_them_by_line_and_skips_them(stack, tmp_path):
    good = {"action_id": "a1", "user_email": "f@example.com", "app_id": "x", "app_department": "y",
            "event_time": "2026-11-30T00:00:00Z"}
    lines = [json.dumps(good), "{broken", "", json.dumps({**good, "user_email": "nope"}), json.dumps(good)]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = ltm(stack, "publish", "--file", str(path), "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["published"] == 2
    assert "line 2: not JSON" in result.stderr
    assert "line 4: user_email: does not match" in result.stderr


def test_every_bad_line_is_skipped_with_its_reason_never_a_traceback(stack, tmp_path):
    # Issue 12 item 9: a binary file, an overflowing timestamp and deep nesting gave tracebacks; a 12 MB line hung
    # for 10 minutes, then a RetryError traceback.
    good = {"action_id": "a9", "user_email": "g@example.com", "app_id": "x", "app_department": "y",
            "event_time": "2026-11-30T00:00:00Z"}
    lines = [json.dumps(good).encode(), b"\xff\xfe\x00binary\x80",
             json.dumps({**good, "event_time": "0001-01-01T00:00:00+01:00"}).encode(),
             json.dumps({**good, "payload": {"d": "X"}}).replace('"X"', "[" * 100_000 + "]" * 100_000).encode(),
             json.dumps({**good, "payload": {"blob": "x" * (12 * 1024 * 1024)}}).encode(),
             json.dumps(good).encode()]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = ltm(stack, "publish", "--file", str(path), "-o", "json")
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["published"], summary["invalid_skipped"]) == (2, 4)
    assert "line 2: not UTF-8" in result.stderr
    assert "line 3: event_time: outside the range" in result.stderr
    assert "line 4: nested deeper than 32 levels" in result.stderr
    assert "line 5: (event): more than 1048576 bytes" in result.stderr


def test_allow_invalid_publishes_them_to_reach_the_dead_letter_topic(stack, tmp_path):
    sub = stack.fresh_subscription(stack.resolved.pipeline.topic)
    marker = uuid.uuid4().hex
    path = tmp_path / "bad.jsonl"
    path.write_text('{"action_id": "only"}\n')
    result = ltm(stack, "publish", "--file", str(path), "--allow-invalid", "--attr", f"run={marker}")
    assert result.exit_code == 0, result.output
    assert [m.data for m in pull_marked(stack, sub, marker, 1)] == [b'{"action_id": "only"}']


def test_stdin(stack):
    event = {"action_id": "stdin", "user_email": "s@example.com", "app_id": "x", "app_department": "y",
             "event_time": "2026-11-30T00:00:00Z"}
    result = ltm(stack, "publish", "--file", "-", "-o", "json", input=json.dumps(event) + "\n")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["published"] == 1


def test_rate_is_honoured(stack):
    result = ltm(stack, "publish", "--count", "11", "--rate", "20", "-o", "json")
    assert result.exit_code == 0
    # 11 messages at 20/s cannot be sent in less than 10 intervals of 50 ms
    assert json.loads(result.stdout)["seconds"] >= 0.5


def test_publish_failures_exit_1_with_reasons(stack, tmp_path):
    text = TEST_CONFIG.replace("topic: ltm-events\n", "topic: no-such-topic\n")
    path = make_project(tmp_path, text)
    # same running stack, but a topic that does not exist there
    (tmp_path / ".ltm").symlink_to(stack.resolved.root / ".ltm")
    result = runner.invoke(app, ["--config", str(path), "publish", "--count", "3", "-o", "json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["failed"] == 3
    assert "NotFound" in result.stderr


def test_usage_errors(stack):
    assert ltm(stack, "publish").exit_code == 2
    assert ltm(stack, "publish", "--count", "1", "--attr", "novalue").exit_code == 2
    assert ltm(stack, "publish", "--count", "1", "--source", "fax").exit_code == 2


def test_no_stack_running(project_dir):
    result = runner.invoke(app, ["--config", str(project_dir / "config" / "ltm.yaml"), "publish", "--count", "1"])
    assert result.exit_code == 4
    assert "ltmctl local up" in result.output


def test_synthetic_slices_match_a_single_run():
    from datetime import UTC, datetime
    from itertools import pairwise

    now = datetime.now(UTC)
    whole = list(synthetic.events(3000, seed=21, now=now))
    cuts = [0, 1, 1023, 1024, 1500, 2900, 3000]
    pieces = [e for a, b in pairwise(cuts) for e in synthetic.events(b - a, seed=21, now=now, start=a)]
    assert pieces == whole
    assert [e["event_id"] for e in synthetic.events(3000, seed=22)] != [e["event_id"] for e in whole]


def dedicated_topic(stack, tmp_path):
    """A config whose topic is a new one on the running stack with no push subscription (no ingest load);
    returns (resolved, pull subscription)."""
    from ltmctl import config

    name = f"t-multi-{uuid.uuid4().hex[:8]}"
    stack.clients.publisher.create_topic(request={"name": f"projects/{stack.project}/topics/{name}"})
    path = make_project(tmp_path, TEST_CONFIG.replace("topic: ltm-events\n", f"topic: {name}\n"))
    (tmp_path / ".ltm").symlink_to(stack.resolved.root / ".ltm")
    return config.load(path, "local"), stack.fresh_subscription(name), path


def message_ids_by_event(stack, subscription, expected):
    from tests.e2e.test_ingest import pull_all

    return {json.loads(m.data)["event_id"]: m.message_id for m in pull_all(stack, subscription, expected)}


def test_several_processes_publish_the_same_events_as_one(stack, tmp_path):
    from ltmctl import publishing

    resolved, sub, _ = dedicated_topic(stack, tmp_path)
    seen = []
    summary = publishing.publish_synthetic_to_env(open_environment(resolved), count=2500, seed=31, workers=3,
                                                  on_progress=lambda ok, failed: seen.append(ok + failed))
    assert (summary.published, summary.failed, summary.invalid) == (2500, [], [])
    assert summary.seconds > 0 and seen[-1] == 2500 and max(seen) == 2500
    got = message_ids_by_event(stack, sub, 2500)
    single = [e["event_id"] for e in synthetic.events(2500, seed=31)]
    assert sorted(got) == sorted(single)  # exactly N messages, the single-process run's events
    assert summary.first_message_id == got[single[0]] and summary.last_message_id == got[single[-1]]


def test_large_count_from_the_cli_in_several_processes(stack, tmp_path):
    from ltmctl import publishing

    resolved, sub, path = dedicated_topic(stack, tmp_path)
    count = publishing.PARALLEL_MIN_COUNT
    result = runner.invoke(app, ["--config", str(path), "publish", "--count", str(count), "--seed", "8",
                                 "-o", "json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["published"], summary["failed"]) == (count, 0)
    got = message_ids_by_event(stack, sub, count)
    single = [e["event_id"] for e in synthetic.events(count, seed=8)]
    assert len(got) == count and set(got) == set(single)
    assert (summary["first_message_id"], summary["last_message_id"]) == (got[single[0]], got[single[-1]])


def test_several_processes_report_every_failure_by_position(stack, tmp_path):
    from ltmctl import config, publishing

    path = make_project(tmp_path, TEST_CONFIG.replace("topic: ltm-events\n", "topic: no-such-topic\n"))
    (tmp_path / ".ltm").symlink_to(stack.resolved.root / ".ltm")
    seen = []
    env = open_environment(config.load(path, "local"))
    summary = publishing.publish_synthetic_to_env(env, count=40, seed=1, workers=2,
                                                  on_progress=lambda ok, failed: seen.append(ok + failed))
    assert summary.published == 0
    assert sorted(position for position, _ in summary.failed) == list(range(1, 41))
    assert all("NotFound" in reason for _, reason in summary.failed)
    assert seen[-1] == 40
    assert summary.first_message_id is None and summary.last_message_id is None


def test_without_a_stack_publish_says_so_before_drawing_a_progress_bar(tmp_path, monkeypatch):
    monkeypatch.delenv("LTM_ENV", raising=False)
    config_path = make_project(tmp_path, TEST_CONFIG)
    result = runner.invoke(app, ["--config", str(config_path), "publish", "--count", "5"])
    assert result.exit_code != 0
    assert result.exit_code == 4 and "No local stack" in result.stderr
    assert "Publishing" not in result.stderr and "0/5" not in result.stderr
