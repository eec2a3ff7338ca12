"""Serialising get_data answers: bounded in bytes, and never failing on what is stored."""

from __future__ import annotations

import json
from typing import Any

from api_service.models import Event
from api_service.text import cut


def event_json(row: dict[str, Any]) -> bytes | None:
    """One stored row as the event JSON of an answer. A row whose payload cannot be validated or serialised (deeper
    than pydantic goes, a non-object) is served with payload and attributes null and a payload_error, so no stored
    event can turn a key's answers into 500s; None only when even that fails (a row missing its ids)."""
    try:
        return Event.model_validate(row).model_dump_json().encode()
    except Exception as exc:  # noqa: BLE001 - ValidationError, PydanticSerializationError, RecursionError alike
        reason = cut(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", 200)
    try:
        return Event.model_validate({**row, "payload": None, "attributes": None,
                                     "payload_error": f"the stored payload cannot be served ({reason})"}
                                    ).model_dump_json().encode()
    except Exception:  # noqa: BLE001
        return None


def get_data_body(action_id: str, user_email: str, count: int, rows: list[dict[str, Any]], limit: int,
                  max_bytes: int) -> bytes:
    """The GetDataResponse JSON: the newest events that fit in max_bytes, `truncated` when some did not."""
    head = json.dumps({"action_id": action_id, "user_email": user_email, "count": count},
                      separators=(",", ":")).encode()[:-1]
    budget = max_bytes - len(head) - len(b',"truncated":false,"events":[]}')
    parts: list[bytes] = []
    for row in rows:
        data = event_json(row)
        if data is None:
            continue
        budget -= len(data) + (1 if parts else 0)
        if budget < 0:
            break
        parts.append(data)
    truncated = len(parts) < min(limit, count)
    return b"".join([head, b',"truncated":', b"true" if truncated else b"false", b',"events":[',
                     b",".join(parts), b"]}"])
