"""CLI start: `ltmctl --help` against `gcloud version`, medians of RUNS runs each. Target ≤ 0.3×."""

from __future__ import annotations

import shutil
import subprocess

from bench.common import ltmctl_script, median, report, timed

RUNS = 11


def _run(argv: list[str]) -> float:
    return timed(lambda: subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True))


def run() -> dict:
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        raise SystemExit("gcloud is not on PATH: it is the baseline of this benchmark")
    ltmctl = ltmctl_script()
    _run([ltmctl, "--help"])  # warm the page cache for both, so neither pays for a cold disk
    _run([gcloud, "version"])
    ours = [_run([ltmctl, "--help"]) for _ in range(RUNS)]
    base = [_run([gcloud, "version"]) for _ in range(RUNS)]
    ratio = median(ours) / median(base)
    return report("cli_start", [
        ("ltmctl --help median s", median(ours)), ("ltmctl --help min s", min(ours)),
        ("gcloud version median s", median(base)), ("gcloud version min s", min(base)), ("runs each", RUNS),
    ], ratio_name="ltmctl / gcloud", ratio=ratio, target="≤ 0.3", met=ratio <= 0.3)


if __name__ == "__main__":
    run()
