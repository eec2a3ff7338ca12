"""Write rows to BigQuery with the event id as insert id; tell permanent row errors from transient failures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class TransientError(Exception):
    """Storing failed for a reason that may pass (BigQuery unreachable, 5xx): the delivery must be retried."""


@dataclass(frozen=True)
class InsertResult:
    refused: dict[int, str]  # row index -> BigQuery's reason: the row can never be stored
    unstored: list[int]  # row indexes not written for a passing reason: retry them


class BigQuerySink:
    def __init__(self, client: Any, table_id: str, timeout_s: float = 10.0) -> None:
        self.client = client
        self.table_id = table_id
        self.timeout_s = timeout_s

    def insert(self, rows: list[dict[str, Any]]) -> InsertResult:
        """Insert rows. Raise TransientError when nothing can be said about them (they may or may not be
        stored; the row id and read-time de-duplication make a retry safe)."""
        from google.api_core import exceptions
        from google.cloud.bigquery import DEFAULT_RETRY

        try:
            errors = self.client.insert_rows_json(
                self.table_id,
                rows,
                row_ids=[row["event_id"] for row in rows],
                # Store the valid rows of a request even if one is invalid: without it, BigQuery refuses the whole
                # request (the rest "stopped", to be retried after a redelivery's backoff) and the local emulator
                # answers it with a bare 500; with it, both store the rest and name the invalid row.
                skip_invalid_rows=True,
                retry=DEFAULT_RETRY.with_deadline(self.timeout_s),
                timeout=self.timeout_s,
            )
        except (exceptions.GoogleAPIError, OSError) as exc:
            # Whole-request failures, 4xx included (say the table is missing), are not a property of the
            # events: retry, so they are stored once the cause is fixed; the dead-letter policy bounds attempts.
            raise TransientError(f"BigQuery insert failed: {exc}") from exc
        refused: dict[int, str] = {}
        unstored: list[int] = []
        for entry in errors:
            reasons = entry.get("errors", [])
            if any(e.get("reason") == "invalid" for e in reasons):
                refused[entry["index"]] = "; ".join(e.get("message", "") for e in reasons)
            else:
                # "stopped": valid, but not written because another row in the request was invalid.
                unstored.append(entry["index"])
        return InsertResult(refused=refused, unstored=unstored)
