"""Publish events to the pipeline's topic: validated against the contract, batched, optionally rate-capped."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from ltmctl.text import cut

# Larger batches than the client's defaults (100 messages, 10 ms): far fewer round trips for bulk test data,
# and still well under Pub/Sub's 10 MB / 1000 messages request limits.
BATCH_MAX_MESSAGES = 1000
BATCH_MAX_BYTES = 9 * 1024 * 1024
BATCH_MAX_LATENCY_S = 0.05
# Bounded memory: beyond this many messages (or for a file of unknown length) publish blocks once this
# many are in flight. Below it flow control is off: its per-message bookkeeping costs about a fifth of
# the publish rate, and 100k small events fit in memory anyway.
IN_FLIGHT_MESSAGES = 100_000
BATCH_THREADS = 4  # publish requests in flight at once, without --rate or --ordering-key
# Synthetic runs at least this large, with neither --rate nor --ordering-key, are published by several
# processes, each with its own client: the client's publish() costs about as much CPU as generating,
# checking and serialising an event, and one Python process keeps one core busy at most.
PARALLEL_MIN_COUNT = 5_000
MAX_WORKERS = 4


@dataclass(frozen=True)
class Item:
    """One event to publish: where it came from (line or index), its bytes, and why it breaks the contract."""

    position: int
    data: bytes
    problems: tuple[str, ...] = ()


@dataclass
class Summary:
    published: int = 0
    failed: list[tuple[int, str]] = field(default_factory=list)  # (position, reason)
    invalid: list[tuple[int, str]] = field(default_factory=list)  # (position, problems), skipped
    seconds: float = 0.0  # first publish to last confirmed result
    first_message_id: str | None = None
    last_message_id: str | None = None
    started: float = field(default=0.0, repr=False)  # time.monotonic() of the first publish (system-wide clock)

    @property
    def rate(self) -> float:
        return self.published / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"published": self.published, "failed": len(self.failed), "invalid_skipped": len(self.invalid),
                "msgs_per_s": round(self.rate, 1), "seconds": round(self.seconds, 3),
                "first_message_id": self.first_message_id, "last_message_id": self.last_message_id,
                "failures": Counter(reason for _, reason in self.failed).most_common(5)}


def publisher_options(ordering: bool, bounded: bool = True) -> dict[str, Any]:
    from google.cloud.pubsub_v1 import types

    behaviour = types.LimitExceededBehavior.BLOCK if bounded else types.LimitExceededBehavior.IGNORE
    return {
        "batch_settings": types.BatchSettings(max_messages=BATCH_MAX_MESSAGES, max_bytes=BATCH_MAX_BYTES,
                                              max_latency=BATCH_MAX_LATENCY_S),
        "publisher_options": types.PublisherOptions(
            enable_message_ordering=ordering,
            flow_control=types.PublishFlowControl(message_limit=IN_FLIGHT_MESSAGES,
                                                  limit_exceeded_behavior=behaviour)),
    }


def from_synthetic(events: Iterable[dict[str, Any]], validator: Any, first: int = 1) -> Iterator[Item]:
    """Items numbered from `first`: the position of the first event in the whole run."""
    # One encoder for all events: json.dumps with separators builds a new one per call.
    encode = json.JSONEncoder(separators=(",", ":")).encode
    problems = validator.problems
    for i, event in enumerate(events, first):
        data = encode(event).encode()
        too_large = validator.size_problem(len(data))
        yield Item(i, data, (too_large,) if too_large else tuple(problems(event)))


def from_lines(stream: IO[bytes] | IO[str], validator: Any) -> Iterator[Item]:
    """JSON Lines, read as bytes a bounded line at a time; blank lines are skipped. Every way a line can be bad (not
    UTF-8, not JSON, too deep, too large, against the contract) is an item with that problem, never an exception.
    A line longer than the contract's event limit is not kept in memory: it is skipped whole, data and all (not
    even --allow-invalid can publish it, as Pub/Sub would refuse it)."""
    from ingest_fn.contract import loads

    raw: IO[bytes] = getattr(stream, "buffer", stream)  # type: ignore[assignment]
    limit = validator.limits.max_event_bytes
    number = 0
    while True:
        read = raw.readline(limit + 2)  # the event, its newline, and one byte to tell "too long"
        if not read:
            return
        number += 1
        # a text stream without a buffer (io.StringIO) gives str
        line = read.encode("utf-8", "surrogateescape") if isinstance(read, str) else read
        if len(line) > limit + 1 or (len(line) == limit + 1 and not line.endswith(b"\n")):
            newline = "\n" if isinstance(read, str) else b"\n"
            while read and not read.endswith(newline):
                read = raw.readline(1024 * 1024)  # skip the rest of the line, a bounded piece at a time
            yield Item(number, b"", (f"(event): more than {limit} bytes, the contract's event limit",))
            continue
        text = line.strip()
        if not text:
            continue
        try:
            event = loads(text.decode("utf-8"))
        except UnicodeDecodeError as exc:
            yield Item(number, text, (f"not UTF-8: byte {exc.start}: {exc.reason}",))
            continue
        except json.JSONDecodeError as exc:
            yield Item(number, text, (f"not JSON: {exc.msg} at column {exc.colno}",))
            continue
        except ValueError as exc:  # deeper than the contract allows, NaN, an integer of thousands of digits
            yield Item(number, text, (cut(str(exc), 300),))
            continue
        too_large = validator.size_problem(len(text))
        yield Item(number, text, (too_large,) if too_large else tuple(validator.problems(event)))


class _RateLimit:
    """Paces sends to `per_second` on average. It keeps a schedule (send n is due at start + n / rate) instead of
    waiting a full interval after each send: a send that comes late (a slow publish() call, a sleep that overshot)
    is made up by the next ones going at once, where waiting an interval from "now" lost every such delay, and
    `--rate 500` sent 363 messages a second. After a pause the catch-up is bounded to CATCH_UP_S of sends, so an
    idle producer never bursts its whole backlog at once."""

    CATCH_UP_S = 0.25

    def __init__(self, per_second: float | None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = 1.0 / per_second if per_second else 0.0
        self.clock, self.sleep = clock, sleep
        self.next_at = clock()

    def wait(self) -> None:
        if not self.interval:
            return
        now = self.clock()
        if self.next_at > now:
            self.sleep(self.next_at - now)
        self.next_at = max(self.next_at, now - self.CATCH_UP_S) + self.interval


def publish(
    publisher: Any,
    topic_path: str,
    items: Iterable[Item],
    *,
    attributes: dict[str, str] | None = None,
    ordering_key: str = "",
    rate: float | None = None,
    allow_invalid: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
    timeout_s: float = 120.0,
) -> Summary:
    """Publish every valid item (and invalid ones with allow_invalid); wait for all results."""
    if not rate and not ordering_key:
        return _publish_batched(publisher, topic_path, items, attributes=attributes or {},
                                allow_invalid=allow_invalid, on_progress=on_progress, timeout_s=timeout_s)
    # Paced or ordered: the client's publish() per message, which sends in order and at the caller's pace.
    import concurrent.futures
    import itertools

    summary = Summary()
    limiter = _RateLimit(rate)
    sent: list[tuple[int, Any]] = []
    finished = itertools.count(1)  # next() is atomic: the callbacks run on the client's batch threads
    every = 1 if rate else 500  # progress every N results: a bar redraw per message would cost more than it

    def tick(_: Any) -> None:
        n = next(finished)
        if on_progress and n % every == 0:
            on_progress(n, 0)

    extra = dict(attributes or {})
    if ordering_key:
        extra["ordering_key"] = ordering_key
    summary.started = started = time.monotonic()
    for item in items:
        if item.problems and (not allow_invalid or not item.data):
            summary.invalid.append((item.position, "; ".join(item.problems)))
            continue
        limiter.wait()
        future = publisher.publish(topic_path, item.data, **extra)
        future.add_done_callback(tick)
        sent.append((item.position, future))
    _, not_done = concurrent.futures.wait([f for _, f in sent], timeout=timeout_s)
    summary.seconds = time.monotonic() - started
    message_ids: dict[int, str] = {}
    for position, future in sent:
        if future in not_done:
            summary.failed.append((position, f"unconfirmed after {timeout_s:.0f}s"))
        elif (exc := future.exception()) is not None:
            summary.failed.append((position, cut(f"{type(exc).__name__}: {exc}", 300)))
        else:
            summary.published += 1
            message_ids[position] = future.result()
    if on_progress:
        on_progress(summary.published, len(summary.failed))
    if sent:
        summary.first_message_id = message_ids.get(sent[0][0])
        summary.last_message_id = message_ids.get(sent[-1][0])
    return summary


def _batches(items: Iterable[Item], summary: Summary, allow_invalid: bool) -> Iterator[list[Item]]:
    """The items to send, in requests of at most BATCH_MAX_MESSAGES messages and BATCH_MAX_BYTES of data;
    invalid ones are recorded in the summary and left out (unless allow_invalid)."""
    batch: list[Item] = []
    size = 0
    for item in items:
        if item.problems and (not allow_invalid or not item.data):
            summary.invalid.append((item.position, "; ".join(item.problems)))
            continue
        if batch and (len(batch) == BATCH_MAX_MESSAGES or size + len(item.data) > BATCH_MAX_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += len(item.data)
    if batch:
        yield batch


def _publish_batched(publisher: Any, topic_path: str, items: Iterable[Item], *, attributes: dict[str, str],
                     allow_invalid: bool, on_progress: Callable[[int, int], None] | None,
                     timeout_s: float) -> Summary:
    """Send items as PublishRequests of up to 1,000 messages straight through the client's API layer (which keeps
    Pub/Sub's retry policy), BATCH_THREADS requests at a time.

    Why not the client's publish(): it spends about 150 µs of Python per message (a future, a lock, a proto-plus
    message, a batch commit thread), which makes one core, not Pub/Sub, the limit: 6,000-8,000 msgs/s against the
    emulator. A request built from plain protobuf messages costs a microsecond or two per message: over 100,000
    msgs/s from one process, measured. Each message still gets its own id back, or its own failure reason."""
    from collections import deque
    from concurrent.futures import Future, ThreadPoolExecutor

    from google.pubsub_v1.services.publisher.client import PublisherClient as ApiLayer
    from google.pubsub_v1.types import PublishRequest, PubsubMessage

    new_request, new_message = PublishRequest.pb(), PubsubMessage.pb()
    summary = Summary()

    def send(batch: list[Item]) -> list[str]:
        request = new_request(topic=topic_path,
                              messages=[new_message(data=item.data, attributes=attributes) for item in batch])
        # The high-level client subclasses the generated one and overrides publish(); the generated method takes a
        # whole request and applies Pub/Sub's default retry policy.
        return list(ApiLayer.publish(publisher, request=request, timeout=timeout_s).message_ids)

    def settle(batch: list[Item], future: Future) -> None:
        exc = future.exception()
        if exc is not None:
            reason = cut(f"{type(exc).__name__}: {exc}", 300)
            summary.failed.extend((item.position, reason) for item in batch)
        else:
            ids = future.result()
            summary.published += len(ids)
            summary.first_message_id = summary.first_message_id or ids[0]
            summary.last_message_id = ids[-1]
        if on_progress:
            on_progress(summary.published + len(summary.failed), len(summary.failed))

    summary.started = started = time.monotonic()
    # Results are settled in sending order, so first and last are the run's first and last message; at most
    # 2 × BATCH_THREADS requests wait, which bounds memory for a file or stdin of any length.
    pending: deque[tuple[list[Item], Future]] = deque()
    with ThreadPoolExecutor(BATCH_THREADS, thread_name_prefix="ltmctl-publish") as pool:
        for batch in _batches(items, summary, allow_invalid):
            pending.append((batch, pool.submit(send, batch)))
            while len(pending) >= 2 * BATCH_THREADS:
                settle(*pending.popleft())
        while pending:
            settle(*pending.popleft())
    summary.seconds = time.monotonic() - started
    return summary


def items_for(*, count: int | None, stream: IO[str] | None, seed: int | None, source: str | None,
              validator: Any) -> Iterator[Item]:
    if stream is not None:
        return from_lines(stream, validator)
    from ltmctl import synthetic

    return from_synthetic(synthetic.events(count or 0, seed=seed, source=source), validator)


def publish_to_env(env: Any, items: Iterable[Item], *, expected: int | None = None, **kwargs: Any) -> Summary:
    """publish() to the environment's topic (`ltmctl.environments.Environment`) with a publisher tuned for bulk
    sends; `expected` is the number of items when known (synthetic events), None for a file or stdin."""
    ordering = bool(kwargs.get("ordering_key"))
    bounded = expected is None or expected > IN_FLIGHT_MESSAGES
    publisher = env.publisher(**publisher_options(ordering, bounded))
    try:
        return publish(publisher, env.topic_path, items, **kwargs)
    finally:
        publisher.stop()


def workers_for(count: int, *, rate: float | None = None, ordering_key: str = "") -> int:
    """How many processes publish `count` synthetic events: one for small runs, a rate cap or an ordering
    key (one publisher must send them all, in order and at that pace), else one per core up to MAX_WORKERS."""
    if rate or ordering_key or count < PARALLEL_MIN_COUNT:
        return 1
    return max(1, min(os.cpu_count() or 1, MAX_WORKERS))


def publish_synthetic_to_env(env: Any, *, count: int, seed: int | None = None, source: str | None = None,
                             workers: int | None = None, on_progress: Callable[[int, int], None] | None = None,
                             **kwargs: Any) -> Summary:
    """`count` synthetic events to the environment's topic, each checked against the contract; in several
    processes when workers_for() says so. The events (ids included) depend only on the seed, not on the number
    of processes; positions, failures and first/last message ids are those of the whole run."""
    from ingest_fn.contract import EventValidator
    from ltmctl import synthetic

    if workers is None:
        workers = workers_for(count, rate=kwargs.get("rate"), ordering_key=kwargs.get("ordering_key", ""))
    workers = max(1, min(workers, count))
    if workers == 1:
        items = from_synthetic(synthetic.events(count, seed=seed, source=source), EventValidator())
        return publish_to_env(env, items, expected=count, on_progress=on_progress, **kwargs)
    return _publish_parallel(env, count=count, seed=synthetic.new_seed() if seed is None else seed,
                             source=source, workers=workers, on_progress=on_progress, options=kwargs)


def _slices(count: int, workers: int, block: int) -> list[tuple[int, int]]:
    """[start, end) 0-based ranges, as even as possible, cut on block boundaries where the sizes allow."""
    size = -(-count // workers)
    size = -(-size // block) * block if size >= block else size
    return [(start, min(count, start + size)) for start in range(0, count, size)]


def _publish_parallel(env: Any, *, count: int, seed: int, source: str | None, workers: int,
                      on_progress: Callable[[int, int], None] | None, options: dict[str, Any]) -> Summary:
    import multiprocessing
    import queue
    from datetime import UTC, datetime

    from ltmctl import synthetic
    from ltmctl.errors import BackendError

    env.ready()  # no stack, no credentials: said here, with its hint, rather than in a worker
    # spawn, not fork: a forked gRPC channel (or its threads) is unusable, and the parent may hold one.
    mp = multiprocessing.get_context("spawn")
    slices = _slices(count, workers, synthetic.BLOCK)
    done = mp.Array("q", len(slices), lock=False)  # results per worker; each worker writes only its own slot
    ready = mp.Barrier(len(slices))  # every worker starts publishing once all of them are set up
    results = mp.Queue()
    now = datetime.now(UTC)  # one `now` for every worker: same event times as a single-process run
    processes = [mp.Process(target=_worker, daemon=True, name=f"ltmctl-publish-{i}",
                            args=(i, env, start, end, seed, source, now, options, done, ready, results))
                 for i, (start, end) in enumerate(slices)]
    outcomes: dict[int, Any] = {}
    try:
        for process in processes:
            process.start()
        while len(outcomes) < len(processes):
            try:
                index, outcome = results.get(timeout=0.1)
                outcomes[index] = outcome
            except queue.Empty:
                lost = [i for i, p in enumerate(processes) if i not in outcomes and p.exitcode is not None]
                if lost:
                    try:  # a worker that exits has flushed its result first; read what is there
                        index, outcome = results.get(timeout=1.0)
                        outcomes[index] = outcome
                        continue
                    except queue.Empty:
                        raise BackendError(f"publishing worker {lost[0]} exited with code "
                                           f"{processes[lost[0]].exitcode} before reporting") from None
            if on_progress:
                on_progress(sum(done), 0)
    finally:
        for process in (p for p in processes if p.pid is not None):  # those started
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
    errors = [o[1] for _, o in sorted(outcomes.items()) if o[0] == "error"]
    if errors:
        real = [e for e in errors if not e.startswith("BrokenBarrierError")] or errors
        raise BackendError(f"publishing failed: {real[0]}")
    summary = _merge([outcomes[i][1] for i in range(len(processes))])
    if on_progress:
        on_progress(summary.published, len(summary.failed))
    return summary


def _merge(parts: list[Summary]) -> Summary:
    """One run's summary from its workers' (in position order): wall time from the first publish of any worker
    to the last result of any, first/last message id of the run's first and last message."""
    summary = Summary()
    for part in parts:
        summary.published += part.published
        summary.failed.extend(part.failed)
        summary.invalid.extend(part.invalid)
    sending = [p for p in parts if p.published or p.failed]
    if sending:
        summary.started = min(p.started for p in sending)
        summary.seconds = max(p.started + p.seconds for p in sending) - summary.started
        summary.first_message_id = sending[0].first_message_id
        summary.last_message_id = sending[-1].last_message_id
    return summary


def _worker(index: int, env: Any, start: int, end: int, seed: int, source: str | None, now: Any,
            options: dict[str, Any], done: Any, ready: Any, results: Any) -> None:
    """One process's slice [start, end) of a synthetic run, with its own client; reports ("ok", Summary) or
    ("error", text) on `results` and its progress in done[index]."""
    try:
        from ingest_fn.contract import EventValidator
        from ltmctl import synthetic

        publisher = env.publisher(**publisher_options(False, bounded=end - start > IN_FLIGHT_MESSAGES))
        items = from_synthetic(synthetic.events(end - start, seed=seed, source=source, now=now, start=start),
                               EventValidator(), first=start + 1)

        def progress(ok: int, failed: int) -> None:
            done[index] = ok + failed

        try:
            ready.wait(timeout=120)
            summary = publish(publisher, env.topic_path, items, on_progress=progress, **options)
        finally:
            publisher.stop()
        results.put((index, ("ok", summary)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        ready.abort()
        results.put((index, ("error", cut(f"{type(exc).__name__}: {exc}", 500))))
