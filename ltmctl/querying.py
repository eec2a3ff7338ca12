"""Ad-hoc BigQuery queries for `ltmctl query`: parameters, the shortcuts the API runs, cost checks, output.

The BigQuery client is passed in; nothing here prints. The shortcuts use api_service.queries, so they answer
exactly what the API answers (de-duplicated on event_id, bounded by a look-back window).
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from ltmctl.errors import BackendError, UsageError

TIB = 2**40
# When nothing else caps the rows fetched, a free query stops here rather than streaming a whole table.
DEFAULT_ROW_LIMIT = 1000
# The API's default page size, so `--action-id/--user-email` without --limit matches `GET /get_data`.
GET_DATA_LIMIT = 100

PARAM_SYNTAX = "name=value[:TYPE], TYPE one of STRING (default), INT64, FLOAT64, NUMERIC, BIGNUMERIC, BOOL, " \
               "TIMESTAMP, DATETIME, DATE, TIME"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# Something that looks like a type name (upper case) after the last colon, but is not one, is a typo, not data.
_TYPE_LIKE = re.compile(r"^[A-Z][A-Z0-9_]*$")
_ALIASES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL", "DECIMAL": "NUMERIC",
            "BIGDECIMAL": "BIGNUMERIC"}


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValueError("expected true or false")


def _decimal(text: str) -> Decimal:
    value = Decimal(text.strip())
    if not value.is_finite():
        raise ValueError("NUMERIC must be finite")
    return value


def _timestamp(text: str) -> dt.datetime:
    # No offset means UTC, as in BigQuery's own TIMESTAMP literals.
    value = dt.datetime.fromisoformat(text.strip())
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


_CONVERTERS = {
    "STRING": str,
    "INT64": lambda text: int(text.strip(), 10),
    "FLOAT64": lambda text: float(text.strip()),
    "NUMERIC": _decimal,
    "BIGNUMERIC": _decimal,
    "BOOL": _bool,
    "TIMESTAMP": _timestamp,
    "DATETIME": lambda text: dt.datetime.fromisoformat(text.strip()).replace(tzinfo=None),
    "DATE": lambda text: dt.date.fromisoformat(text.strip()),
    "TIME": lambda text: dt.time.fromisoformat(text.strip()),
}


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    value: Any


def parse_param(text: str) -> Param:
    """`name=value[:TYPE]` → Param. The type is taken from the text after the LAST colon, so values may hold
    colons (`t=10:30` is the STRING "10:30"); append `:STRING` to keep a value that itself ends in `:INT64`."""
    name, sep, rest = text.partition("=")
    if not sep or not _NAME.match(name):
        raise UsageError(f"--param {text!r}: expected {PARAM_SYNTAX}.",
                         hint="Parameter names are letters, digits and _, e.g. --param n=10:INT64.")
    value, type_name = rest, "STRING"
    head, colon, suffix = rest.rpartition(":")
    if colon:
        canonical = _ALIASES.get(suffix.upper(), suffix.upper())
        if canonical in _CONVERTERS:
            value, type_name = head, canonical
        elif _TYPE_LIKE.match(suffix):
            raise UsageError(f"--param {name}: unknown type {suffix!r}.", hint=f"Use {PARAM_SYNTAX}.")
    try:
        return Param(name, type_name, _CONVERTERS[type_name](value))
    except (ValueError, ArithmeticError, InvalidOperation) as exc:
        raise UsageError(f"--param {name}: {value!r} is not a valid {type_name} ({exc}).",
                         hint=f"Write the value as BigQuery expects a {type_name}, e.g. "
                              f"{_EXAMPLES[type_name]}.") from None


_EXAMPLES = {"STRING": "abc", "INT64": "42", "FLOAT64": "1.5", "NUMERIC": "12.34", "BIGNUMERIC": "12.34",
             "BOOL": "true", "TIMESTAMP": "2026-01-31T10:00:00Z", "DATETIME": "2026-01-31T10:00:00",
             "DATE": "2026-01-31", "TIME": "10:00:00"}


def parse_params(texts: list[str]) -> list[Param]:
    params = [parse_param(text) for text in texts]
    names = [p.name.lower() for p in params]  # BigQuery parameter names are case-insensitive
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise UsageError(f"--param {duplicate} is given more than once.")
    return params


@dataclass(frozen=True)
class Query:
    """SQL with its parameters and how many rows to fetch at most."""

    sql: str
    params: list[Param] = field(default_factory=list)
    max_results: int | None = DEFAULT_ROW_LIMIT
    # `project.dataset`, so free SQL can say `FROM events` instead of the fully qualified name.
    default_dataset: str | None = None


def plan(table: str, *, sql: str | None = None, params: Sequence[str] = (), action_id: str | None = None,
         user_email: str | None = None, app_id: str | None = None, department: str | None = None,
         days: int | None = None, top: int | None = None, limit: int | None = None) -> Query:
    """Free SQL with --param values, or one of the two API queries; every bad combination is a UsageError."""
    from api_service import queries

    dataset = table.rpartition(".")[0]
    shortcuts = {"--action-id/--user-email": (action_id, user_email), "--app-id/--department": (app_id, department)}
    chosen = [name for name, pair in shortcuts.items() if any(v is not None for v in pair)]
    if (sql is not None) + len(chosen) != 1:
        raise UsageError("Give exactly one of: SQL, --action-id with --user-email, --app-id with --department.",
                         hint='e.g. ltmctl query "SELECT COUNT(*) AS n FROM events" '
                              "or ltmctl query --action-id login --user-email ana@example.com")
    if sql is not None:
        if days is not None or top is not None:
            raise UsageError("--days and --top belong to the shortcuts; in SQL, filter on event_time yourself.")
        if not sql.strip():
            raise UsageError("The SQL is empty.")
        return Query(sql, parse_params(list(params)), limit or DEFAULT_ROW_LIMIT, dataset)
    if params:
        raise UsageError("--param is for free SQL; the shortcuts take their values from their own options.")
    first, second = shortcuts[chosen[0]]
    if first is None or second is None:
        raise UsageError(f"{chosen[0]}: give both options.")
    days = 30 if days is None else days
    if action_id is not None:
        if top is not None:
            raise UsageError("--top belongs to --app-id/--department.")
        limit = limit or GET_DATA_LIMIT
        # Lower-cased like the API does, because user_email is stored lower-cased.
        return Query(queries.get_data_sql(table),
                     [Param("action_id", "STRING", action_id), Param("user_email", "STRING", user_email.lower()),
                      Param("days", "INT64", days), Param("limit", "INT64", limit),
                      Param("max_answer_bytes", "INT64", queries.DEFAULT_MAX_ANSWER_BYTES)], limit, dataset)
    return Query(queries.app_info_sql(table),
                 [Param("app_id", "STRING", app_id), Param("app_department", "STRING", department),
                  Param("days", "INT64", days), Param("top", "INT64", 5 if top is None else top)],
                 limit or DEFAULT_ROW_LIMIT, dataset)


# ---- cost -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    bytes_processed: int
    usd: float
    max_bytes: int

    @property
    def over_budget(self) -> bool:
        return self.bytes_processed > self.max_bytes


def estimate(bytes_processed: int, usd_per_tib: float, max_bytes: int) -> Estimate:
    """On-demand cost of scanning `bytes_processed` at `usd_per_tib` dollars per TiB."""
    return Estimate(bytes_processed, bytes_processed / TIB * usd_per_tib, max_bytes)


def bytes_cap(est: Estimate, yes: bool) -> int:
    """maximum_bytes_billed for the real query: the budget; above it, refuse unless the user said --yes."""
    if not est.over_budget:
        return est.max_bytes
    if not yes:
        raise UsageError(f"The query would process {human_bytes(est.bytes_processed)} (about ${est.usd:,.2f}), "
                         f"more than the limit of {human_bytes(est.max_bytes)}.",
                         hint="Pass --yes to run it anyway, or raise the limit with --max-bytes "
                              "(or query.max_bytes in the config). Narrow it with a filter on event_time.")
    # BigQuery bills at least 10 MB per table and rounds up, so the estimate itself could trip the cap;
    # allow 10% and 100 MiB above what the user agreed to, never more.
    return max(est.max_bytes, math.ceil(est.bytes_processed * 1.1) + 100 * 2**20)


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def describe(est: Estimate, usd_per_tib: float) -> str:
    return (f"would process {human_bytes(est.bytes_processed)} ({est.bytes_processed:,} bytes), "
            f"about ${est.usd:,.4f} at ${usd_per_tib:g}/TiB; limit {human_bytes(est.max_bytes)}")


# ---- running ----------------------------------------------------------------------------------------------


@dataclass
class Result:
    columns: list[str]
    rows: list[dict[str, Any]]
    total_rows: int | None
    seconds: float
    bytes_billed: int | None = None


def _job_config(query: Query, **options: Any) -> Any:
    from google.cloud import bigquery

    return bigquery.QueryJobConfig(
        query_parameters=[bigquery.ScalarQueryParameter(p.name, p.type, p.value) for p in query.params],
        default_dataset=query.default_dataset, **options)


def _backend_error(exc: Exception) -> BackendError:
    errors = getattr(exc, "errors", None) or []
    message = "; ".join(e.get("message", "") for e in errors if isinstance(e, dict)) or getattr(
        exc, "message", None) or str(exc)
    if any(isinstance(e, dict) and e.get("reason") == "bytesBilledLimitExceeded" for e in errors):
        return BackendError(f"BigQuery refused the query: {message}",
                            hint="Raise --max-bytes, or pass --yes after checking the estimate with --dry-run.")
    if getattr(exc, "code", None) in (400, 404):
        return BackendError(f"BigQuery rejected the query: {message}",
                            hint="Fix the SQL. The pipeline's dataset is the default, so `FROM events` works.")
    return BackendError(f"BigQuery failed: {message}", hint="Check that BigQuery (or the local stack) is up.")


def _call(fn: Any) -> Any:
    import requests
    from google.api_core import exceptions

    try:
        return fn()
    except exceptions.GoogleAPICallError as exc:
        raise _backend_error(exc) from None
    except (requests.ConnectionError, requests.Timeout, TimeoutError) as exc:
        raise BackendError(f"Could not reach BigQuery: {exc}",
                           hint="Check `ltmctl local status`, or your network and credentials.") from None


@dataclass(frozen=True)
class DryRun:
    bytes_processed: int
    statement_type: str  # BigQuery's statementType: SELECT, DELETE, DROP_TABLE, SCRIPT, ...


# What a plain `ltmctl query` may run: reading statements only. Everything else BigQuery names (INSERT, UPDATE,
# DELETE, MERGE, CREATE_*, DROP_*, ALTER_*, TRUNCATE_TABLE, EXPORT_DATA, CALL, ...) may change data or schema.
READ_ONLY_STATEMENTS = frozenset({"SELECT"})


def dry_run(client: Any, query: Query) -> DryRun:
    """Bytes the query would process and its statement type, from a dry run (which also validates the SQL).
    Both BigQuery and bqemulator report the type, so one check serves both backends."""
    job = _call(lambda: client.query(query.sql, job_config=_job_config(query, dry_run=True,
                                                                        use_query_cache=False)))
    return DryRun(int(job.total_bytes_processed or 0), str(job.statement_type or "UNKNOWN").upper())


def refuse_local_script(sql: str) -> None:
    """Local backend only: refuse a script before anything is sent. bqemulator *executes* a script even when asked
    for a dry run (a DELETE after a SELECT deleted rows), so its statementType comes too late there. BigQuery's dry
    run runs nothing, so in GCP the dry run alone decides. sqlglot's BigQuery tokenizer (bqemulator's own parser)
    knows strings and comments, so only a real statement separator counts."""
    import sqlglot
    from sqlglot.errors import TokenError

    try:
        tokens = sqlglot.tokenize(sql, read="bigquery")
    except TokenError as exc:
        raise UsageError(f"The SQL cannot be read: {exc}", hint="Check quotes and comments.") from None
    statements, current = 0, 0
    for token in tokens:
        if token.token_type.name == "SEMICOLON":
            statements, current = statements + (current > 0), 0
        else:
            current += 1
    if statements + (current > 0) > 1:
        check_statement("SCRIPT", allow_writes=True)


def check_statement(statement_type: str, *, allow_writes: bool) -> bool:
    """Refuse what `query` must not run; True when the statement may change data or schema (then confirm it)."""
    if statement_type == "SCRIPT":
        raise UsageError("The SQL is a script (several statements); `ltmctl query` runs one statement only, so "
                         "each result can be shown and each change confirmed.",
                         hint="Run the statements one at a time.")
    if statement_type in READ_ONLY_STATEMENTS:
        return False
    if not allow_writes:
        raise UsageError(f"The statement is a {statement_type}, which may change data or schema; `ltmctl query` is "
                         "read-only unless asked.",
                         hint="Pass --allow-writes (and --yes without a terminal) to run it anyway.")
    return True


def run(client: Any, query: Query, *, max_bytes: int | None, timeout_s: float = 300.0) -> Result:
    """Run the query and fetch at most query.max_results rows as plain values (see `plain`)."""
    started = time.monotonic()

    def execute() -> tuple[Any, Any]:
        job = client.query(query.sql, job_config=_job_config(query, maximum_bytes_billed=max_bytes))
        return job, job.result(max_results=query.max_results, timeout=timeout_s)

    job, rows = _call(execute)
    fetched = _call(lambda: [{k: plain(v) for k, v in row.items()} for row in rows])
    columns = [f.name for f in rows.schema or ()]
    return Result(columns, fetched, rows.total_rows, time.monotonic() - started, job.total_bytes_billed)


def plain(value: Any) -> Any:
    """A JSON-ready value: RFC 3339 timestamps, exact decimals as strings, bytes as base64, JSON as JSON."""
    if isinstance(value, dt.datetime):
        text = value.isoformat()
        return text.removesuffix("+00:00") + "Z" if value.tzinfo and not value.utcoffset() else text
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def cell(value: Any) -> str:
    """One value as text for CSV and tables: JSON for structures, lower-case booleans, empty for NULL."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def render(result: Result, output: str) -> str:
    """The rows as json (one array), jsonl (one object per line) or csv (header first)."""
    if output == "json":
        return json.dumps(result.rows, indent=2, ensure_ascii=False) + "\n"
    if output == "jsonl":
        return "".join(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n" for row in result.rows)
    if output == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(result.columns)
        writer.writerows([cell(row.get(c)) for c in result.columns] for row in result.rows)
        return buffer.getvalue()
    raise ValueError(f"unknown output {output!r}")
