"""Start bqemulator for the local stack: `python -m ltmctl.local.bigquery_main start ...` (bqemulator's arguments).

Adjustments, all made here so bqemulator itself stays unmodified on disk:

- bqemulator installs DuckDB's `spatial` extension at start, which downloads it. The extension ships on
  PyPI as duckdb-extension-spatial; importing it into DuckDB's extension directory first makes the start
  need no network.
- For time travel, bqemulator copies the whole table after every write (`CREATE TABLE snapshot AS SELECT *`)
  and keeps each copy for 7 days. With one streaming insert per event that makes each insert cost O(rows)
  and the data directory grow quadratically (4 GB after ~10k events, measured). The pipeline never reads
  `FOR SYSTEM_TIME AS OF`, so automatic snapshots are skipped; explicit ones (kind USER) still work, and
  the change event that invalidates bqemulator's query cache is still published. LTM_BQ_TIME_TRAVEL=1
  restores bqemulator's own behaviour.
- bqemulator's tables.patch/update changes only its catalog: a column added there is missing from the DuckDB
  table, and every insert after it fails (more values than the table has columns). The columns a patch adds go
  into the DuckDB table as well, so a table of an older contract is updated in place as on BigQuery. (Relaxing
  REQUIRED to NULLABLE needs nothing more: the DuckDB columns carry no NOT NULL.)
- bqemulator rewrites a table's whole catalog row after every insert; when only the row count changed, an UPDATE
  writes the same values at half the cost.
- bqemulator's insertAll with skipInvalidRows converts each row to Arrow alone, then the batch again: a request is
  converted whole first, and row by row only when that fails (then exactly as bqemulator does).
- bqemulator's jobs.query answers a query that fails (a missing table, a bad column) with 200, `jobComplete` and
  the error in `errors`, a shape made for `client.query()`, which then reads the failed job. `query_and_wait`, which
  the API uses, reads that answer as an empty result: the API would say 404 where BigQuery's HTTP error gives 503.
  BigQuery answers a failed jobs.query with the HTTP error itself (404 notFound, 400 invalidQuery, ...), and so
  does the stack's emulator: the route raises bqemulator's own error for that reason, which its handlers render
  in Google's error shape.
"""

from __future__ import annotations

import functools
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


def _schema_patches_reach_storage() -> None:
    from bqemulator.api.routes.tables import _field_to_rest
    from bqemulator.catalog.duckdb_repository import DuckDBCatalogRepository
    from bqemulator.storage.sql_identifiers import quoted_table_ref
    from bqemulator.storage.type_map import bq_schema_to_duckdb_columns

    update_table = DuckDBCatalogRepository.update_table  # the catalog of --persistent, which the stack runs

    def update_table_and_storage(self, table):  # type: ignore[no-untyped-def]
        existing = self.get_table(table.project_id, table.dataset_id, table.table_id)
        if existing is not None and existing.table_type == "TABLE" and existing.schema_.fields:
            known = {f.name for f in existing.schema_.fields}
            added = [_field_to_rest(f) for f in table.schema_.fields if f.name not in known]
            ref = quoted_table_ref(table.project_id, table.dataset_id, table.table_id)
            for name, duckdb_type in bq_schema_to_duckdb_columns(added):
                self._engine.execute(f'ALTER TABLE {ref} ADD COLUMN "{name}" {duckdb_type}')
        return update_table(self, table)

    DuckDBCatalogRepository.update_table = update_table_and_storage  # type: ignore[method-assign]


def _row_counts_updated_in_place() -> None:
    # Every insertAll rewrites the table's catalog row to count its rows (INSERT OR REPLACE of the whole metadata),
    # which cost DuckDB about as much CPU as the insert of the rows itself. When the row count is all that
    # changed, the same row with the same values is written by an UPDATE, at half the cost (measured); anything
    # else goes the way bqemulator writes it.
    from bqemulator.catalog.duckdb_repository import CATALOG_SCHEMA, DuckDBCatalogRepository

    update_table = DuckDBCatalogRepository.update_table

    def update_count_in_place(self, table):  # type: ignore[no-untyped-def]
        self.ensure_ready()
        existing = self._cache.get_table(table.project_id, table.dataset_id, table.table_id)
        if existing is None or existing.num_rows == table.num_rows or \
                existing.model_copy(update={"num_rows": table.num_rows}) != table:
            return update_table(self, table)
        updated = self._cache.update_table(table)
        self._engine.execute(
            f'UPDATE "{CATALOG_SCHEMA}"."tables" SET metadata_json = ?, num_rows = ? '
            "WHERE project_id = ? AND dataset_id = ? AND table_id = ?",
            [updated.model_dump_json(by_alias=True), updated.num_rows,
             updated.project_id, updated.dataset_id, updated.table_id])
        return updated

    DuckDBCatalogRepository.update_table = update_count_in_place  # type: ignore[method-assign]


