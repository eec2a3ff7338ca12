"""The data contract (config/contract/) and the one event validator, shared with `ltmctl publish`."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

MAX_EVENT_BYTES = 1024 * 1024


def contract_dir() -> Path:
    """LTM_CONTRACT_DIR, else the copy in this package (image), the checkout's config/, the wheel's copy."""
    here = Path(__file__).resolve().parent
    candidates = [os.environ.get("LTM_CONTRACT_DIR"), here / "contract", here.parent / "config" / "contract",
                  here.parent / "ltmctl" / "_config" / "contract"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "event.schema.json").is_file():
            return Path(candidate)
    raise FileNotFoundError("event.schema.json not found; set LTM_CONTRACT_DIR to the contract directory")


@cache
def event_schema() -> dict[str, Any]:
    return json.loads((contract_dir() / "event.schema.json").read_text(encoding="utf-8"))


@cache
def table_schema() -> tuple[dict[str, Any], ...]:
    return tuple(json.loads((contract_dir() / "events_table.json").read_text(encoding="utf-8")))


def parse_time(value: str) -> datetime:
    """An RFC 3339 timestamp (the schema's pattern already checked its shape) as an aware UTC datetime."""
    parsed = datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    return parsed.astimezone(UTC)


class EventValidator:
    """Checks one decoded event against event.schema.json; returns readable problems, [] when valid."""

    def __init__(self, schema: dict[str, Any] | None = None) -> None:
        import fastjsonschema
        from jsonschema import Draft202012Validator

        schema = schema or event_schema()
        self._validator = Draft202012Validator(schema)
        # fastjsonschema compiles the schema to Python: 25x faster on valid events, which are nearly all of
        # them; it stops at the first error, so an invalid event is checked again below for every problem.
        # The contract uses only keywords whose meaning draft-07 shares, hence the $schema swap.
        self._fast = fastjsonschema.compile({**schema, "$schema": "http://json-schema.org/draft-07/schema#"})
        self._fast_error = fastjsonschema.JsonSchemaException

    def problems(self, event: Any) -> list[str]:
        try:
            self._fast(event)
        except self._fast_error:
            pass
        else:
            return self._time_problems(event)
        out = []
        for error in sorted(self._validator.iter_errors(event), key=lambda e: list(map(str, e.path))):
            where = ".".join(str(p) for p in error.path)
            if error.validator == "required":
                out.append(f"{error.message.split(' ')[0].strip(chr(39))}: required field is missing")
            elif error.validator == "additionalProperties":
                out.append(f"(event): {error.message}")
            elif error.validator == "pattern":
                out.append(f"{where}: does not match the contract pattern {error.validator_value}")
            else:
                out.append(f"{where or '(event)'}: {_clip(error.message)}")
        return out or self._time_problems(event)

    @staticmethod
    def _time_problems(event: Any) -> list[str]:
        try:  # the pattern admits impossible dates such as month 13
            parse_time(event["event_time"])
        except ValueError as exc:
            return [f"event_time: not a valid timestamp ({exc})"]
        return []


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
