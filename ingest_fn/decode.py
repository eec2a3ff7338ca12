"""Turn one Pub/Sub message into a table row, or into the reason it can never be stored."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ingest_fn.contract import EventValidator, loads, parse_time


@dataclass(frozen=True)
class Message:
    """The parts of a pushed Pub/Sub message that ingest uses."""

    message_id: str
    publish_time: str
    data: bytes
    attributes: dict[str, str]

    @classmethod
    def from_push(cls, message: dict[str, Any]) -> Message:
        raw = message.get("data") or ""
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""
        return cls(
            message_id=str(message.get("messageId") or message.get("message_id") or ""),
            publish_time=str(message.get("publishTime") or message.get("publish_time") or ""),
            data=data,
            attributes=dict(message.get("attributes") or {}),
        )


@dataclass(frozen=True)
class Rejection:
    error: str  # not_json | not_utf8 | schema | too_large | undecodable
    detail: str


def _utc(value: datetime) -> str:
    # isoformat, not strftime: glibc's %Y writes year 1 as "1", which is no BigQuery timestamp (and isoformat
    # costs a third less, three times per event).
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def decode(message: Message, validator: EventValidator, max_bytes: int) -> dict[str, Any] | Rejection:
    if len(message.data) > max_bytes:
        return Rejection("too_large", f"{len(message.data)} bytes is over the {max_bytes}-byte limit")
    try:
        text = message.data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection("not_utf8", f"byte {exc.start}: {exc.reason}")
    try:
        event = loads(text)
    except json.JSONDecodeError as exc:
        return Rejection("not_json", f"line {exc.lineno} column {exc.colno}: {exc.msg}")
    except ValueError as exc:  # deeper than the contract allows, NaN, an integer of thousands of digits
        return Rejection("not_json" if str(exc).startswith("not valid JSON") else "schema", str(exc))
    problems = validator.problems(event)
    if problems:
        return Rejection("schema", "; ".join(problems))
    publish_time = parse_time(message.publish_time) if message.publish_time else datetime.now(UTC)
    return {
        "event_id": event.get("event_id") or message.message_id,
        "action_id": event["action_id"],
        "user_email": event["user_email"].lower(),
        "app_id": event["app_id"],
        "app_department": event["app_department"],
        "source": event.get("source"),
        "event_time": _utc(parse_time(event["event_time"])),
        # JSON columns take JSON text in the streaming API; the validator made sure it encodes (finite numbers,
        # no lone surrogates), so BigQuery gets exactly the values that were sent.
        "payload": json.dumps(event["payload"], separators=(",", ":"), ensure_ascii=False)
        if "payload" in event else None,
        "message_id": message.message_id,
        "publish_time": _utc(publish_time),
        "ingest_time": _utc(datetime.now(UTC)),
        "attributes": json.dumps(message.attributes, separators=(",", ":")) if message.attributes else None,
    }
