"""Dead letters: list them (and leave them), re-publish them to the main topic, or purge them.

Everything goes through the dead-letter subscription (pipeline.dead_letter_subscription) with synchronous
unary pull: after a streaming-pull subscriber closes, the Pub/Sub emulator keeps its messages invisible for
about a minute, and a CLI run is short anyway. A run holds every message it pulled until it ends, so it never
sees one twice and `--limit` counts distinct messages; then it releases (or acknowledges) them.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ltmctl.errors import BackendError
from ltmctl.text import cut

# What ingest_fn.dead_letter adds to the producer's attributes; a replay must not carry them, or the stored
# row's `attributes` would claim an error it no longer has.
ADDED_ATTRIBUTES = frozenset({"error", "error_detail", "ltm_original_message_id", "ltm_original_publish_time",
                              "ltm_replayed_from"})
# Added by Pub/Sub itself when a subscription's dead-letter policy moves a message (delivery attempts exhausted).
PUBSUB_PREFIX = "CloudPubSubDeadLetter"
REPLAYED_FROM = "ltm_replayed_from"

PULL_MAX = 500  # per request; Pub/Sub allows 1000
# An empty pull waits this long for messages. The emulator answers about a second before the deadline, so an
# empty subscription costs ~1 s; real Pub/Sub returns as soon as anything is available.
WAIT_S = 2.0
BUDGET_S = 60.0
PREVIEW_CHARS = 60


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    publish_time: str  # RFC 3339
    data: bytes
    attributes: dict[str, str]

    @property
    def error(self) -> str | None:
        if "error" in self.attributes:
            return self.attributes["error"]
        # Moved by the subscription's dead-letter policy: the ingest service kept failing (not the event's fault).
        return "delivery_attempts_exhausted" if f"{PUBSUB_PREFIX}SourceDeliveryCount" in self.attributes else None

    @property
    def error_detail(self) -> str | None:
        if "error_detail" in self.attributes:
            return self.attributes["error_detail"]
        count = self.attributes.get(f"{PUBSUB_PREFIX}SourceDeliveryCount")
        return f"not acknowledged after {count} delivery attempts" if count else None

    @property
    def original_message_id(self) -> str | None:
        return self.attributes.get("ltm_original_message_id")

    def preview(self, chars: int = PREVIEW_CHARS) -> str:
        try:
            text = self.data.decode("utf-8")
        except UnicodeDecodeError:
            text = self.data.decode("utf-8", "backslashreplace")  # shows the bad bytes as \xff
        text = text.replace("\r", "\\r").replace("\n", "\\n")
        # Other control characters would act on the terminal (a NUL, an escape sequence): shown as \x00.
        text = "".join(f"\\x{ord(c):02x}" if ord(c) < 32 or ord(c) == 127 else c for c in text)
        return cut(text, chars)

    def as_dict(self) -> dict[str, Any]:
        import base64

        return {"message_id": self.message_id, "publish_time": self.publish_time, "error": self.error,
                "error_detail": self.error_detail, "original_message_id": self.original_message_id,
                "original_publish_time": self.attributes.get("ltm_original_publish_time"),
                "attributes": self.attributes, "size": len(self.data), "data_preview": self.preview(),
                "data_base64": base64.b64encode(self.data).decode()}


def replay_attributes(letter: DeadLetter) -> dict[str, str]:
    """The producer's original attributes, plus where the replay came from."""
    kept = {k: v for k, v in letter.attributes.items()
            if k not in ADDED_ATTRIBUTES and not k.startswith(PUBSUB_PREFIX)}
    return {**kept, REPLAYED_FROM: letter.message_id}


def _letter(message: Any) -> DeadLetter:
    published = message.publish_time
    stamp = published.astimezone(UTC).isoformat().replace("+00:00", "Z") if published else ""
    return DeadLetter(message.message_id, stamp, bytes(message.data), dict(message.attributes))


