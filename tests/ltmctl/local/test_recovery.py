"""A local stack that lost a piece: what `status`, `env` and `up` say and do, on real processes.

One stack for the module (each test leaves it whole again), on free ports."""

import json
import os
import signal
import stat
import time
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ltmctl import clients
from ltmctl.cli import app
from ltmctl.local import processes
from tests.conftest import make_project

runner = CliRunner()
STARTED_WITH: dict = {}  # the ports of the module's first `up --port-base 0`


def ltm(project_dir, *args):
    return runner.invoke(app, ["--config", str(project_dir / "config" / "ltm.yaml"), *args])


def flat(text: str) -> str:
    return " ".join(text.replace("│", " ").split())  # the error panel wraps lines and draws borders


def state_of(project_dir) -> dict:
    return json.loads((project_dir / ".ltm" / "local" / "state.json").read_text())


def kill(project_dir, name: str) -> dict:
    piece = state_of(project_dir)["pieces"][name]
    os.kill(piece["pid"], signal.SIGKILL)
    proc = processes.Proc(piece["pid"], piece["start_ticks"])
    deadline = time.monotonic() + 10
    while processes.alive(proc):
        assert time.monotonic() < deadline, f"{name} outlived SIGKILL"
        time.sleep(0.05)
    return piece


def clients_for(project_dir):
    state = state_of(project_dir)
    return clients.for_emulators(state["project"], f"127.0.0.1:{state['ports']['pubsub']}",
                                 f"http://127.0.0.1:{state['ports']['bigquery']}")


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    directory = tmp_path_factory.mktemp("recovery")
    make_project(directory)
    # A log left world-readable by an earlier version: `up` must close it.
    (directory / ".ltm" / "local" / "logs").mkdir(parents=True)
    (directory / ".ltm" / "local" / "logs" / "api.log").write_text("old\n")
    os.chmod(directory / ".ltm" / "local" / "logs" / "api.log", 0o644)
    os.chmod(directory / ".ltm" / "local", 0o755)
    result = ltm(directory, "local", "up", "--port-base", "0")
    assert result.exit_code == 0, result.output
    STARTED_WITH.update(state_of(directory)["ports"])
    try:
        yield directory
    finally:
        ltm(directory, "local", "down", "--force")


def test_files_under_ltm_local_are_private(live):
    c = clients_for(live)
    try:
        # Make bqemulator write rows (data files appear) and the services log.
        topic = c.publisher.topic_path("ltm-test", "ltm-events")
        event = {"event_id": str(uuid.uuid4()), "action_id": "modes", "user_email": "m@example.com",
                 "app_id": "crm", "app_department": "sales", "event_time": "2026-11-29T10:00:00Z"}
        c.publisher.publish(topic, json.dumps(event).encode()).result(timeout=30)
        deadline = time.monotonic() + 60
        while not list(c.bigquery.query("SELECT 1 FROM `ltm-test.ltm.events` WHERE action_id = 'modes'").result()):
            assert time.monotonic() < deadline
            time.sleep(0.3)
    finally:
        c.close()
    root = live / ".ltm" / "local"
    paths = [root, *root.rglob("*")]
    assert any(p.parent.name == "bigquery" for p in paths) and any(p.suffix == ".log" for p in paths)
    loose = [f"{p} {stat.filemode(p.stat().st_mode)}" for p in paths
             if stat.S_IMODE(p.stat().st_mode) & 0o077]
    assert loose == []
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in paths if p.is_file())


def test_a_partly_dead_stack_names_the_dead_piece_and_what_to_do(live):
    kill(live, "ingest")
    for command in (["local", "env"], ["local", "status"], ["dlq", "list"]):
        result = ltm(live, *command)
        assert result.exit_code == 4, (command, result.output)
        message = flat(result.stderr)
        assert "No local stack is running" not in message
        assert "partly down: ingest" in message, message
        assert "ltmctl local up" in message and "restarts only ingest" in message
    assert ltm(live, "local", "up").exit_code == 0


