"""The data contract (config/contract/) and the one event validator, shared with `ltmctl publish`."""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any


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
    """An RFC 3339 timestamp (the schema's pattern already checked its shape) as an aware UTC datetime.

    Raises ValueError for an impossible date and OverflowError when the offset moves it out of year 1-9999."""
    # fromisoformat takes any character between date and time (a lower-case t too), but only an upper-case Z.
    parsed = datetime.fromisoformat(value.replace("z", "Z"))
    return parsed.astimezone(UTC)


@dataclass(frozen=True)
class Limits:
    """The contract's limits that JSON Schema cannot state, from the schema's x-ltm-limits (stated once there)."""

    max_event_bytes: int
    max_payload_depth: int
    min_event_time: datetime
    max_event_time: datetime
    min_integer: int
    max_integer: int

    @classmethod
    def from_schema(cls, schema: dict[str, Any]) -> Limits:
        stated = schema["x-ltm-limits"]
        return cls(int(stated["max_event_bytes"]), int(stated["max_payload_depth"]),
                   parse_time(stated["min_event_time"]), parse_time(stated["max_event_time"]),
                   int(stated["min_integer"]), int(stated["max_integer"]))


def limits() -> Limits:
    return Limits.from_schema(event_schema())


MAX_EVENT_BYTES = limits().max_event_bytes


def python_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with its patterns in Python's dialect. JSON Schema patterns are ECMA-262, where `$` matches only
    at the end of the string; Python's `$` also matches before a final newline, which let "login\\n" through the
    contract while the API (pydantic's Rust regex, ECMA-like) refused it. `\\Z` is Python's end of string."""

    def convert(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: (re.sub(r"(?<!\\)\$$", r"\\Z", v) if k == "pattern" and isinstance(v, str) else convert(v))
                    for k, v in node.items()}
        if isinstance(node, list):
            return [convert(v) for v in node]
        return node

    return convert(schema)


class _NotJson(ValueError):
    """A literal Python's json accepts but JSON does not (NaN, Infinity)."""


def _refuse_constant(name: str) -> Any:
    raise _NotJson(f"not valid JSON: {name} is not a JSON number")


def loads(text: str) -> Any:
    """json.loads for untrusted events: NaN/Infinity refused, and every failure a ValueError naming the problem
    (json's own RecursionError for deep nesting, and the int-digits limit, included)."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError(f"nested deeper than {limits().max_payload_depth} levels") from None


class EventValidator:
    """Checks one decoded event against event.schema.json and its x-ltm-limits; returns readable problems, [] when
    valid."""

    def __init__(self, schema: dict[str, Any] | None = None) -> None:
        import fastjsonschema
        from jsonschema import Draft202012Validator

        schema = python_schema(schema or event_schema())
        self.limits = Limits.from_schema(schema)
        self._validator = Draft202012Validator(schema)
        # fastjsonschema compiles the schema to Python: 25x faster on valid events, which are nearly all of
        # them; it stops at the first error, so an invalid event is checked again below for every problem.
        # It has no 2020-12 draft and compiles the contract as its newest, 2019-09, which gives every keyword the
        # contract uses the same meaning (tests/test_contract_limits.py compares the two on variants of an event).
        self._fast = fastjsonschema.compile(schema)
        self._fast_error = fastjsonschema.JsonSchemaException

    def size_problem(self, size: int) -> str | None:
        if size > self.limits.max_event_bytes:
            return f"(event): {size} bytes is over the {self.limits.max_event_bytes}-byte limit"
        return None

    def problems(self, event: Any) -> list[str]:
        # The limits first: jsonschema's messages repr the instance, which a deep payload makes raise.
        if isinstance(event, dict) and "payload" in event:
            value_problem = _value_problem(event["payload"], self.limits)
            if value_problem:
                return [value_problem]
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
            elif error.validator == "pattern":
                pattern = re.sub(r"\\Z$", "$", str(error.validator_value))  # as the contract states it
                out.append(f"{where}: does not match the contract pattern {pattern}")
            else:
                out.append(f"{where or '(event)'}: {_clip(error.message)}")
        return out or self._time_problems(event)

    def _time_problems(self, event: Any) -> list[str]:
        try:  # the pattern admits impossible dates such as month 13
            moment = parse_time(event["event_time"])
        except ValueError as exc:
            return [f"event_time: not a valid timestamp ({exc})"]
        except OverflowError:
            moment = None  # an offset that moves it past year 1 or 9999 in UTC
        if moment is None or not self.limits.min_event_time <= moment <= self.limits.max_event_time:
            return [f"event_time: outside the range BigQuery stores ({_iso(self.limits.min_event_time)} to "
                    f"{_iso(self.limits.max_event_time)} in UTC)"]
        return []


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _value_problem(payload: Any, limits: Limits) -> str | None:
    """The first value in payload that breaks a limit, or None. Iterative, so no depth can make it raise."""
    stack: list[tuple[Any, int, tuple[Any, ...]]] = [(payload, 1, ())]
    while stack:
        value, depth, path = stack.pop()
        if isinstance(value, dict | list):
            if depth > limits.max_payload_depth:
                return f"payload: nested deeper than {limits.max_payload_depth} levels"
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str) and not _unicode(key):
                    return f"{_where(path)}: a key is not valid Unicode (lone surrogate)"
                if isinstance(item, dict | list) or not isinstance(item, bool | type(None)):
                    stack.append((item, depth + 1, (*path, key)))
        elif isinstance(value, str):
            if not _unicode(value):
                return f"{_where(path)}: a string is not valid Unicode (lone surrogate)"
        elif isinstance(value, int):
            if not limits.min_integer <= value <= limits.max_integer:
                return f"{_where(path)}: integer outside the 64-bit range BigQuery stores exactly"
        elif isinstance(value, float) and not math.isfinite(value):
            return f"{_where(path)}: numbers must be finite"
    return None


def _unicode(text: str) -> bool:
    """False for a string holding a lone surrogate (JSON's "\\ud800"), which no UTF-8 encoder, nor BigQuery, takes."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _where(path: tuple[Any, ...]) -> str:
    return _clip(".".join(["payload", *map(str, path)]), 120)


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