def _failed_queries_are_http_errors() -> None:
    from bqemulator.api.routes import jobs
    from bqemulator.domain.errors import InvalidQueryError
    from fastapi.routing import APIRoute

    by_reason = {kind.bq_reason: kind for kind in jobs._SQL_EXECUTION_DOMAIN_ERRORS}
    index, route = next((i, r) for i, r in enumerate(jobs.router.routes)
                        if isinstance(r, APIRoute) and r.path.endswith("/queries") and "POST" in r.methods)
    answer_query = route.endpoint

    @functools.wraps(answer_query)  # FastAPI reads the signature (and its dependencies) through __wrapped__
    async def query_or_http_error(*args, **kwargs):  # type: ignore[no-untyped-def]
        answer = await answer_query(*args, **kwargs)
        errors = answer.get("errors") if isinstance(answer, dict) and answer.get("jobComplete") else None
        if errors:  # only the failure branch sets `errors` on a complete answer
            first = errors[0]
            raise by_reason.get(first.get("reason"), InvalidQueryError)(first.get("message", "query failed"),
                                                                         location=first.get("location"))
        return answer

    jobs.router.routes[index] = APIRoute(route.path, query_or_http_error, methods=sorted(route.methods),
                                         name=route.name, tags=route.tags)


def _rows_converted_once() -> None:
    # insertAll with skipInvalidRows converts every row to Arrow alone (a one-row table each, to find the rows that
    # do not convert), then the good rows again together: per row, more CPU than DuckDB's insert (py-spy, 40-row
    # requests). A value converts or not whatever rows come with it, so the whole request converts exactly when
    # each row does: convert it whole first, and only when that fails look for the bad rows one by one, as
    # bqemulator does. The table made is the one the insert then uses (same rows, same schema), not made twice.
    import threading

    from bqemulator.api.routes import tabledata

    convert, partition = tabledata.bq_rows_to_arrow, tabledata._partition_rows_for_insert
    made = threading.local()

    def partition_whole_first(rows, arrow_schema):  # type: ignore[no-untyped-def]
        try:
            table = convert(rows, arrow_schema)
        except (ValueError, TypeError):  # what bqemulator's per-row conversion catches
            return partition(rows, arrow_schema)
        made.rows, made.schema, made.table = rows, arrow_schema, table
        return rows, []

    def convert_once(rows, schema):  # type: ignore[no-untyped-def]
        if getattr(made, "rows", None) is rows and made.schema is schema:
            table = made.table
            made.rows = made.schema = made.table = None
            return table
        return convert(rows, schema)

    tabledata._partition_rows_for_insert = partition_whole_first
    tabledata.bq_rows_to_arrow = convert_once


def _no_pandas() -> None:
    # DuckDB's Python module looks for pandas on every registered Arrow scan and keeps looking when it is not
    # installed: 20 failed imports per streaming insert, each a walk of sys.path (12% of the emulator's CPU
    # under ingest, measured with py-spy). A finder that answers "not found" first makes that answer
    # immediate, with the very exception a missing module raises (None in sys.modules raises a plain
    # ImportError instead, which DuckDB does not expect and which broke inserts).
    import importlib.util
    from importlib.abc import MetaPathFinder

    if importlib.util.find_spec("pandas") is not None:
        return

    class NoPandas(MetaPathFinder):
        def find_spec(self, name, path=None, target=None):  # type: ignore[no-untyped-def]
            if name == "pandas":
                raise ModuleNotFoundError("No module named 'pandas'", name="pandas")
            return None

    sys.meta_path.insert(0, NoPandas())


def main() -> None:
    import duckdb_extensions

    _no_pandas()
    duckdb_extensions.import_extension("spatial")
    if os.environ.get("LTM_BQ_TIME_TRAVEL") != "1":
        _skip_automatic_snapshots()
    _schema_patches_reach_storage()
    _row_counts_updated_in_place()
    _failed_queries_are_http_errors()
    _rows_converted_once()
    from bqemulator.cli import main as bqemulator_main

    sys.argv[0] = "bqemulator"
    bqemulator_main()


if __name__ == "__main__":
    main()
