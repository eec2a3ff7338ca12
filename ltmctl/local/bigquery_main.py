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
- bqemulator rewrites a table's whole catalog row after every insert. The count a streaming insert changes is kept
  in bqemulator's in-memory catalog (which every request reads) and written to the catalog table at most once a
  second and when the emulator stops; a start after a kill counts each table's rows again. Any other change is
  written as bqemulator writes it.
- bqemulator's insertAll registers each request's rows as a DuckDB view, inserts from it and drops it (the view's
  catalog changes cost more CPU than the insert); the rows go in with `from_arrow(...).insert_into(...)`, the same
  positional insert. It also read the table's count before waiting for the write lock, so two inserts at once
  counted one of them; the count is read under the lock.
- bqemulator's insertAll with skipInvalidRows converts each row to Arrow alone, then the batch again: a request is
  converted whole first, and row by row only when that fails (then exactly as bqemulator does).
- bqemulator's jobs.query answers a query that fails (a missing table, a bad column) with 200, `jobComplete` and
  the error in `errors`, a shape made for `client.query()`, which then reads the failed job. `query_and_wait`, which
  the API uses, reads that answer as an empty result: the API would say 404 where BigQuery's HTTP error gives 503.
  BigQuery answers a failed jobs.query with the HTTP error itself (404 notFound, 400 invalidQuery, ...), and so
  does the stack's emulator: the route raises bqemulator's own error for that reason, which its handlers render
  in Google's error shape.
- bqemulator answers every TIMESTAMP cell as int64 microseconds. BigQuery does that only when the request asks
  (`formatOptions.useInt64Timestamp`, or `formatOptions.timestampOutputFormat` INT64) and otherwise answers float
  seconds ("1.7648544E9"), which is what `bq` asks for and reads (it showed every int64 instant as "<date out of
  range for display>"). tabledata.list, jobs.getQueryResults and jobs.query answer in the format asked for.
- bqemulator runs every request through three BaseHTTPMiddleware layers besides gzip: an access log written at
  INFO, Prometheus counters, a correlation id. Each such layer runs the rest of the request in a task of its own
  with memory streams between them: about 1 ms of CPU per layer per request, more than DuckDB's insert of a
  small batch. The stack runs bqemulator at log level warning, so the access log writes nothing, and with its
  metrics off (BQEMU_METRICS_ENABLED=false: its /metrics is not served and nothing reads it): those two layers
  are left out. Logging at info or debug, or metrics on, keeps them.
- `bq` and google-api-python-client read the API's discovery document from the endpoint they are pointed at
  (`$discovery/rest?version=v2`); bqemulator has none. The stack serves Google's own (the copy shipped in
  google-api-python-client) with this endpoint as its root URL.
