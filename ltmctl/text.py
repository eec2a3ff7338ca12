"""Text cut to fit: one rule for every place the CLI shortens what it shows."""

from __future__ import annotations

ELLIPSIS = "…"


def cut(text: str, limit: int) -> str:
    """`text` whole if it has at most `limit` characters, else its first `limit - 1` and an ellipsis, so a reader
    always sees that something was left out."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS
