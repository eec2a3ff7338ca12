"""Start bqemulator offline: `python -m ltmctl.local.bigquery_main start ...` (same arguments as `bqemulator`).

bqemulator installs DuckDB's `spatial` extension at start, which downloads it. The extension ships on
PyPI as duckdb-extension-spatial; importing it into DuckDB's extension directory first makes the start
need no network, without patching bqemulator.
"""

from __future__ import annotations

import sys


def main() -> None:
    import duckdb_extensions

    duckdb_extensions.import_extension("spatial")
    from bqemulator.cli import main as bqemulator_main

    sys.argv[0] = "bqemulator"
    bqemulator_main()


if __name__ == "__main__":
    main()
