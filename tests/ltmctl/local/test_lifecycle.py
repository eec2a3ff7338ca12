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


SLOW_TO_STOP = """
import signal, sys, time
name, log = sys.argv[1], sys.argv[2]
def stop(signum, frame):
    with open(log, "a") as out:
        out.write(f"{name} term {time.monotonic()}\\n")
    time.sleep(1.0)  # finishing what it was doing
    with open(log, "a") as out:
        out.write(f"{name} exit {time.monotonic()}\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
while True:
    time.sleep(0.1)
"""


def test_down_stops_each_piece_after_those_that_call_it_and_a_stage_together(tmp_path: Path) -> None:
    from ltmctl.local import pieces as pieces_module
    from ltmctl.local import stack

    names = ["pubsub", "bigquery", "ingest", "api", "recorder", "delivery"]  # the order `up` starts them in
    ports = dict.fromkeys(["pubsub", "bigquery", "bigquery_grpc", "ingest", "ingest_metrics", "api", "recorder",
                           "delivery"], 1)
    made = pieces_module.pieces("p", ports, tmp_path, {}, tmp_path / "jwks.json",
                                pieces_module.DeliverySettings("projects/p/subscriptions/s", 80, 2, 60, 600),
                                pieces_module.Recording(tmp_path / "m", 10.0, 1 << 20, 100))
    assert [p.name for p in made] == names  # every piece of the stack has its stage
    assert stack.stop_stages(names) == [["delivery", "recorder"], ["api", "ingest"], ["bigquery", "pubsub"]]

    events = tmp_path / "events.log"
    started = {}
    try:
        for name in names:
            log = tmp_path / f"{name}.log"
            proc = processes.spawn([sys.executable, "-c", SLOW_TO_STOP, name, str(events)], log, dict(os.environ),
                                   tmp_path)
            started[name] = stack.PieceState(name, proc.pid, proc.start_ticks, 0, str(log), "/")
        for piece in started.values():
            deadline = time.monotonic() + 30
            while "ready" not in Path(piece.log).read_text():
                assert time.monotonic() < deadline
                time.sleep(0.05)

        said = []
        assert stack.stop_pieces(started, lambda name, text: said.append((name, text))) == [
            (name, True) for stage in stack.stop_stages(names) for name in stage]
        assert len(said) == 6 and all(text == "stopped" for _, text in said)
    finally:
        for piece in started.values():
            if processes._group_members(piece.proc):
                os.killpg(piece.pid, signal.SIGKILL)

    at = {}
    for line in events.read_text().splitlines():
        name, what, when = line.split()
        at[name, what] = float(when)
    stages = stack.stop_stages(names)
    for earlier, later in zip(stages, stages[1:], strict=False):
        # No piece is asked to stop while a piece that calls it still runs ...
        assert max(at[n, "exit"] for n in earlier) < min(at[n, "term"] for n in later), (earlier, later, at)
    for stage in stages:
        # ... and the pieces of one stage are asked together, not one after the other's exit.
        assert max(at[n, "term"] for n in stage) < min(at[n, "exit"] for n in stage), (stage, at)
