"""Crash trials on the real stack: kill -9 one piece while 5,000 events are in flight, follow the hint the CLI
prints, and read every accepted event exactly once (through the API's de-duplication and through BigQuery).

The Pub/Sub emulator keeps messages in memory only; when it is the piece killed, what it held is gone, and the
trial checks that the CLI says so and that nothing is stored twice or invented."""

import json
import os
import signal
import time
import urllib.request
import uuid
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from api_service import queries
from ltmctl.cli import app
from ltmctl.local import processes
from tests.conftest import make_project
from tests.stack_support import clients_for, flat, state_of

pytestmark = pytest.mark.e2e

runner = CliRunner()
EVENTS = 5000
# The wait for all 5,000 ends when rows stop arriving (a loss shows as a stall), within what pytest-timeout leaves.
# A killed delivery process leaves the messages it held leased until their ack deadline (20 s here) passes, and a
# killed function leaves those in flight to be nacked: either is a pause of about that long, never a loss.
STALL_S = 45
BUDGET_S = 250


def ltm(project_dir, *args):
    return runner.invoke(app, ["--config", str(project_dir / "config" / "ltm.yaml"), *args])


def publish(project_dir, action: str, user: str, count: int) -> set[str]:
    """The event ids the emulator accepted (each future resolved with a message id)."""
    now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    c = clients_for(project_dir)
    try:
        topic = c.publisher.topic_path("ltm-test", "ltm-events")
        events = [{"event_id": str(uuid.uuid4()), "action_id": action, "user_email": user, "app_id": "crm",
                   "app_department": "sales", "event_time": now} for _ in range(count)]
        futures = [(e["event_id"], c.publisher.publish(topic, json.dumps(e).encode())) for e in events]
        return {event_id for event_id, future in futures if future.result(timeout=120)}
    finally:
        c.close()


def stored_ids(project_dir, action: str) -> list[str]:
    c = clients_for(project_dir)
    try:
        from google.cloud import bigquery

        config = bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("a", "STRING", action)])
        rows = c.bigquery.query("SELECT event_id FROM `ltm-test.ltm.events` WHERE action_id = @a",
                                job_config=config).result(timeout=60)
        return [r.event_id for r in rows]
    finally:
        c.close()


def wait_stored(project_dir, action: str, at_least: int, deadline_s: float, stall_s: float = STALL_S) -> set[str]:
    """The stored event ids once there are at_least of them, or when none arrived for stall_s, or at the deadline."""
    deadline = time.monotonic() + deadline_s
    seen, progress_at = -1, time.monotonic()
    while True:
        ids = set(stored_ids(project_dir, action))
        if len(ids) > seen:
            seen, progress_at = len(ids), time.monotonic()
        if len(ids) >= at_least or time.monotonic() > min(deadline, progress_at + stall_s):
            return ids
        time.sleep(1.0)


def api_count(project_dir, action: str, user: str) -> int:
    """The event count the API answers (its reads de-duplicate on event_id)."""
    from ltmctl import config
    from ltmctl.local import stack

    resolved = config.load(project_dir / "config" / "ltm.yaml", "local")
    token = stack.mint_token(resolved, "tester@example.com", 300)
    url = f"http://127.0.0.1:{state_of(project_dir)['ports']['api']}/get_data/{action}:{user}?limit=1"
    request = urllib.request.Request(url, headers={"x-goog-iap-jwt-assertion": token})
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback
        return json.load(response)["count"]


def bigquery_count(project_dir, action: str, user: str) -> int:
    c = clients_for(project_dir)
    try:
        count, _ = queries.get_data(c.bigquery, "ltm-test.ltm.events", action_id=action, user_email=user, days=3650)
        return count
    finally:
        c.close()


def kill_mid_stream(project_dir, piece: str, action: str) -> int:
    """Wait until storing is under way, SIGKILL the piece; returns how many were stored when it died."""
    under_way = wait_stored(project_dir, action, 200, 60)
    assert len(under_way) >= 200, "storing never got under way"
    recorded = state_of(project_dir)["pieces"][piece]
    os.kill(recorded["pid"], signal.SIGKILL)
    proc = processes.Proc(recorded["pid"], recorded["start_ticks"])
    while processes.alive(proc):
        time.sleep(0.05)
    return len(under_way)


def follow_the_hint(project_dir, piece: str) -> str:
    """`local status` says what is wrong and what to run; run it. Returns everything the CLI said."""
    status = ltm(project_dir, "local", "status")
    assert status.exit_code == 4, status.output
    said = flat(status.stderr)
    assert f"partly down: {piece}" in said
    assert "Run `ltmctl local up`" in said
    up = ltm(project_dir, "local", "up")
    assert up.exit_code == 0, up.output
    return said + " " + flat(up.stderr)


@pytest.fixture
def project_dir(tmp_path):
    make_project(tmp_path)
    result = ltm(tmp_path, "local", "up", "--port-base", "0")
    assert result.exit_code == 0, result.output
    try:
        yield tmp_path
    finally:
        ltm(tmp_path, "local", "down", "--force")


@pytest.mark.parametrize("piece", ["ingest", "delivery", "bigquery", "api"])
def test_a_piece_killed_mid_stream_loses_nothing_and_stores_nothing_twice(project_dir, piece):
    started = time.monotonic()
    action, user = f"crash-{piece}-{uuid.uuid4().hex[:6]}", "crash@example.com"
    accepted = publish(project_dir, action, user, EVENTS)
    assert len(accepted) == EVENTS
    pubsub_pid = state_of(project_dir)["pieces"]["pubsub"]["pid"]

    stored_when_killed = kill_mid_stream(project_dir, piece, action)
    assert stored_when_killed < EVENTS  # killed mid-stream, not after the last insert
    said = follow_the_hint(project_dir, piece)
    assert f"restarting what is down: {piece}" in said and "lose" not in said
    assert state_of(project_dir)["pieces"]["pubsub"]["pid"] == pubsub_pid  # its backlog was left alone

    stored = wait_stored(project_dir, action, EVENTS, BUDGET_S - (time.monotonic() - started))
    assert stored == accepted, f"{len(accepted - stored)} accepted events missing"
    assert bigquery_count(project_dir, action, user) == EVENTS
    assert api_count(project_dir, action, user) == EVENTS


def test_the_pubsub_emulator_killed_mid_stream_is_reported_and_nothing_is_stored_twice(project_dir):
    action, user = f"crash-pubsub-{uuid.uuid4().hex[:6]}", "crash@example.com"
    accepted = publish(project_dir, action, user, EVENTS)
    stored_when_killed = kill_mid_stream(project_dir, "pubsub", action)
    assert stored_when_killed < EVENTS

    said = follow_the_hint(project_dir, "pubsub")
    # Honest about it: the emulator keeps messages in memory only; status and up both say they are gone.
    assert said.count("in memory only") >= 2 and "went with it" in said

    # What was stored before the crash stays, once; nothing is invented; the restarted pipeline works.
    time.sleep(2)  # deliveries the ingest was finishing when the emulator died
    stored = set(stored_ids(project_dir, action))
    assert stored <= accepted and len(stored) >= stored_when_killed
    assert bigquery_count(project_dir, action, user) == len(stored)
    assert api_count(project_dir, action, user) == len(stored)
    after = f"after-{uuid.uuid4().hex[:6]}"
    again = publish(project_dir, after, user, 100)
    assert wait_stored(project_dir, after, 100, 60) == again
