"""`ltmctl demo` from a fresh project directory, through the installed script, as a newcomer runs it; what it
says it did is checked against the stack it leaves behind, not taken from its own text."""

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ltmctl.demo import INVALID_EVENTS, VALID_EVENTS
from ltmctl.local.processes import free_ports
from ltmctl.local.stack import PORT_NAMES
from tests.conftest import TEST_CONFIG, make_project

DEMO_TIMEOUT_S = 900  # a bound for CI, not a speed claim


def _run_demo(directory: Path, script: str) -> subprocess.CompletedProcess:
    """The demo in its own process group, killed whole (emulators included) if it outlives DEMO_TIMEOUT_S."""
    proc = subprocess.Popen([script, "demo"], cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "COLUMNS": "200"}, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=DEMO_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"the demo ran past {DEMO_TIMEOUT_S}s: {err[-2000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _stored_after_a_restart(directory: Path) -> int:
    """Distinct events in the demo's table, read from a stack started again on the same data; the emulator keeps
    no topics across a restart, so `up` must have applied the pipeline's infra again."""
    from ltmctl import clients, config
    from ltmctl.local import stack

    resolved = config.load(directory / "config" / "ltm.yaml", "local")
    state, _ = stack.up(resolved)
    data = clients.for_emulators(state.project, state.pubsub_host, state.bigquery_endpoint)
    try:
        p = resolved.pipeline
        data.publisher.get_topic(topic=data.publisher.topic_path(state.project, p.topic))
        for name in (p.subscription, p.dead_letter_subscription):
            data.subscriber.get_subscription(subscription=data.subscriber.subscription_path(state.project, name))
        sql = f"SELECT COUNT(DISTINCT event_id) AS n FROM `{state.project}.{p.dataset}.{p.table}`"
        return next(iter(data.bigquery.query(sql).result())).n
    finally:
        data.close()
        stack.down(resolved, force=True)


@pytest.mark.timeout(DEMO_TIMEOUT_S + 300)  # the demo's own bound applies, and leaves time to clean up after it
def test_demo_runs_end_to_end_and_cleans_up(tmp_path):
    ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES)), strict=True))
    text = TEST_CONFIG.replace("    project: ltm-test\n", "    project: ltm-demo\n    local:\n      ports: {"
                               + ", ".join(f"{k}: {v}" for k, v in ports.items()) + "}\n")
    make_project(tmp_path, text)
    script = shutil.which("ltmctl", path=str(Path(sys.executable).parent)) or "ltmctl"
    state_file = tmp_path / ".ltm" / "local" / "state.json"
    try:
        result = _run_demo(tmp_path, script)
        assert result.returncode == 0, result.stderr[-3000:]
        out = result.stdout
        assert f"{VALID_EVENTS} valid" in out and f"{len(INVALID_EVENTS)} invalid" in out
        assert f"{VALID_EVENTS} rows, none missing" in out
        assert "→ 200" in out and "without an assertion → 401" in out
        for error in ("not_json", "not_utf8", "schema", "too_large"):
            assert error in out
        # Latency as the histogram bucket it falls in, said so; every dead-letter reason whole (#17).
        assert re.search(r"p50 (≤|>) [\d.]+ ms, p99 (≤|>) [\d.]+ ms \(histogram buckets\)", out), out
        assert "user_email: does not match the contract pattern ^[!-.0-?A-~]+@[!-.0-?A-~]+\\.[!-.0-?A-~]+$" in out
        assert out.count("✓") == 0 and result.stderr.count("✓") == 7
        assert not state_file.exists()  # stopped, as it started it
        # Its ingest line is the ingest function's own count; the table, read again after a restart, agrees.
        stored, dead = map(int, re.search(r"ingest: (\d+) stored, (\d+) dead-lettered", out).groups())
        assert (stored, dead) == (VALID_EVENTS, len(INVALID_EVENTS))
        assert _stored_after_a_restart(tmp_path) == VALID_EVENTS
    finally:
        if state_file.exists():  # whatever failed above, no emulator outlives the test
            subprocess.run([script, "local", "down", "--force"], cwd=tmp_path, capture_output=True, timeout=120)
