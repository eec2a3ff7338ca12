"""Mutation testing of the security and data-loss modules ([tool.mutmut] in pyproject.toml), outside CI.

    python scripts/mutation.py                      # every mutant of the ten modules
    python scripts/mutation.py 'api_service.auth*'  # only these mutants (mutmut's name patterns)

Starts one local stack, points the tests at it (LTM_TEST_STACK, so no mutant's pytest session starts emulators of
its own), runs `mutmut run` under `nice -n 15` with one worker (`--max-children N` to change), prints a table per
module (mutants, killed, survived, percentage) and takes the stack down. `mutmut results` and
`mutmut show NAME` explain a survivor afterwards; results are cached in mutants/ (git-ignored), so a second run
tests only what changed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# mutmut's statuses: killed (a test failed; or the mutant crashed, or the type check caught it), timeout (the tests
# ran past (estimate + timeout_constant) x timeout_multiplier: a hang, or a machine too loaded to finish in time,
# so a timeout is a kill only once a rerun on a quiet machine repeats it), survived (every test passed), no tests
# (no selected test runs the mutated function), not checked (not run yet).
KILLED = {"killed", "segfault", "caught by type check"}


def table(results: str) -> tuple[str, bool]:
    """Per module: mutants, killed, timed out, survived (or no tests), not checked, killed %; and whether every
    module is complete with at least 90% killed."""
    count: dict[str, Counter[str]] = {}
    for line in results.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if "__mutmut_" not in name:
            continue
        module = name.split(".x", 1)[0]  # api_service.auth.x_require_identity__mutmut_3, ….xǁClassǁmethod__…
        count.setdefault(module, Counter())[status.strip()] += 1
    lines = [f"{'module':24} {'mutants':>8} {'killed':>7} {'timeout':>8} {'survived':>9} {'unchecked':>10} "
             f"{'killed %':>9}"]
    ok = True
    for module in sorted(count):
        c = count[module]
        total = sum(c.values())
        killed = sum(c[s] for s in KILLED)
        pct = 100.0 * killed / total if total else 100.0
        ok = ok and pct >= 90.0 and not c["not checked"]
        lines.append(f"{module:24} {total:8} {killed:7} {c['timeout']:8} {c['survived'] + c['no tests']:9} "
                     f"{c['not checked']:10} {pct:8.1f}%")
    return "\n".join(lines), ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="mutant name patterns, e.g. 'ingest_fn.sink*'")
    parser.add_argument("--max-children", type=int, default=1)
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))
    from tests.conftest import running_stack

    env = {**os.environ, "PYTHONPATH": ""}
    with tempfile.TemporaryDirectory(prefix="ltm-mutation-") as tmp, running_stack(Path(tmp)):
        env["LTM_TEST_STACK"] = tmp
        run = ["nice", "-n", "15", sys.executable, "-m", "mutmut", "run", "--max-children", str(args.max_children),
               *args.names]
        code = subprocess.run(run, cwd=REPO, env=env, check=False).returncode
    if code != 0:  # the clean run or the forced-fail check failed: no mutant was judged
        return code
    results = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=REPO, env=env,
                             capture_output=True, text=True, check=False).stdout
    text, ok = table(results)
    print(text)  # noqa: T201 - the table is the script's output
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
