"""The ingest decision for one pushed message: store it, dead-letter it, or fail so Pub/Sub retries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ingest_fn.contract import EventValidator
from ingest_fn.dead_letter import DeadLetter
from ingest_fn.decode import Message, Rejection, decode
from ingest_fn.group_commit import STORED, GroupCommitter
from ingest_fn.logs import log
from ingest_fn.metrics import DEAD_LETTERS


@dataclass
class Ingestor:
    committer: GroupCommitter
    dead_letter: DeadLetter
    validator: EventValidator
    max_event_bytes: int

    def handle(self, message: Message) -> str:
        """Return "stored" or "dead_lettered"; raise TransientError when the delivery must be retried.

        Every exception is one of the two: decoding is a pure function of the message, so one that raises would
        raise on every redelivery and can never be stored (dead letter, with the exception as its reason); storing
        and dead-lettering talk to services, so their failures may pass (retry)."""
        try:
            outcome = decode(message, self.validator, self.max_event_bytes)
        except Exception as exc:  # noqa: BLE001 - a decoder bug must still leave a reason, not 5 bare 500s
            outcome = Rejection("undecodable", f"{type(exc).__name__}: {exc}")
        if isinstance(outcome, dict):
            refused = self.committer.insert(outcome)
            if refused is STORED:
                log("INFO", "stored", event_id=outcome["event_id"], message_id=message.message_id)
                return "stored"
            outcome = Rejection("schema", f"BigQuery refused the row: {refused}")
        dead_letter_id = self.dead_letter.send(message, outcome)
        DEAD_LETTERS.labels(error=outcome.error).inc()
        log("WARNING", "dead-lettered", message_id=message.message_id, error=outcome.error,
            error_detail=outcome.detail, dead_letter_message_id=dead_letter_id)
        return "dead_lettered"

    def handle_push(self, data: dict[str, Any]) -> str:
        """`data` is the CloudEvent data of a Pub/Sub messagePublished event: {"message": {...}}."""
        return self.handle(Message.from_push(data.get("message") or {}))
