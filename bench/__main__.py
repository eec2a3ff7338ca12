"""python -m bench {cli_start|publish|ingest|api|sink|memory|fleet|all}, or one with its options: ingest --steady 500"""

from __future__ import annotations

import importlib
import sys

NAMES = ("cli_start", "publish", "ingest", "api", "sink", "memory", "fleet")


def main(argv: list[str]) -> int:
    if len(argv) > 2 and argv[2].startswith("--"):  # one benchmark with its own options: `ingest --steady 500`
        result = importlib.import_module(f"bench.{argv[1]}").run(argv[2:]) if argv[1] in NAMES else None
        if result is None:
            sys.stderr.write(f"unknown benchmark {argv[1]!r}; choose from {', '.join(NAMES)}\n")
            return 2
        return 0 if result.get("target_met", True) else 1
    wanted = argv[1:] or ["all"]
    names = list(NAMES) if wanted == ["all"] else wanted
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        sys.stderr.write(f"unknown benchmark(s) {unknown}; choose from {', '.join(NAMES)} or all\n")
        return 2
    failed = 0
    for name in names:
        result = importlib.import_module(f"bench.{name}").run()
        failed += 0 if result.get("target_met", True) else 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
