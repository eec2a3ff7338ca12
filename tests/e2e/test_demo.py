"""`ltmctl demo` from a fresh project directory, through the installed script, as a newcomer runs it."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from ltmctl.demo import VALID_EVENTS
from ltmctl.local.processes import free_ports
from ltmctl.local.stack import PORT_NAMES
from tests.conftest import TEST_CONFIG, make_project

DEMO_TIMEOUT_S = 900  # a bound for CI, not a speed claim


def test_demo_runs_end_to_end_and_cleans_up(tmp_path):
    ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES)), strict=True))
    text = TEST_CONFIG.replace("    project: ltm-test\n", "    project: ltm-demo\n    local:\n      ports: {"
                               + ", ".join(f"{k}: {v}" for k, v in ports.items()) + "}\n")
    make_project(tmp_path, text)
    script = shutil.which("ltmctl", path=str(Path(sys.executable).parent)) or "ltmctl"
    result = subprocess.run([script, "demo"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=DEMO_TIMEOUT_S, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert f"{VALID_EVENTS} valid" in out and "5 invalid" in out
    assert f"{VALID_EVENTS} rows, none missing" in out
    assert "→ 200" in out and "without an assertion → 401" in out
    for error in ("not_json", "not_utf8", "schema", "too_large"):
        assert error in out
    assert "p99" in out
    assert out.count("✓") == 0 and result.stderr.count("✓") == 7
    assert not (tmp_path / ".ltm" / "local" / "state.json").exists()  # stopped, as it started it
