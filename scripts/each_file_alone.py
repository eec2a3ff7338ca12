"""Run every test file alone, once, and report pass or fail per file: a test that only passes after another
file's tests (shared state, an earlier test's rows or log lines) fails here.

    python scripts/each_file_alone.py                 # every file under tests/ except tests/e2e
    python scripts/each_file_alone.py --e2e           # tests/e2e too (slow: each file starts its own stacks)
    python scripts/each_file_alone.py tests/gcp       # the files under given folders or files
    python scripts/each_file_alone.py -- -p no:randomly   # arguments after -- go to every pytest run

Not part of CI: it starts the session's emulators once per file. Exits 1 when any file failed.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_files(targets: list[str], e2e: bool) -> list[Path]:
    files: list[Path] = []
    for target in targets or ["tests"]:
        path = (REPO / target).resolve()
        found = [path] if path.is_file() else sorted(path.rglob("test_*.py"))
        files += [f for f in found if e2e or "e2e" not in f.relative_to(REPO).parts]
    return files


def main() -> int:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", help="test folders or files (default: tests)")
    parser.add_argument("--e2e", action="store_true", help="include tests/e2e")
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    failed = []
    for path in test_files(args.targets, args.e2e):
        name = str(path.relative_to(REPO))
        # A seed of its own per file, named in the report, so a failure can be repeated in the same order.
        seed = [] if any(a.startswith(("--randomly-seed", "-p")) for a in extra) else [
            f"--randomly-seed={random.randrange(2**32)}"]
        started = time.monotonic()
        run = subprocess.run([sys.executable, "-m", "pytest", name, "-q", "-x", "-rf", *seed, *extra], cwd=REPO,
                             capture_output=True, text=True)
        lines = run.stdout.strip().splitlines() or ["(no output)"]
        verdict = "pass" if run.returncode == 0 else "FAIL"
        print(f"{verdict}  {name}  ({time.monotonic() - started:.0f}s)  {lines[-1]}  {' '.join(seed)}",  # noqa: T201
              flush=True)
        for line in lines:
            if line.startswith("FAILED"):
                print(f"      {line}", flush=True)  # noqa: T201
        if run.returncode != 0:
            failed.append(name)
    print(f"{len(failed)} file(s) failed alone" + (": " + ", ".join(failed) if failed else ""))  # noqa: T201
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