"""

# No `from __future__ import annotations`: FastAPI reads the annotations of the routes defined here at run time.
import contextvars
import functools
import json
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

# The TIMESTAMP format the request being answered asked for, by Google's TimestampOutputFormat names.
_timestamp_format: contextvars.ContextVar[str] = contextvars.ContextVar("timestamp_format", default="FLOAT64")
TIMESTAMP_FORMATS = ("FLOAT64", "INT64", "ISO8601_STRING")


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


COUNT_WRITE_INTERVAL_S = 1.0  # the catalog table's row counts lag the in-memory ones by at most this long


def _row_counts_written_lazily() -> None:
    # Every insertAll rewrote the table's catalog row to count its rows (INSERT OR REPLACE of the whole metadata):
    # about 1.6 ms of the emulator's CPU per insert request, more than DuckDB's insert of the rows. Every request
    # reads the catalog from bqemulator's in-memory copy, which is updated at once; the catalog table is read only
    # when the emulator starts. So when the row count is all that changed, it is written at most once a second and
    # at stop, and a start counts each table's rows again (after a kill the table holds rows its last written
    # count does not). Anything else is written the way bqemulator writes it, at once.
    import threading
    import time

    from bqemulator.catalog.duckdb_repository import CATALOG_SCHEMA, DuckDBCatalogRepository
    from bqemulator.storage.engine import DuckDBEngine
    from bqemulator.storage.sql_identifiers import quoted_table_ref

    update_table = DuckDBCatalogRepository.update_table
    hydrate_tables, stop_engine = DuckDBCatalogRepository._hydrate_tables, DuckDBEngine.stop
    unwritten: dict[Any, set[tuple[str, str, str]]] = {}  # repository -> the tables whose count is not written yet
    lock = threading.Lock()
    written_at = [time.monotonic()]

    def write_counts(repository: Any) -> None:
        with lock:
            keys = unwritten.pop(repository, set())
            written_at[0] = time.monotonic()
        for key in keys:
            # The in-memory row as it is now: whatever was written since (a patch, a delete, a new table of the same
            # name) is in it too, so this never writes an older state over a newer one.
            table = repository._cache.get_table(*key)
            if table is not None:
                repository._engine.execute(
                    f'UPDATE "{CATALOG_SCHEMA}"."tables" SET metadata_json = ?, num_rows = ? '
                    "WHERE project_id = ? AND dataset_id = ? AND table_id = ?",
                    [table.model_dump_json(by_alias=True), table.num_rows, *key])

    def update_count_later(self, table):  # type: ignore[no-untyped-def]
        self.ensure_ready()
        key = (table.project_id, table.dataset_id, table.table_id)
        existing = self._cache.get_table(*key)
        if existing is None or existing.num_rows == table.num_rows or \
                existing.model_copy(update={"num_rows": table.num_rows}) != table:
            return update_table(self, table)
        updated = self._cache.update_table(table)
        with lock:
            unwritten.setdefault(self, set()).add(key)
            due = time.monotonic() - written_at[0] >= COUNT_WRITE_INTERVAL_S
        if due:
            write_counts(self)
        return updated

    def hydrate_and_count(self):  # type: ignore[no-untyped-def]
        hydrate_tables(self)
        for key, table in list(self._cache._tables.items()):
            if table.table_type != "TABLE":
                continue
            try:
                row = self._engine.execute(f"SELECT COUNT(*) FROM {quoted_table_ref(*key)}").fetchone()
            except Exception:  # noqa: BLE001 - a table without storage keeps the count it has, as before
                continue
            if row and int(row[0]) != table.num_rows:
                self._cache._tables[key] = table.model_copy(update={"num_rows": int(row[0])})
                with lock:
                    unwritten.setdefault(self, set()).add(key)
        write_counts(self)

    async def write_counts_and_stop(self):  # type: ignore[no-untyped-def]
        # The REST and gRPC servers have stopped by now: no insert comes after this write.
        for repository in [r for r in list(unwritten) if r._engine is self]:
            write_counts(repository)
        await stop_engine(self)

    DuckDBCatalogRepository.update_table = update_count_later  # type: ignore[method-assign]
    DuckDBCatalogRepository._hydrate_tables = hydrate_and_count  # type: ignore[method-assign]
    DuckDBEngine.stop = write_counts_and_stop  # type: ignore[method-assign]


def _inserts_without_a_view() -> None:
    # bqemulator's insertAll, with two changes (the module docstring says why): the rows go in by
    # from_arrow().insert_into() instead of a registered view, and the count is read under the write lock.
    from bqemulator.api.routes import tabledata
    from bqemulator.domain.errors import ResourceRef, resource_not_found
    from bqemulator.storage.sql_identifiers import quoted_table_ref
    from fastapi import Request

    route = next(r for r in tabledata.router.routes if getattr(r, "path", "").endswith("/insertAll"))
    bqemulators = route.endpoint

    async def insert_all(project_id: str, dataset_id: str, table_id: str, request: Request,
                         ctx: tabledata._Ctx) -> dict[str, Any]:
        table_meta = ctx.catalog.get_table(project_id, dataset_id, table_id)
        if table_meta is None:
            raise resource_not_found(ResourceRef("table", project_id, dataset_id, table_id))
        if tabledata._has_geography_column(list(table_meta.schema_.fields)):
            return await bqemulators(project_id, dataset_id, table_id, request, ctx)  # its own projection
        body = await request.json()
        rows = body.get("rows", [])
        answer: dict[str, Any] = {"kind": "bigquery#tableDataInsertAllResponse", "insertErrors": []}
        if not rows:
            return answer
        arrow_schema = tabledata._build_arrow_schema(tabledata._fields_raw_from_schema(table_meta.schema_.fields))
        if body.get("skipInvalidRows", False):
            rows, answer["insertErrors"] = tabledata._partition_rows_for_insert(rows, arrow_schema)
            if not rows:
                return answer
        arrow_table = tabledata.bq_rows_to_arrow(rows, arrow_schema)
        async with ctx.engine.write_lock():
            ctx.engine.connection.from_arrow(arrow_table).insert_into(
                quoted_table_ref(project_id, dataset_id, table_id))
            current = ctx.catalog.get_table(project_id, dataset_id, table_id) or table_meta
            ctx.catalog.update_table(current.model_copy(update={"num_rows": current.num_rows + arrow_table.num_rows}))
            ctx.snapshots.record_change(project_id, dataset_id, table_id)
        return answer

    _replace_route(tabledata.router, "/insertAll", "POST", endpoint=insert_all)


def _failed_queries_are_http_errors() -> None:
    from bqemulator.api.routes import jobs
    from bqemulator.domain.errors import InvalidQueryError
    from fastapi.routing import APIRoute

    by_reason = {kind.bq_reason: kind for kind in jobs._SQL_EXECUTION_DOMAIN_ERRORS}
    route = next(r for r in jobs.router.routes
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

    _replace_route(jobs.router, "/queries", "POST", endpoint=query_or_http_error)


def _replace_route(router: Any, suffix: str, method: str, *, endpoint: Any = None, dependencies: tuple = ()) -> None:
    """Rebuild one of bqemulator's routes with another endpoint and/or more dependencies (before the app includes
    its router)."""
    from fastapi.routing import APIRoute

    index, route = next((i, r) for i, r in enumerate(router.routes)
                        if isinstance(r, APIRoute) and r.path.endswith(suffix) and method in r.methods)
    router.routes[index] = APIRoute(route.path, endpoint or route.endpoint, methods=sorted(route.methods),
                                    name=route.name, tags=route.tags,
                                    dependencies=[*route.dependencies, *dependencies])


def java_double(x: float) -> str:
    """x as Java's Double.toString spells it, which is how BigQuery spells float seconds ("1.7648544E9"): plain
    between 1e-3 and 1e7, else d.dddE<n>; in both, the shortest digits that read back as x."""
    if x == 0:
        return "0.0"
    if 1e-3 <= abs(x) < 1e7:
        return repr(x)
    number = Decimal(repr(x))
    sign, digits, _ = number.as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    return f"{'-' if sign else ''}{text[0]}.{text[1:] or '0'}E{number.adjusted()}"


def asked_timestamp_format(options: Mapping[str, Any]) -> str:
    """The TIMESTAMP format a request's formatOptions ask for; Google's default is float seconds."""
    named = options.get("timestampOutputFormat")
    if named and named != "TIMESTAMP_OUTPUT_FORMAT_UNSPECIFIED":
        if named not in TIMESTAMP_FORMATS:
            from bqemulator.domain.errors import ValidationError

            raise ValidationError(f"Invalid value for formatOptions.timestampOutputFormat: {named!r}")
        return str(named)
    return "INT64" if str(options.get("useInt64Timestamp", "")).lower() == "true" else "FLOAT64"


def _timestamps_as_asked() -> None:
    from bqemulator.api.routes import jobs, tabledata
    from bqemulator.storage import arrow_bridge
    from fastapi import Depends, Request

    as_int64 = arrow_bridge._fmt_bq_timestamp

    def timestamp_as_asked(value, arrow_type, field):  # type: ignore[no-untyped-def]
        cell = as_int64(value, arrow_type, field)
        if arrow_type.tz is None or not isinstance(value, datetime):  # DATETIME, or not a value: as bqemulator says
            return cell
        asked = _timestamp_format.get()
        if asked == "INT64":
            return cell
        if asked == "ISO8601_STRING":  # Google's "YYYY-MM-DDTHH:MM:SS.FFFFFFFFFFFFZ": picoseconds, UTC
            utc = value.astimezone(UTC).replace(tzinfo=None)
            return f"{utc.isoformat(timespec='microseconds')}000000Z"
        return java_double(int(cell) / 1_000_000)  # int / int: the float nearest the exact number of seconds

    # _format_bq_value (and its recursion into ARRAY and STRUCT cells) looks the formatters up at each call.
    arrow_bridge._BQ_TYPE_FORMATTERS = tuple((test, timestamp_as_asked if format_ is as_int64 else format_)
                                             for test, format_ in arrow_bridge._BQ_TYPE_FORMATTERS)

    async def read_timestamp_format(request: Request) -> None:
        # An async dependency runs in the request's own context, which the route (in a worker thread when it is
        # a plain function) inherits: the formatters above read what this request asked for.
        if request.method == "POST":  # jobs.query: formatOptions in the body; the route reads the body Starlette kept
            try:
                body = await request.json()
            except ValueError:
                body = None  # the route answers a body that is not JSON
            options = (body.get("formatOptions") or {}) if isinstance(body, dict) else {}
        else:
            options = {key.removeprefix("formatOptions."): value for key, value in request.query_params.items()
                       if key.startswith("formatOptions.")}
        _timestamp_format.set(asked_timestamp_format(options if isinstance(options, Mapping) else {}))

    asked = (Depends(read_timestamp_format),)
    _replace_route(tabledata.router, "/tables/{table_id}/data", "GET", dependencies=asked)
    _replace_route(jobs.router, "/queries/{job_id}", "GET", dependencies=asked)
    _replace_route(jobs.router, "/queries", "POST", dependencies=asked)


def discovery_document(root_url: str) -> dict[str, Any]:
    """Google's BigQuery v2 discovery document (google-api-python-client's copy) with `root_url` as its root."""
    from googleapiclient.discovery_cache import get_static_doc

    document = json.loads(get_static_doc("bigquery", "v2"))
    document["rootUrl"] = root_url
    document["baseUrl"] = root_url + document["servicePath"]
    document.pop("mtlsRootUrl", None)
    document.pop("endpoints", None)  # Google's regional endpoints: not here
    return document


def _discovery_document_served() -> None:
    from bqemulator.api.health import router
    from bqemulator.domain.errors import NotFoundError
    from fastapi import Request

    def discovery(request: Request, version: str = "v2") -> dict[str, Any]:
        if version != "v2":
            raise NotFoundError(f"Discovery document not found for API service: bigquery.googleapis.com "
                                f"format: rest version: {version}")
        return discovery_document(str(request.base_url))

    # The URL `bq` asks (from its --api) and the one google-api-python-client's build() asks by default.
    router.add_api_route("/$discovery/rest", discovery, methods=["GET"], include_in_schema=False)
    router.add_api_route("/discovery/v1/apis/bigquery/{version}/rest", discovery, methods=["GET"],
                         include_in_schema=False)


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


def _idle_layers_left_out() -> None:
    from bqemulator import server
    from bqemulator.api.middleware import AccessLogMiddleware, MetricsMiddleware

    create_app = server.create_app

    def create_app_without_idle_layers(context):  # type: ignore[no-untyped-def]
        app = create_app(context)
        idle = set()
        if str(getattr(context.settings.log_level, "value", context.settings.log_level)).lower() not in (
                "debug", "info"):
            idle.add(AccessLogMiddleware)  # it logs at info only
        if not context.settings.metrics_enabled:
            idle.add(MetricsMiddleware)  # its counters are served nowhere
        # Starlette builds the middleware stack from this list on the first request.
        app.user_middleware = [m for m in app.user_middleware if m.cls not in idle]
        return app

    server.create_app = create_app_without_idle_layers


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
    _row_counts_written_lazily()
    _inserts_without_a_view()
    _failed_queries_are_http_errors()
    _timestamps_as_asked()
    _discovery_document_served()
    _rows_converted_once()
    _idle_layers_left_out()
    from bqemulator.cli import main as bqemulator_main

    sys.argv[0] = "bqemulator"
    bqemulator_main()


if __name__ == "__main__":
    main()
