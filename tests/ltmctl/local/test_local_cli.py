"""`ltmctl local up/status/env/down` through the CLI, on real processes."""

import json
import os
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ltmctl.cli import app
from ltmctl.local import processes
from ltmctl.local.stack import PORT_NAMES
from tests.stack_support import clients_for

runner = CliRunner()


def ltm(project_dir, *args):
    return runner.invoke(app, ["--config", str(project_dir / "config" / "ltm.yaml"), "local", *args])


def pieces_of(project_dir) -> dict:
    return json.loads((project_dir / ".ltm" / "local" / "state.json").read_text())["pieces"]


def test_up_status_env_down(project_dir):
    result = ltm(project_dir, "up", "--port-base", "0")
    try:
        assert result.exit_code == 0, result.output
        assert "Local stack is up" in result.output
        state = pieces_of(project_dir)
        assert set(state) == {"pubsub", "bigquery", "ingest", "api", "recorder", "delivery"}
        assert all(processes.alive(processes.Proc(p["pid"], p["start_ticks"])) for p in state.values())
        # Two function instances (functions-framework's WORKERS), each serving the deployed concurrency (its
        # THREADS); the delivery sends as many as all instances serve.
        assert (state["ingest"]["env"]["WORKERS"], state["ingest"]["env"]["THREADS"]) == ("2", "80")
        argv = state["delivery"]["argv"]
        assert argv[argv.index("--concurrency") + 1] == "160"

        status = ltm(project_dir, "status", "--output", "json")
        assert status.exit_code == 0, status.output
        rows = {r["piece"]: r for r in json.loads(status.stdout)}
        assert all(r["healthy"] for r in rows.values())
        assert rows["bigquery"]["pid"] == state["bigquery"]["pid"]
        delivery = rows["delivery"]
        assert (delivery["in_flight"], delivery["backlog"], delivery["concurrency"]) == (0, 0, 160)
        assert (rows["ingest"]["instances"], rows["ingest"]["threads"]) == (2, 80)
        table = runner.invoke(app, ["--config", str(project_dir / "config" / "ltm.yaml"), "local", "status"],
                              env={"COLUMNS": "300"})
        assert table.exit_code == 0 and "0/160 in flight, backlog 0" in table.stdout
        assert "2 instances × 80 requests at once" in table.stdout
        assert rows["recorder"]["every_s"] == 10 and "snapshots this run, every 10s" in table.stdout

        # The emulator does not push: the ingest subscription is a pull subscription the delivery process reads.
        c = clients_for(project_dir)
        try:
            subscription = c.subscriber.get_subscription(
                request={"subscription": "projects/ltm-test/subscriptions/ltm-events-ingest"})
        finally:
            c.close()
        assert subscription.push_config.push_endpoint == ""

        env = ltm(project_dir, "env")
        assert env.exit_code == 0
        lines = dict(line.removeprefix("export ").split("=", 1) for line in env.stdout.splitlines())
        assert lines["PUBSUB_EMULATOR_HOST"] == f"127.0.0.1:{state['pubsub']['port']}"
        assert lines["BIGQUERY_EMULATOR_HOST"] == f"http://127.0.0.1:{state['bigquery']['port']}"
        assert lines["LTM_API_URL"] == f"http://127.0.0.1:{state['api']['port']}"
        for key in ("LTM_PROJECT", "LTM_TOPIC", "LTM_DATASET", "LTM_TABLE", "LTM_DLQ_SUBSCRIPTION"):
            assert lines[key]
        # gcloud and bq: properties and two files of the stack's own, private, written by `env`
        clients_dir = project_dir / ".ltm" / "local" / "clients"
        assert lines["CLOUDSDK_CORE_PROJECT"] == "ltm-test"
        assert lines["CLOUDSDK_API_ENDPOINT_OVERRIDES_PUBSUB"] == f"http://127.0.0.1:{state['pubsub']['port']}/"
        token, rc = Path(lines["CLOUDSDK_AUTH_ACCESS_TOKEN_FILE"]), Path(lines["BIGQUERYRC"])
        assert token.parent == rc.parent == clients_dir and stat.S_IMODE(clients_dir.stat().st_mode) == 0o700
        assert stat.S_IMODE(token.stat().st_mode) == stat.S_IMODE(rc.stat().st_mode) == 0o600
        assert f"--api=http://127.0.0.1:{state['bigquery']['port']}\n--project_id=ltm-test\n" in rc.read_text()
        assert "[query]\n--use_legacy_sql=false\n" in rc.read_text()  # bq's own default is legacy SQL
        # a shell can use these lines as they are
        shell = subprocess.run(["bash", "-c", env.stdout + '\necho "$LTM_PROJECT/$PUBSUB_EMULATOR_HOST"'],
                               capture_output=True, text=True, check=True)
        assert shell.stdout.strip() == f"ltm-test/127.0.0.1:{state['pubsub']['port']}"

        again = ltm(project_dir, "up")
        assert again.exit_code == 0 and "already running" in again.output
        assert pieces_of(project_dir) == state
    finally:
        down = ltm(project_dir, "down")
    assert down.exit_code == 0, down.output
    for p in state.values():
        assert not processes.alive(processes.Proc(p["pid"], p["start_ticks"]))
    assert not (project_dir / ".ltm" / "local" / "state.json").exists()
    assert not clients_dir.exists()  # a shell still pointing at them reaches nothing
    assert ltm(project_dir, "status").exit_code == 4


