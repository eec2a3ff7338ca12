"""`local down` while the Pub/Sub emulator still holds undelivered messages: drain them, or refuse (saying how
many would be lost) unless --force. The emulator keeps messages in memory only."""

import json
import os
import signal
import time
import uuid

from typer.testing import CliRunner

from ltmctl.cli import app
from ltmctl.local import processes
from tests.stack_support import clients_for, flat, state_of

runner = CliRunner()


def ltm(project_dir, *args):
    return runner.invoke(app, ["--config", str(project_dir / "config" / "ltm.yaml"), "local", *args])


def publish(project_dir, action: str, count: int) -> None:
    c = clients_for(project_dir)
    try:
        topic = c.publisher.topic_path("ltm-test", "ltm-events")
        futures = [c.publisher.publish(topic, json.dumps({
            "event_id": str(uuid.uuid4()), "action_id": action, "user_email": "d@example.com", "app_id": "crm",
            "app_department": "sales", "event_time": "2026-11-29T10:00:00Z"}).encode()) for _ in range(count)]
        for future in futures:
            future.result(timeout=60)  # accepted by the emulator
    finally:
        c.close()


def stored(project_dir, action: str) -> int:
    c = clients_for(project_dir)
    try:
        sql = f"SELECT COUNT(DISTINCT event_id) AS n FROM `ltm-test.ltm.events` WHERE action_id = '{action}'"
        return next(iter(c.bigquery.query(sql).result())).n
    finally:
        c.close()


def alive(project_dir) -> bool:
    return all(processes.alive(processes.Proc(p["pid"], p["start_ticks"]))
               for p in state_of(project_dir)["pieces"].values())


def test_down_with_a_backlog_refuses_then_drains_and_loses_nothing(project_dir):
    assert ltm(project_dir, "up", "--port-base", "0").exit_code == 0
    try:
        action = f"drain-{uuid.uuid4().hex[:8]}"
        # The function is paused (SIGSTOP to its process group) while the events are published, so a backlog is
        # certain when `down` looks: the stack stores 1,500 events in about two seconds.
        ingest = state_of(project_dir)["pieces"]["ingest"]["pid"]
        os.killpg(ingest, signal.SIGSTOP)
        try:
            publish(project_dir, action, 1500)
            refused = ltm(project_dir, "down", "--drain-timeout", "0")
        finally:
            os.killpg(ingest, signal.SIGCONT)
        assert refused.exit_code == 4, refused.output
        message = flat(refused.stderr)
        assert "not yet stored" in message and "--force" in message
        waiting = int(message.split(" message(s) accepted")[0].split()[-1].replace(",", ""))
        assert 0 < waiting <= 1500
        assert alive(project_dir)  # nothing was stopped

        drained = ltm(project_dir, "down")
        assert drained.exit_code == 0, drained.output
        assert "drain:" in drained.stderr and "Local stack is down" in drained.stderr
    finally:
        ltm(project_dir, "down", "--force")
    # Everything accepted was stored before the emulator went: bring the stack back and read it.
    assert ltm(project_dir, "up", "--port-base", "0").exit_code == 0
    try:
        assert stored(project_dir, action) == 1500
    finally:
        ltm(project_dir, "down", "--force")


def test_down_force_says_how_many_messages_it_lost(project_dir):
    assert ltm(project_dir, "up", "--port-base", "0").exit_code == 0
    try:
        # With the ingest function dead nothing can store them: no point waiting, refused at once, saying why.
        # Killed before the publish, so none of the events can be stored before `down` looks.
        ingest = state_of(project_dir)["pieces"]["ingest"]
        os.kill(ingest["pid"], signal.SIGKILL)
        while processes.alive(processes.Proc(ingest["pid"], ingest["start_ticks"])):
            time.sleep(0.05)
        publish(project_dir, f"force-{uuid.uuid4().hex[:8]}", 2000)
        refused = ltm(project_dir, "down")
        assert refused.exit_code == 4, refused.output
        assert "ingest is down" in flat(refused.stderr) and "ltmctl local up" in flat(refused.stderr)
        forced = ltm(project_dir, "down", "--force")
    except BaseException:
        ltm(project_dir, "down", "--force")
        raise
    assert forced.exit_code == 0, forced.output
    message = flat(forced.stderr)
    # "Lost N", or "Lost at least N" when the delivery says the emulator may hold more than was counted
    lost = int(message.split("Lost ")[1].removeprefix("at least ").split()[0].replace(",", ""))
    assert 0 < lost <= 2000
    assert "Local stack is down" in message
    assert not (project_dir / ".ltm" / "local" / "state.json").exists()