def _backend(action: str, path: str, exc: Exception) -> BackendError:
    from google.api_core import exceptions

    if isinstance(exc, exceptions.NotFound):
        return BackendError(f"{path} does not exist: {exc.message}",
                            hint="Create the pipeline's resources: `ltmctl provision` (GCP) or `ltmctl local up`.")
    return BackendError(f"Pub/Sub failed to {action} {path}: {getattr(exc, 'message', exc)}",
                        hint="Check `ltmctl local status`, or your network and credentials.")


def _api(action: str, path: str, call: Any, **request: Any) -> Any:
    from google.api_core import exceptions

    try:
        return call(request={**request}, timeout=30)
    except exceptions.GoogleAPICallError as exc:
        raise _backend(action, path, exc) from None


class PullFailed(BackendError):
    """A pull failed after Pub/Sub may have leased its messages to it: nobody can release them, so they stay
    invisible to every reader until their acknowledgement deadline passes."""


def _pull(subscriber: Any, path: str, wanted: Callable[[], int], budget_s: float, wait_s: float
          ) -> Iterator[list[Any]]:
    """Batches of received messages until the subscription answers empty, `wanted()` drops to 0, or time is up.
    One pull may return fewer messages than are available, hence the loop."""
    from google.api_core import exceptions

    deadline = time.monotonic() + budget_s
    while (count := wanted()) > 0 and time.monotonic() < deadline:
        try:
            response = subscriber.pull(request={"subscription": path, "max_messages": min(count, PULL_MAX)},
                                       timeout=wait_s, retry=None)
        except exceptions.DeadlineExceeded:
            return  # nothing arrived while we waited: empty
        except exceptions.GoogleAPICallError as exc:
            error = _backend("pull from", path, exc)
            raise PullFailed(error.message + " Messages that pull had taken stay held until their "
                             "acknowledgement deadline passes.", hint=error.hint) from None
        if not response.received_messages:
            return
        yield list(response.received_messages)


def _in_chunks(ack_ids: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(ack_ids), PULL_MAX):
        yield ack_ids[start:start + PULL_MAX]


def _release(subscriber: Any, path: str, ack_ids: list[str]) -> bool:
    """Deadline 0 makes them deliverable again at once, instead of after the ack deadline. Best effort on the
    way out: every chunk is tried; False if any could not be released."""
    from google.api_core import exceptions

    released = True
    for chunk in _in_chunks(ack_ids):
        try:
            subscriber.modify_ack_deadline(request={"subscription": path, "ack_ids": chunk,
                                                    "ack_deadline_seconds": 0}, timeout=30)
        except exceptions.GoogleAPICallError:
            released = False
    return released


def _acknowledge(subscriber: Any, path: str, ack_ids: list[str]) -> None:
    for chunk in _in_chunks(ack_ids):
        _api("acknowledge messages in", path, subscriber.acknowledge, subscription=path, ack_ids=chunk)


# Where a run that could not release what it held notes until when those messages stay invisible, so that
# the next run does not report an empty subscription as if it held nothing.
def _remember_held(note: Path | None, subscriber: Any, path: str) -> None:
    if note is None:
        return
    try:
        seconds = subscriber.get_subscription(request={"subscription": path}, timeout=10).ack_deadline_seconds
    except Exception:  # noqa: BLE001 - on the way out of a failure: assume Pub/Sub's longest deadline
        seconds = 600
    until = datetime.now(UTC) + timedelta(seconds=seconds or 600)
    notes = _read_notes(note)
    notes[path] = until.isoformat()
    note.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(note, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(notes))


def _read_notes(note: Path) -> dict[str, str]:
    try:
        notes = json.loads(note.read_text())
    except (OSError, ValueError):
        return {}
    return notes if isinstance(notes, dict) else {}


def lease_note(resolved: Any) -> Path:
    """The environment's note of dead letters held by a failed run (in its state directory)."""
    return resolved.state_dir / "dlq-held.json"


def held_until(note: Path, clients: Any, subscription: str) -> datetime | None:
    """Until when messages of `subscription` may be held by an earlier run that failed (None: none are)."""
    path = clients.subscriber.subscription_path(clients.project, subscription)
    try:
        until = datetime.fromisoformat(_read_notes(note).get(path, ""))
    except ValueError:
        return None
    return until if until > datetime.now(UTC) else None


