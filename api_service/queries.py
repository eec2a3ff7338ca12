"""The two read queries, shared by the API and `ltmctl query` shortcuts.

Every value is a query parameter; the table name is the only text put into SQL, and it comes from
validated configuration. Each query de-duplicates on event_id (delivery is at-least-once), filters on
the partition column with a look-back window, and is capped by maximum_bytes_billed.
"""

from __future__ import annotations

import re
from typing import Any

# What get_data answers at most, in bytes, unless told otherwise: the API's default (LTM_MAX_ANSWER_BYTES).
DEFAULT_MAX_ANSWER_BYTES = 4 * 1024 * 1024
ROW_OVERHEAD = 512  # bytes of a serialised event besides payload and attributes: ids, e-mail, four timestamps

_TABLE_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]\.[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")

# One row per event_id, so re-deliveries never count twice: the first published copy wins. publish_time (set by
# Pub/Sub, never NULL) orders copies whichever way they were written; ingest_time is NULL for rows a BigQuery
# subscription wrote, so it only separates copies of one message (same message_id), and NULLS LAST says where those
# go on BigQuery and on the emulator alike (their defaults differ). Copies equal in all three are the same delivery
# written twice, identical in every column, so which one is kept cannot change an answer.
_DEDUPED = """
  SELECT * FROM `{table}`
  WHERE {where}
    AND event_time >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL @days DAY)
  QUALIFY ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY publish_time, message_id, ingest_time NULLS LAST) = 1
"""

# Rows are sent newest first until their running size passes @max_answer_bytes (the row that crosses it included,
# so an answer never comes back empty while events exist): BigQuery, not the API's memory, drops what cannot fit.
# LENGTH counts characters of the JSON text, never more than its UTF-8 bytes, so the API's exact byte check on
# the serialised answer has the last word; ROW_OVERHEAD covers the fixed columns of a row.
GET_DATA = """
WITH deduped AS ({deduped}),
sized AS (
  SELECT *, COUNT(*) OVER () AS total,
         SUM(COALESCE(LENGTH(TO_JSON_STRING(payload)), 0) + COALESCE(LENGTH(TO_JSON_STRING(attributes)), 0)
             + {row_overhead}) OVER (ORDER BY event_time DESC, event_id ROWS UNBOUNDED PRECEDING) AS running_bytes,
         COALESCE(LENGTH(TO_JSON_STRING(payload)), 0) + COALESCE(LENGTH(TO_JSON_STRING(attributes)), 0)
             + {row_overhead} AS row_bytes
  FROM deduped
)
SELECT event_id, action_id, user_email, app_id, app_department, source, event_time, payload,
       message_id, publish_time, ingest_time, attributes, total
FROM sized
WHERE running_bytes - row_bytes < @max_answer_bytes
ORDER BY event_time DESC, event_id
LIMIT @limit
"""

APP_INFO = """
WITH deduped AS ({deduped}),
totals AS (
  SELECT COUNT(*) AS events, COUNT(DISTINCT user_email) AS users, COUNT(DISTINCT action_id) AS actions,
         MIN(event_time) AS first_seen, MAX(event_time) AS last_seen
  FROM deduped
),
top_actions AS (
  SELECT action_id, COUNT(*) AS action_events FROM deduped
  GROUP BY action_id ORDER BY action_events DESC, action_id LIMIT @top
)
SELECT totals.*, top_actions.action_id, top_actions.action_events
FROM totals LEFT JOIN top_actions ON TRUE
ORDER BY action_events DESC, action_id
"""


def table_id(project: str, dataset: str, table: str) -> str:
    value = f"{project}.{dataset}.{table}"
    if not _TABLE_ID.match(value):
        raise ValueError(f"not a valid table id: {value!r}")
    return value


def get_data_sql(table: str) -> str:
    deduped = _DEDUPED.format(table=table, where="action_id = @action_id AND user_email = @user_email")
    return GET_DATA.format(deduped=deduped, row_overhead=ROW_OVERHEAD)


def app_info_sql(table: str) -> str:
    deduped = _DEDUPED.format(table=table, where="app_id = @app_id AND app_department = @app_department")
    return APP_INFO.format(deduped=deduped)


def _job_config(params: list[tuple[str, str, Any]], max_bytes: int | None) -> Any:
    from google.cloud import bigquery

    config = bigquery.QueryJobConfig(
        query_parameters=[bigquery.ScalarQueryParameter(n, t, v) for n, t, v in params])
    if max_bytes is not None:  # the client would send None as the string "None", which BigQuery refuses (400)
        config.maximum_bytes_billed = max_bytes
    return config


def _run(client: Any, sql: str, config: Any, timeout_s: float) -> Any:
    """The query's rows from one jobs.query request when BigQuery answers within timeout_s (the usual case: the
    client the API builds asks for short-query mode, so no job is created), polling only a query that outlives
    the request. Every retry and wait is bounded by timeout_s (the library's defaults retry for 10 minutes)."""
    from google.cloud.bigquery import DEFAULT_RETRY
    from google.cloud.bigquery.retry import DEFAULT_JOB_RETRY

    retry, job_retry = DEFAULT_RETRY.with_timeout(timeout_s), DEFAULT_JOB_RETRY.with_timeout(timeout_s)
    # api_timeout is also sent as the request's timeoutMs: how long BigQuery holds the answer before it makes
    # a job of the query and the client has to poll; wait_timeout bounds that polling, then cancels the job.
    # The two run one after the other, so each gets half of timeout_s: a slow query is answered 504 after
    # timeout_s, not twice that.
    half = timeout_s / 2
    return client.query_and_wait(sql, job_config=config, api_timeout=half, wait_timeout=half,
                                 retry=retry, job_retry=job_retry)


def get_data(client: Any, table: str, *, action_id: str, user_email: str, limit: int = 100, days: int = 30,
             max_bytes: int | None = None, timeout_s: float = 30.0,
             max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES) -> tuple[int, list[dict[str, Any]]]:
    """(count of distinct events in the window, newest `limit` of them as dicts, fewer when they would pass
    about max_answer_bytes)."""
    config = _job_config([("action_id", "STRING", action_id), ("user_email", "STRING", user_email.lower()),
                          ("days", "INT64", days), ("limit", "INT64", limit),
                          ("max_answer_bytes", "INT64", max_answer_bytes)], max_bytes)
    rows = [dict(row) for row in _run(client, get_data_sql(table), config, timeout_s)]
    total = rows[0].pop("total") if rows else 0
    for row in rows[1:]:
        row.pop("total")
    return total, rows


def app_info(client: Any, table: str, *, app_id: str, app_department: str, days: int = 30,
             max_bytes: int | None = None, top: int = 5, timeout_s: float = 30.0) -> dict[str, Any] | None:
    """Summary of an app's events in the window, or None when it has none."""
    config = _job_config([("app_id", "STRING", app_id), ("app_department", "STRING", app_department),
                          ("days", "INT64", days), ("top", "INT64", top)], max_bytes)
    rows = [dict(r) for r in _run(client, app_info_sql(table), config, timeout_s)]
    if not rows or not rows[0]["events"]:
        return None
    summary = {k: rows[0][k] for k in ("events", "users", "actions", "first_seen", "last_seen")}
    summary["top_actions"] = [{"action_id": r["action_id"], "events": r["action_events"]}
                              for r in rows if r["action_id"] is not None]
    return summary
