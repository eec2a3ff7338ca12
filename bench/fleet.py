"""Fleet: `ltmctl metrics` over 50 gcp environments against the strict fake, against the same command for one of
them (same config file, same fake, same data), medians of RUNS runs each as a user runs it (a fresh process).
Target: ≤ 3×.

Three layouts of the fifty: forty monitored by one metrics scope and ten read alone (tests/gcp/test_fleet.py's
layout, the one the target applies to), all fifty in the scope, and none (fifty environments read one by one, 15
queries each). The fake runs in this process and answers from its one lock, so the fleet's requests queue there
as they would not at Google: a bound on the fleet's time, not a forecast of it.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from bench.common import REPO, ltmctl_script, median, report, timed

RUNS = 5


def _layout(scoped: range) -> tuple[list[float], list[float], int, int]:
    from ltmctl.gcp.fake import FakeGcp
    from tests.conftest import make_project
    from tests.gcp import fleet_support as fs
    from tests.gcp.test_metrics_gcp import WINDOW

    with FakeGcp("my-project-id", "123456789012") as fake, tempfile.TemporaryDirectory() as directory:
        fs.set_up(fake, scoped=scoped, locked=None)
        token = fake.token_for(fake.owner)  # who may read every project: the single environment reads its own
        config = make_project(Path(directory), fs.config_text(scoped=scoped))
        env = {**os.environ, "LTM_GCP_ENDPOINT": fake.endpoint, "LTM_GCP_TOKEN": token, "PYTHONPATH": str(REPO)}

        def metrics(selection: str) -> float:
            argv = [ltmctl_script(), "--config", str(config), "--env", selection, "metrics", "-o", "json", *WINDOW]
            codes = []
            seconds = timed(lambda: codes.append(subprocess.run(argv, env=env, stdout=subprocess.DEVNULL,
                                                                stderr=subprocess.DEVNULL).returncode))
            if codes[0] not in (0, 1):  # 1: two environments breach their objectives, by design of the data
                raise SystemExit(f"{' '.join(argv)} exited {codes[0]}")
            return seconds

        metrics("fleet-*")  # warm the page cache
        one = fs.name(45)  # read on its own project whatever the layout: a single environment ignores scopes
        fake.clear_requests()
        metrics("fleet-*")
        fleet_requests = len(fake.requests)
        fake.clear_requests()
        metrics(one)
        one_requests = len(fake.requests)
        ours, base = [], []
        for _ in range(RUNS):
            ours.append(metrics("fleet-*"))
            base.append(metrics(one))
    return ours, base, fleet_requests, one_requests


def run() -> dict:
    layouts = {"40 scoped + 10 alone": range(0, 40), "50 scoped": range(0, 50), "none scoped": range(0)}
    rows: list[tuple[str, object]] = []
    ratios = {}
    for label, scoped in layouts.items():
        ours, base, fleet_requests, one_requests = _layout(scoped)
        ratios[label] = median(ours) / median(base)
        rows += [(f"{label}: 50 environments median s", median(ours)), (f"{label}: one environment median s",
                                                                          median(base)),
                 (f"{label}: requests 50 / one", f"{fleet_requests} / {one_requests}"),
                 (f"{label}: 50 / one", ratios[label])]
    rows.append(("runs each", RUNS))
    main = ratios["40 scoped + 10 alone"]
    return report("fleet", rows, ratio_name="50 / one (40 scoped + 10 alone)", ratio=main, target="≤ 3",
                  met=main <= 3, extra={"ratios": ratios})


if __name__ == "__main__":
    run()
