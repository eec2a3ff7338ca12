"""Text cut to fit (logs, error answers): cut text always ends with an ellipsis, so it never passes for whole."""

from __future__ import annotations


def cut(text: str, limit: int) -> str:
    """`text` whole if it has at most `limit` characters, else its first `limit - 1` and "…"."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
