"""What every benchmark shares: a throw-away local stack, timing, the printed table and the JSON record."""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]

CONFIG = """\
pipeline:
  retry: {minimum_backoff_s: 1, maximum_backoff_s: 10}
environments:
  local:
    backend: local
    project: ltm-bench
"""


@contextmanager
def local_stack() -> Iterator[Any]:
    """A fresh stack on free ports in a temporary project, stopped and removed afterwards."""
    from ltmctl import clients, config
    from ltmctl.local import stack

    directory = Path(tempfile.mkdtemp(prefix="ltm-bench-"))
    (directory / "config").mkdir()
    (directory / "config" / "ltm.yaml").write_text(CONFIG)
    resolved = config.load(directory / "config" / "ltm.yaml", "local")
    state, _ = stack.up(resolved, port_base=0)
    c = clients.for_emulators(state.project, state.pubsub_host, state.bigquery_endpoint)
    try:
        yield resolved, state, c
    finally:
        c.close()
        stack.down(resolved, force=True)
        if not os.environ.get("LTM_BENCH_KEEP"):  # keep the stack's logs to look into a failed run
            shutil.rmtree(directory, ignore_errors=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def median(values: list[float]) -> float:
    return statistics.median(values)


def timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def report(name: str, rows: list[tuple[str, Any]], *, ratio_name: str, ratio: float, target: str,
           met: bool, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Print the table and write bench/results/NAME.json; returns the record."""
    width = max(len(k) for k, _ in rows + [(ratio_name, 0)])
    print(f"\n== {name} ==")
    for key, value in rows:
        shown = f"{value:,.3f}" if isinstance(value, float) else str(value)
        print(f"  {key:<{width}}  {shown}")
    print(f"  {ratio_name:<{width}}  {ratio:,.3f}   target {target}: {'MET' if met else 'NOT MET'}")
    record = {
        "benchmark": name, "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count()},
        "figures": dict(rows), "ratio": {ratio_name: ratio}, "target": target, "target_met": met, **(extra or {}),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(record, indent=2, default=str))
    return record


def ltmctl_script() -> str:
    return shutil.which("ltmctl", path=str(Path(sys.executable).parent)) or "ltmctl"
