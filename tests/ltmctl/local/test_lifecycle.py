"""The local stack's life cycle at its edges: a piece that ignores SIGTERM, and a machine without the Pub/Sub
emulator. (BigQuery data surviving `down` and `up` is shown by tests/e2e/test_demo.py, which reads the demo's
rows from a stack started again on the same data.)"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from ltmctl.local import processes

STUBBORN = """
import os, signal, sys, time
def noted(signum, frame):
    print("got SIGTERM, ignoring it", flush=True)
signal.signal(signal.SIGTERM, noted)
if os.fork() == 0:  # a child in the same group, as the emulators' launchers leave
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
while True:
    time.sleep(0.1)
"""


def test_down_kills_a_piece_that_ignores_sigterm_after_the_grace_period(tmp_path: Path) -> None:
    log = tmp_path / "stubborn.log"
    proc = processes.spawn([sys.executable, "-c", STUBBORN], log, dict(os.environ), tmp_path)
    try:
        deadline = time.monotonic() + 30
        while "ready" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        assert len(processes._group_members(proc)) == 2

        assert processes.stop(proc, grace_s=0.5) is True

        assert "got SIGTERM" in log.read_text()  # asked politely first
        assert not processes.alive(proc) and processes._group_members(proc) == []  # then killed, child and all
    finally:
        if processes._group_members(proc):  # whatever failed, nothing of it outlives the test
            os.killpg(proc.pid, signal.SIGKILL)


def test_a_missing_pubsub_emulator_is_a_clear_error_naming_how_to_install_it(tmp_path: Path) -> None:
    # The SDK's own folder hidden (an empty directory mounted over it, in a mount namespace of this test only) and
    # gcloud off PATH: a machine with Java and Python but without the emulator.
    empty, bin_dir = tmp_path / "empty", tmp_path / "bin"
    empty.mkdir()
    bin_dir.mkdir()
    (bin_dir / "java").symlink_to(shutil.which("java"))
    from tests.conftest import make_project

    make_project(tmp_path)
    sdk = Path(shutil.which("gcloud")).resolve().parent.parent / "platform" / "pubsub-emulator"
    path = f"{bin_dir}:{Path(sys.executable).parent}"
    script = (f"mount --bind {empty} {sdk} && PATH={path} exec {sys.executable} -m ltmctl local up --port-base 0")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    env.pop("LTM_PUBSUB_EMULATOR_JAR", None)
    result = subprocess.run(["unshare", "-rm", "bash", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                            env={**env, "COLUMNS": "300"}, timeout=120)

    assert result.returncode == 4, result.stderr
    assert "Cannot start the Pub/Sub emulator: the Pub/Sub emulator was not found." in result.stderr
    assert "gcloud components install pubsub-emulator" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / ".ltm" / "local" / "state.json").exists()  # nothing left half-started