def test_down_after_a_process_was_killed_stops_the_rest(project_dir):
    assert ltm(project_dir, "up", "--port-base", "0").exit_code == 0
    state = pieces_of(project_dir)
    try:
        os.kill(state["bigquery"]["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while processes.alive(processes.Proc(state["bigquery"]["pid"], state["bigquery"]["start_ticks"])):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        status = ltm(project_dir, "status", "--output", "json")
        assert status.exit_code == 4
        assert {r["piece"]: r["healthy"] for r in json.loads(status.stdout)}["bigquery"] is False
    finally:
        down = ltm(project_dir, "down")
    assert down.exit_code == 0
    assert "bigquery: was not running" in down.output
    assert "pubsub: stopped" in down.output and "ingest: stopped" in down.output and "api: stopped" in down.output
    for p in state.values():
        assert not processes.alive(processes.Proc(p["pid"], p["start_ticks"]))


def test_down_leaves_a_process_that_reused_a_pid_alone(project_dir):
    # A stale state file whose pid now belongs to someone else: the start time tells them apart.
    bystander = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        state_dir = project_dir / ".ltm" / "local"
        state_dir.mkdir(parents=True)
        piece = {"name": "pubsub", "pid": bystander.pid, "start_ticks": 1, "port": 1, "log": "x",
                 "health_path": "/", "argv": ["x"], "env": {}}
        (state_dir / "state.json").write_text(json.dumps({
            "environment": "local", "project": "ltm-test", "ports": {}, "pieces": {"pubsub": piece},
            "started_at": "2026-01-01T00:00:00+00:00"}))
        result = ltm(project_dir, "down")
        assert result.exit_code == 0
        assert "pubsub: was not running" in result.output
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_port_in_use_is_a_clear_error(project_dir):
    base = processes.free_ports(1)[0]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", base))
        busy.listen()
        result = ltm(project_dir, "up", "--port-base", str(base))
    assert result.exit_code == 4
    assert f"Port {base} (pubsub) is already in use" in result.output
    assert "--port-base" in result.output
    assert not (project_dir / ".ltm" / "local" / "state.json").exists()


@pytest.mark.parametrize("command", [["status"], ["env"]])
def test_commands_that_need_the_stack_say_so(project_dir, command):
    result = ltm(project_dir, *command)
    assert result.exit_code == 4
    assert "ltmctl local up" in result.output


def test_local_commands_refuse_a_gcp_environment(project_dir):
    result = runner.invoke(app, ["--config", str(project_dir / "config" / "ltm.yaml"), "--env", "dev",
                                 "local", "up"])
    assert result.exit_code == 2
    assert "gcp environment" in result.output


def test_port_base_layout():
    from ltmctl import config
    from ltmctl.local.stack import choose_ports

    resolved = config.load(config.find_config()[0])
    assert choose_ports(resolved, 20000) == {name: 20000 + i for i, name in enumerate(PORT_NAMES)}
    assert choose_ports(resolved, None)["pubsub"] == 8085
    assert len(set(choose_ports(resolved, 0).values())) == len(PORT_NAMES)


def test_up_refuses_ingest_mode_bigquery_before_starting_anything(tmp_path):
    # The Pub/Sub emulator has no BigQuery subscriptions; running push instead would test another pipeline.
    from tests.conftest import TEST_CONFIG, make_project

    text = TEST_CONFIG.replace("  table: events\n", "  table: events\n  ingest_mode: bigquery\n")
    path = make_project(tmp_path, text)
    line = text.splitlines().index("  ingest_mode: bigquery") + 1

    for command in (["local", "up", "--port-base", "0"], ["demo"]):
        result = runner.invoke(app, ["--config", str(path), *command])
        assert result.exit_code == 3, (command, result.output)
        message = "".join(result.stderr.split())  # the panel wraps lines anywhere
        assert f"{path}:{line}:pipeline.ingest_mode:bigquery" in message
        assert "noBigQuerysubscriptions" in message and "environments.NAME.ingest_mode" in message
        assert not (tmp_path / ".ltm" / "local" / "state.json").exists()


def test_ingest_mode_set_on_an_environment_overrides_the_pipeline_for_it_only(tmp_path):
    from ltmctl import config
    from tests.conftest import TEST_CONFIG, make_project

    text = TEST_CONFIG + "    ingest_mode: bigquery\n"  # on dev, the last environment
    path = make_project(tmp_path, text)
    assert config.load(path, "dev").pipeline.ingest_mode == "bigquery"
    assert config.load(path, "local").pipeline.ingest_mode == "push"

    # Set on the local environment itself, the refusal names that key and line.
    text = TEST_CONFIG.replace("    project: ltm-test\n", "    project: ltm-test\n    ingest_mode: bigquery\n")
    path = make_project(tmp_path, text)
    line = text.splitlines().index("    ingest_mode: bigquery") + 1
    result = runner.invoke(app, ["--config", str(path), "local", "up", "--port-base", "0"])
    assert result.exit_code == 3
    assert f"{path}:{line}:environments.local.ingest_mode:bigquery" in "".join(result.stderr.split())


def test_a_stack_started_before_the_recorder_existed_gets_it_on_up_and_keeps_the_rest(project_dir):
    from ltmctl import config
    from ltmctl.local import stack

    resolved = config.load(project_dir / "config" / "ltm.yaml", "local")
    state, _ = stack.up(resolved, port_base=0)
    try:
        # What an older version wrote: no recorder piece, no recorder port.
        processes.stop(state.pieces["recorder"].proc)
        raw = json.loads(stack.state_file(resolved).read_text())
        del raw["pieces"]["recorder"], raw["ports"]["recorder"]
        stack.state_file(resolved).write_text(json.dumps(raw))
        before = {name: p["pid"] for name, p in raw["pieces"].items()}

        again, started = stack.up(resolved)
        assert started
        assert {name: p.pid for name, p in again.pieces.items() if name != "recorder"} == before
        assert {k: v for k, v in again.ports.items() if k != "recorder"} == raw["ports"]
        assert stack.healthy(again.pieces["recorder"])
    finally:
        stack.down(resolved, force=True)
