"""`ltmctl verify` on the real local stack: every check passes on a healthy stack, and each fails, with its own
message and exit 4, when its part is broken. The stack is this module's own (the tests break it, then mend it)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import REPO, running_stack

NAMES = ["API ready", "event stored exactly once, as sent", "GET /get_data with a credential answers the event",
         "GET /app_info without a credential is refused", "an event published twice is counted once",
         "an invalid event is dead-lettered with its reason", "the API's requests show in metrics"]


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    with running_stack(tmp_path_factory.mktemp("verify")) as s:
        yield s


def verify(s, *args: str) -> tuple[int, dict, str]:
    from ltmctl.cli import app

    result = CliRunner().invoke(app, ["--config", str(s.resolved.path), "verify", "-o", "json", *args])
    try:
        report = json.loads(result.stdout)
    except ValueError:
        report = {}
    return result.exit_code, report, result.output


def by_name(report: dict) -> dict[str, dict]:
    return {c["name"]: c for c in report["checks"]}


def failed(report: dict) -> list[str]:
    return [c["name"] for c in report["checks"] if not c["ok"]]


def test_verify_passes_on_a_healthy_stack(local):
    code, report, output = verify(local, "--timeout", "90")
    assert code == 0, output
    assert [c["name"] for c in report["checks"]] == NAMES
    assert failed(report) == []
    checks = by_name(report)
    assert "stored once" in checks[NAMES[1]]["saw"] and "every field as sent" in checks[NAMES[1]]["saw"]
    assert "counted once by the API" in checks[NAMES[4]]["saw"]
    assert "schema" in checks[NAMES[5]]["saw"]


def test_text_output_has_one_line_per_check(local):
    from ltmctl.cli import app

    result = CliRunner().invoke(app, ["--config", str(local.resolved.path), "verify", "--timeout", "90"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line[:1] in "✓✗"]
    assert len(lines) == len(NAMES) and all(line.startswith("✓ ") and line.endswith("s)") for line in lines)


def test_ingest_stopped_fails_the_stored_check(local):
    from ltmctl.local import stack

    stack.restart_piece(local.resolved, "ingest", stop_only=True)
    try:
        code, report, output = verify(local, "--timeout", "12")
    finally:
        stack.restart_piece(local.resolved, "ingest")
    assert code == 4, output
    checks = by_name(report)
    assert failed(report) == [NAMES[1], NAMES[2], NAMES[4], NAMES[5]]
    assert "not stored within 12s" in checks[NAMES[1]]["saw"]
    assert "ingest.log" in checks[NAMES[1]]["hint"] and "ltmctl local status" in checks[NAMES[1]]["hint"]


def test_api_stopped_fails_the_api_checks(local):
    from ltmctl.local import stack

    stack.restart_piece(local.resolved, "api", stop_only=True)
    try:
        code, report, output = verify(local, "--timeout", "30", "--metrics-wait", "1")
    finally:
        stack.restart_piece(local.resolved, "api")
    assert code == 4, output
    checks = by_name(report)
    assert NAMES[1] not in failed(report) and NAMES[5] not in failed(report)  # the data path still works
    assert set(failed(report)) == {NAMES[0], NAMES[2], NAMES[3], NAMES[4], NAMES[6]}
    assert checks[NAMES[0]]["saw"].startswith("/readyz answered no answer (ConnectError")
    assert "api.log" in checks[NAMES[0]]["hint"]


def test_dead_letter_subscription_deleted_fails_the_dead_letter_check(local):
    path = local.clients.subscriber.subscription_path(local.project, local.resolved.pipeline.dead_letter_subscription)
    subscription = local.clients.subscriber.get_subscription(request={"subscription": path})
    local.clients.subscriber.delete_subscription(request={"subscription": path})
    try:
        code, report, output = verify(local, "--timeout", "60")
    finally:
        local.clients.subscriber.create_subscription(request={"name": path, "topic": subscription.topic,
                                                              "ack_deadline_seconds": 60})
    assert code == 4, output
    assert failed(report) == [NAMES[5]]
    check = by_name(report)[NAMES[5]]
    assert check["saw"] == f"the dead-letter subscription {path} does not exist"
    assert "ltmctl dlq list" in check["hint"]


def test_an_api_answering_without_auth_fails_the_refused_check(local):
    from ltmctl.local import processes, stack

    state = stack.read_state(local.resolved)
    api = state.pieces["api"]
    stack.restart_piece(local.resolved, "api", stop_only=True)
    argv = [a if a != "api_service.app:from_env" else "tests.e2e.noauth_api:from_env" for a in api.argv]
    log = Path(api.log).with_name("noauth-api.log")
    proc = processes.spawn(argv, log, {**os.environ, **api.env}, REPO)
    try:
        stack._wait_healthy([stack.PieceState("api", proc.pid, proc.start_ticks, api.port, str(log), "/healthz")],
                            lambda *_: None)
        code, report, output = verify(local, "--timeout", "60")
    finally:
        processes.stop(proc)
        stack.restart_piece(local.resolved, "api")
    assert code == 4, output
    assert failed(report) == [NAMES[3]]
    assert "without a credential answered HTTP 200" in by_name(report)[NAMES[3]]["saw"]
    assert "want 401" in by_name(report)[NAMES[3]]["saw"]


def test_verify_without_a_stack_says_so(tmp_path):
    from ltmctl.cli import app
    from tests.conftest import make_project

    result = CliRunner().invoke(app, ["--config", str(make_project(tmp_path)), "verify"])
    assert result.exit_code == 4
    assert "ltmctl local up" in result.output
