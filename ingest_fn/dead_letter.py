"""Publish an event that can never be stored to the dead-letter topic, with its reason as attributes."""

from __future__ import annotations

from typing import Any

from ingest_fn.decode import Message, Rejection

# Pub/Sub caps attribute values at 1024 bytes.
_MAX_ATTRIBUTE = 1024


def _clip(text: str) -> str:
    # backslashreplace: a detail may quote a lone surrogate, which Pub/Sub (UTF-8 attributes) would refuse.
    encoded = text.encode("utf-8", "backslashreplace")
    if len(encoded) <= _MAX_ATTRIBUTE:
        return encoded.decode("utf-8")
    return encoded[: _MAX_ATTRIBUTE - 3].decode("utf-8", "ignore") + "…"


class DeadLetter:
    def __init__(self, publisher: Any, topic_path: str, timeout_s: float = 30.0) -> None:
        self.publisher = publisher
        self.topic_path = topic_path
        self.timeout_s = timeout_s

    def send(self, message: Message, rejection: Rejection) -> str:
        """Publish and wait for the server's ack, so the caller acknowledges the original only afterwards."""
        attributes = {
            **message.attributes,
            "error": rejection.error,
            "error_detail": _clip(rejection.detail),
            "ltm_original_message_id": message.message_id,
            "ltm_original_publish_time": message.publish_time,
        }
        future = self.publisher.publish(self.topic_path, message.data, **attributes)
        return future.result(timeout=self.timeout_s)