def peek(clients: Any, subscription: str, *, limit: int = 100, budget_s: float = BUDGET_S,
         wait_s: float = WAIT_S, lease_note: Path | None = None) -> list[DeadLetter]:
    """Up to `limit` dead letters, oldest first, released again so they stay in the subscription."""
    path = clients.subscriber.subscription_path(clients.project, subscription)
    held: list[str] = []
    letters: dict[str, DeadLetter] = {}
    released = False
    try:
        for batch in _pull(clients.subscriber, path, lambda: limit - len(letters), budget_s, wait_s):
            for received in batch:
                held.append(received.ack_id)
                letters.setdefault(received.message.message_id, _letter(received.message))
    except PullFailed:
        _remember_held(lease_note, clients.subscriber, path)
        raise
    finally:
        released = _release(clients.subscriber, path, held)
    if not released:
        _remember_held(lease_note, clients.subscriber, path)
    return sorted(letters.values(), key=lambda letter: (letter.publish_time, letter.message_id))


@dataclass
class ReplayReport:
    replayed: list[tuple[str, str]] = field(default_factory=list)  # (dead-letter message id, new message id)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (dead-letter message id, reason)


def replay(clients: Any, subscription: str, topic: str, *, limit: int = 1000, budget_s: float = BUDGET_S,
           wait_s: float = WAIT_S, publish_timeout_s: float = 30.0, lease_note: Path | None = None
           ) -> ReplayReport:
    """Re-publish up to `limit` dead letters to `topic`; each is acknowledged only after its publish succeeded.

    A dead letter whose publish failed stays in the subscription; replay stops at the first batch with a
    failure (a missing or unreachable topic would fail them all)."""
    subscriber = clients.subscriber
    path = subscriber.subscription_path(clients.project, subscription)
    topic_path = clients.publisher.topic_path(clients.project, topic)
    report, done, held = ReplayReport(), set(), []
    try:
        for batch in _pull(subscriber, path, lambda: limit - len(report.replayed) - len(report.failed),
                           budget_s, wait_s):
            acks: list[str] = []
            try:
                pending = []
                for received in batch:
                    letter = _letter(received.message)
                    if letter.message_id in done:  # redelivered because its ack was lost: it is already replayed
                        acks.append(received.ack_id)
                    elif letter.attributes.get(REPLAYED_FROM) in done:
                        # Dead-lettered again by this very run (an event that is still invalid): replaying it
                        # again would loop until the time budget; leave it for the user to look at.
                        held.append(received.ack_id)
                    else:
                        future = clients.publisher.publish(topic_path, letter.data, **replay_attributes(letter))
                        pending.append((received.ack_id, letter.message_id, future))
                for ack_id, message_id, future in pending:
                    try:
                        new_id = future.result(timeout=publish_timeout_s)
                    except Exception as exc:  # noqa: BLE001 - whatever failed, the dead letter must stay
                        report.failed.append((message_id, getattr(exc, "message", None) or repr(exc)))
                        held.append(ack_id)
                        continue
                    acks.append(ack_id)
                    done.add(message_id)
                    report.replayed.append((message_id, new_id))
            finally:
                # Acknowledge what was re-published even if something later in the batch blew up.
                _acknowledge(subscriber, path, acks)
            if report.failed:
                break
    except PullFailed:
        _remember_held(lease_note, subscriber, path)
        raise
    finally:
        if not _release(subscriber, path, held):
            _remember_held(lease_note, subscriber, path)
    return report


def purge(clients: Any, subscription: str) -> datetime:
    """Acknowledge every dead letter published before now, by seeking the subscription to the current time.

    One call, whatever the backlog (the Cloud Console's "purge" does the same); returns the cut-off time."""
    from google.protobuf import timestamp_pb2

    path = clients.subscriber.subscription_path(clients.project, subscription)
    now = datetime.now(UTC)
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(now)
    _api("purge", path, clients.subscriber.seek, subscription=path, time=stamp)
    return now
