"""Publish events to the pipeline's topic: validated against the contract, batched, optionally rate-capped."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

# Larger batches than the client's defaults (100 messages, 10 ms): far fewer round trips for bulk test data,
# and still well under Pub/Sub's 10 MB / 1000 messages request limits.
BATCH_MAX_MESSAGES = 1000
BATCH_MAX_BYTES = 9 * 1024 * 1024
BATCH_MAX_LATENCY_S = 0.05
# Bounded memory: beyond this many messages (or for a file of unknown length) publish blocks once this
# many are in flight. Below it flow control is off: its per-message bookkeeping costs about a fifth of
# the publish rate, and 100k small events fit in memory anyway.
IN_FLIGHT_MESSAGES = 100_000


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
    seconds: float = 0.0
    first_message_id: str | None = None
    last_message_id: str | None = None

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


def from_synthetic(events: Iterable[dict[str, Any]], validator: Any) -> Iterator[Item]:
    for i, event in enumerate(events, 1):
        yield Item(i, json.dumps(event, separators=(",", ":")).encode(), tuple(validator.problems(event)))


def from_lines(stream: IO[str], validator: Any) -> Iterator[Item]:
    """JSON Lines; blank lines are skipped; a line that is not JSON is an item with that problem."""
    for number, line in enumerate(stream, 1):
        text = line.strip()
        if not text:
            continue
        try:
            event = json.loads(text)
        except json.JSONDecodeError as exc:
            yield Item(number, text.encode(), (f"not JSON: {exc.msg} at column {exc.colno}",))
            continue
        yield Item(number, text.encode(), tuple(validator.problems(event)))


class _RateLimit:
    def __init__(self, per_second: float | None) -> None:
        self.interval = 1.0 / per_second if per_second else 0.0
        self.next_at = time.monotonic()

    def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        if self.next_at > now:
            time.sleep(self.next_at - now)
        self.next_at = max(self.next_at, now) + self.interval


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
    started = time.monotonic()
    for item in items:
        if item.problems and not allow_invalid:
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
            summary.failed.append((position, f"{type(exc).__name__}: {exc}"[:300]))
        else:
            summary.published += 1
            message_ids[position] = future.result()
    if on_progress:
        on_progress(summary.published, len(summary.failed))
    if sent:
        summary.first_message_id = message_ids.get(sent[0][0])
        summary.last_message_id = message_ids.get(sent[-1][0])
    return summary


def items_for(*, count: int | None, stream: IO[str] | None, seed: int | None, source: str | None,
              validator: Any) -> Iterator[Item]:
    if stream is not None:
        return from_lines(stream, validator)
    from ltmctl import synthetic

    return from_synthetic(synthetic.events(count or 0, seed=seed, source=source), validator)


def publish_to_env(resolved: Any, items: Iterable[Item], *, expected: int | None = None, **kwargs: Any) -> Summary:
    """publish() to the selected environment's topic with a publisher tuned for bulk sends;
    `expected` is the number of items when known (synthetic events), None for a file or stdin."""
    from ltmctl import clients

    ordering = bool(kwargs.get("ordering_key"))
    bounded = expected is None or expected > IN_FLIGHT_MESSAGES
    publisher = clients.publisher_for_env(resolved, **publisher_options(ordering, bounded))
    topic = f"projects/{resolved.env.project}/topics/{resolved.pipeline.topic}"
    try:
        return publish(publisher, topic, items, **kwargs)
    finally:
        publisher.stop()