def test_up_restarts_only_what_died_and_leaves_the_emulator_with_its_backlog(live):
    c = clients_for(live)
    try:
        # A message waiting in the emulator's memory, on a subscription no one reads.
        waiting = f"projects/ltm-test/subscriptions/keep-{uuid.uuid4().hex[:8]}"
        c.subscriber.create_subscription(request={"name": waiting, "topic": "projects/ltm-test/topics/ltm-events"})
        c.publisher.publish(c.publisher.topic_path("ltm-test", "ltm-events"), b"kept", marker="m").result(30)
        before = state_of(live)
        for name in ("ingest", "bigquery", "api"):
            kill(live, name)
            result = ltm(live, "local", "up")
            assert result.exit_code == 0, result.output
            assert f"restarting what is down: {name}" in flat(result.stderr)
            after = state_of(live)
            assert after["pieces"]["pubsub"]["pid"] == before["pieces"]["pubsub"]["pid"]
            assert after["pieces"][name]["pid"] != before["pieces"][name]["pid"]
            assert all(after["pieces"][other]["pid"] == before["pieces"][other]["pid"]
                       for other in before["pieces"] if other != name)
            before = after
        response = c.subscriber.pull(request={"subscription": waiting, "max_messages": 10}, timeout=10)
        assert [m.message.data for m in response.received_messages] == [b"kept"]
        status = ltm(live, "local", "status", "--output", "json")
        assert status.exit_code == 0 and all(row["healthy"] for row in json.loads(status.stdout))
    finally:
        c.close()


def test_up_after_a_partial_death_keeps_the_ports_the_stack_was_started_with(live):
    ports = state_of(live)["ports"]
    assert ports == STARTED_WITH and ports["pubsub"] != 8085  # nothing moved the stack so far
    env_before = ltm(live, "local", "env").stdout
    kill(live, "api")
    result = ltm(live, "local", "up")
    assert result.exit_code == 0, result.output
    assert state_of(live)["ports"] == ports
    assert state_of(live)["pieces"]["api"]["port"] == ports["api"]
    assert ltm(live, "local", "env").stdout == env_before
    # Moving a running stack would restart the emulator: refused, saying so.
    moved = ltm(live, "local", "up", "--port-base", str(processes.free_ports(1)[0] // 2 + 1024))
    assert moved.exit_code == 2, moved.output
    assert "lose the messages" in flat(moved.stderr)
    assert state_of(live)["ports"] == ports


def test_a_dead_pubsub_emulator_is_reported_as_lost_messages(live):
    c = clients_for(live)
    try:
        waiting = f"projects/ltm-test/subscriptions/gone-{uuid.uuid4().hex[:8]}"
        c.subscriber.create_subscription(request={"name": waiting, "topic": "projects/ltm-test/topics/ltm-events"})
        c.publisher.publish(c.publisher.topic_path("ltm-test", "ltm-events"), b"gone").result(30)
    finally:
        c.close()
    ports = state_of(live)["ports"]
    kill(live, "pubsub")
    status = ltm(live, "local", "status")
    assert status.exit_code == 4
    message = flat(status.stderr)
    assert "partly down: pubsub" in message and "in memory only" in message and "went with it" in message
    # Nothing is reported as published while there is no emulator to accept it.
    published = ltm(live, "publish", "--count", "5")
    assert published.exit_code == 4, published.output
    assert "pubsub" in flat(published.stderr)

    up = ltm(live, "local", "up")
    assert up.exit_code == 0, up.output
    message = flat(up.stderr)
    assert "Pub/Sub emulator had died" in message and "in memory only" in message
    assert "create projects/ltm-test/topics/ltm-events" in message  # infra re-applied to the new emulator
    assert state_of(live)["ports"] == ports
    c = clients_for(live)
    try:
        from google.api_core import exceptions

        with pytest.raises(exceptions.NotFound):  # the emulator really did forget: nothing is claimed kept
            c.subscriber.pull(request={"subscription": waiting, "max_messages": 1}, timeout=5)
    finally:
        c.close()


def test_health_checks_tell_the_pieces_apart(tmp_path):
    # Something that answers 200 "Ok" on every path, as the Pub/Sub emulator does: only "pubsub" may take it
    # for itself (two pieces configured on one port made the API look healthy).
    import subprocess
    import sys

    from ltmctl.local.stack import PieceState, healthy

    port = processes.free_ports(1)[0]
    server = Path(tmp_path / "ok.py")
    server.write_text(
        "import http.server, sys\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers(); self.wfile.write(b'Ok\\n')\n"
        "    def log_message(self, *a): pass\n"
        "http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n")
    proc = subprocess.Popen([sys.executable, str(server), str(port)])
    try:
        ticks = processes.start_ticks(proc.pid)
        piece = lambda name, path: PieceState(name, proc.pid, ticks, port, "x", path)  # noqa: E731
        deadline = time.monotonic() + 20
        while not healthy(piece("pubsub", "/")):
            assert time.monotonic() < deadline, "the stand-in never answered"
            time.sleep(0.1)
        for name, path in (("api", "/healthz"), ("bigquery", "/healthz"), ("ingest", "/")):
            assert not healthy(piece(name, path)), name
    finally:
        proc.kill()
        proc.wait()
