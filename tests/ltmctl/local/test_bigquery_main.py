"""The bqemulator launcher skips the automatic per-write table copies and keeps explicit snapshots."""

import subprocess
import sys


def test_automatic_snapshots_are_skipped_and_explicit_ones_kept():
    # In a child process: the patch changes bqemulator's class for the life of the process.
    code = """
from bqemulator.versioning.snapshots import SnapshotManager
from ltmctl.local.bigquery_main import _skip_automatic_snapshots
calls = []
SnapshotManager.capture = lambda self, p, d, t, *, kind="AUTO": calls.append(kind) or "snapshot"
_skip_automatic_snapshots()
assert SnapshotManager.capture(object(), "p", "d", "t") is None
assert SnapshotManager.capture(object(), "p", "d", "t", kind="USER") == "snapshot"
assert calls == ["USER"], calls
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "ok", result.stderr
