"""Group commit: rows from concurrent deliveries share one BigQuery insert, each caller learns its own fate.

The first caller to find no insert in flight becomes the leader: it takes every waiting row, inserts them
in one request and hands each caller its own outcome; rows that arrive meanwhile go in the next request.
An idle function therefore adds no delay, and a busy one makes one insert per round trip instead of one
per event. No delivery is answered before its own row is committed: callers block until then.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any

from ingest_fn.metrics import INSERTS
from ingest_fn.sink import BigQuerySink, TransientError

STORED = None  # the outcome of a stored row; otherwise BigQuery's reason for refusing it


class GroupCommitter:
    def __init__(self, sink: BigQuerySink, max_rows: int = 500) -> None:
        self.sink = sink
        self.max_rows = max_rows  # BigQuery recommends at most 500 rows per streaming insert
        self._lock = threading.Lock()
        self._pending: list[tuple[dict[str, Any], Future[str | None]]] = []
        self._leader_active = False
        self.inserts = 0  # requests sent, for tests and metrics

    def insert(self, row: dict[str, Any], timeout_s: float | None = None) -> str | None:
        """Return None once the row is stored, or the reason BigQuery refused it; raise TransientError."""
        future: Future[str | None] = Future()
        with self._lock:
            self._pending.append((row, future))
            lead = not self._leader_active
            self._leader_active = True
        if lead:
            self._lead()
        return future.result(timeout=timeout_s)

    def _lead(self) -> None:
        while True:
            with self._lock:
                batch, self._pending = self._pending[: self.max_rows], self._pending[self.max_rows :]
                if not batch:
                    self._leader_active = False
                    return
            self._commit(batch)

    def _commit(self, batch: list[tuple[dict[str, Any], Future[str | None]]]) -> None:
        self.inserts += 1
        INSERTS.inc()
        try:
            result = self.sink.insert([row for row, _ in batch])
        except BaseException as exc:  # every delivery in a failed request fails, and is retried by Pub/Sub
            failure = exc if isinstance(exc, TransientError) else TransientError(f"insert failed: {exc}")
            for _, future in batch:
                future.set_exception(failure)
            if not isinstance(exc, Exception):
                raise
            return
        unstored = set(result.unstored)
        for index, (_, future) in enumerate(batch):
            if index in unstored:
                future.set_exception(TransientError("BigQuery did not store the row"))
            else:
                future.set_result(result.refused.get(index, STORED))
