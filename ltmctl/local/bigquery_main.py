"""Start bqemulator for the local stack: `python -m ltmctl.local.bigquery_main start ...` (bqemulator's arguments).

Two adjustments, both made here so bqemulator itself stays unmodified on disk:

- bqemulator installs DuckDB's `spatial` extension at start, which downloads it. The extension ships on
  PyPI as duckdb-extension-spatial; importing it into DuckDB's extension directory first makes the start
  need no network.
- For time travel, bqemulator copies the whole table after every write (`CREATE TABLE snapshot AS SELECT *`)
  and keeps each copy for 7 days. With one streaming insert per event that makes each insert cost O(rows)
  and the data directory grow quadratically (4 GB after ~10k events, measured). The pipeline never reads
  `FOR SYSTEM_TIME AS OF`, so automatic snapshots are skipped; explicit ones (kind USER) still work, and
  the change event that invalidates bqemulator's query cache is still published. LTM_BQ_TIME_TRAVEL=1
  restores bqemulator's own behaviour.
"""

from __future__ import annotations

import os
import sys


def _skip_automatic_snapshots() -> None:
    from bqemulator.versioning.snapshots import SnapshotManager

    capture = SnapshotManager.capture

    def capture_explicit_only(self, project_id, dataset_id, table_id, *, kind="AUTO"):  # type: ignore[no-untyped-def]
        if kind == "AUTO":
            return None
        return capture(self, project_id, dataset_id, table_id, kind=kind)

    SnapshotManager.capture = capture_explicit_only  # type: ignore[method-assign]


def main() -> None:
    import duckdb_extensions

    duckdb_extensions.import_extension("spatial")
    if os.environ.get("LTM_BQ_TIME_TRAVEL") != "1":
        _skip_automatic_snapshots()
    from bqemulator.cli import main as bqemulator_main

    sys.argv[0] = "bqemulator"
    bqemulator_main()


if __name__ == "__main__":
    main()
