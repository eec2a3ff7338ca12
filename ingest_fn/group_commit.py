"""Group commit: rows from concurrent deliveries share one BigQuery insert, each caller learns its own fate.

A caller that finds no insert in flight leads: it takes the waiting rows (its own first), inserts them in one
request and hands each caller its own outcome. If rows arrived meanwhile, it promotes the oldest of their callers
to lead the next request and returns: a leader answers its own delivery as soon as its row is committed, never
after everybody else's (holding it until the queue drained made one delivery wait for every later one, and
halved throughput under the Pub/Sub emulator's two push loops).

A leader lingers only when the committer is busy, and only to collect as many rows as recent requests carried:
right after a request, the deliveries it answered come back with their next messages within a few
milliseconds, and waiting for them turns a stream of one-row inserts into full ones. An idle committer inserts
at once. No delivery is answered before its own row is committed: callers block until then.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from ingest_fn.metrics import INSERTS
from ingest_fn.sink import BigQuerySink, TransientError

STORED = None  # the outcome of a stored row; otherwise BigQuery's reason for refusing it
_UNANSWERED: Any = object()  # a row whose request ended without saying what became of it: never "stored"


class _Call:
    __slots__ = ("row", "outcome", "error", "lead", "_asleep")

    def __init__(self, row: dict[str, Any]) -> None:
        self.row = row
        self.outcome: str | None = _UNANSWERED  # STORED, or BigQuery's reason for refusing the row
        self.error: BaseException | None = None  # why the row's fate is unknown: the delivery must fail
        self.lead = False
        # Released when the caller has something to do: lead the next request, or return its row's outcome. A bare
        # lock, taken here and released once per wake: an Event (a condition, its lock, a waiter list and a notify
        # per call) cost about half again as much CPU per row with 80 deliveries waiting, and a Future as much again.
        self._asleep = threading.Lock()
        self._asleep.acquire()

    def wait(self) -> None:
        self._asleep.acquire()

    def wake(self) -> None:
        self._asleep.release()


class GroupCommitter:
    def __init__(self, sink: BigQuerySink, max_rows: int = 500, linger_s: float = 0.005,
                 busy_window_s: float = 0.02) -> None:
        self.sink = sink
        self.max_rows = max_rows  # BigQuery recommends at most 500 rows per streaming insert
        self.linger_s = linger_s  # the longest a leader waits for rows while the committer is busy
        self.busy_window_s = busy_window_s  # a request that ended this recently means the committer is busy
        self._cond = threading.Condition()
        self._pending: list[_Call] = []
        self._leader_active = False
        self._recent_sizes: deque[int] = deque(maxlen=8)  # rows in the last requests
        self._last_end = float("-inf")  # time.monotonic() when it ended
        self.inserts = 0  # requests sent, for tests and metrics

    def insert(self, row: dict[str, Any]) -> str | None:
        """Return None once the row is stored, or the reason BigQuery refused it; raise TransientError."""
        call = _Call(row)
        with self._cond:
            self._pending.append(call)
            if not self._leader_active:
                self._leader_active = call.lead = True
            else:
                self._cond.notify()  # only a lingering leader waits on the condition: it counts the rows come
        if not call.lead:
            call.wait()
        if call.lead:
            self._lead()
        if call.error is not None:
            raise call.error
        if call.outcome is _UNANSWERED:
            raise TransientError("the insert carrying the row ended without an answer for it")
        return call.outcome

    def _lead(self) -> None:
        with self._cond:
            busy = time.monotonic() - self._last_end < self.busy_window_s
            if busy:
                deadline = time.monotonic() + self.linger_s
                # The most recent requests carried, not just the last: one short request (a delivery that came a
                # moment too late) must not make every later one short too.
                wanted = min(max(self._recent_sizes, default=0), self.max_rows)
                while len(self._pending) < wanted and (left := deadline - time.monotonic()) > 0:
                    self._cond.wait(left)
            batch, self._pending = self._pending[: self.max_rows], self._pending[self.max_rows :]
        try:
            self._commit(batch)
        finally:
            with self._cond:
                self._recent_sizes.append(len(batch))
                self._last_end = time.monotonic()
                if self._pending:
                    self._pending[0].lead = True  # the oldest waiting caller leads the next request
                    self._pending[0].wake()
                else:
                    self._leader_active = False
            for call in batch:
                call.wake()  # each learns its own outcome (set on its call by now)

    def _commit(self, batch: list[_Call]) -> None:
        # Requests a batch may spend isolating rows the backend chokes on: enough to bisect down to one bad row
        # (two per level), never the 2n-1 a full search would send while BigQuery is down.
        self._isolate(batch, budget=[2 * max(1, len(batch)).bit_length()])

    def _isolate(self, batch: list[_Call], budget: list[int]) -> None:
        self.inserts += 1
        INSERTS.inc()
        try:
            result = self.sink.insert([call.row for call in batch])
        except BaseException as exc:
            if not isinstance(exc, Exception):
                for call in batch:
                    call.error = TransientError(f"insert failed: {exc!r}")
                raise
            # A whole request the backend answered with an error may be one row's fault (the local BigQuery answers
            # 500 to a row it cannot encode): split it, so that row never holds back the good rows of its batch.
            # Connection failures and timeouts are nobody's row: fail them all at once.
            if len(batch) > 1 and budget[0] >= 2 and _answered(exc):
                budget[0] -= 2
                half = len(batch) // 2
                self._isolate(batch[:half], budget)
                self._isolate(batch[half:], budget)
                return
            # every delivery in a failed request fails, and is retried by Pub/Sub
            failure = exc if isinstance(exc, TransientError) else TransientError(f"insert failed: {exc}")
            for call in batch:
                call.error = failure
            return
        unstored = set(result.unstored)
        for index, call in enumerate(batch):
            if index in unstored:
                call.error = TransientError("BigQuery did not store the row")
            else:
                call.outcome = result.refused.get(index, STORED)


def _answered(exc: BaseException) -> bool:
    """True when BigQuery answered the request with an error status (as opposed to not answering at all)."""
    from google.api_core.exceptions import GoogleAPICallError, RetryError

    cause = exc.__cause__ if isinstance(exc, TransientError) else exc
    if isinstance(cause, RetryError):  # the sink's retry gave up; what did the last attempt get?
        cause = cause.cause
    return isinstance(cause, GoogleAPICallError) and cause.code is not None
