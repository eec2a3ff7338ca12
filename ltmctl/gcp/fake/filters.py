"""The filter language of Cloud Logging and Cloud Monitoring, the subset the fake understands: comparisons
(`=`, `!=`, `>=`, `<=`, `>`, `<`, `:`) of a dotted field with a quoted or bare value, or with a parenthesized
`OR` list of values; `AND` (also implied by juxtaposition, as in Logging), `OR`, `NOT` and parentheses.

Anything else is refused with 400 INVALID_ARGUMENT, as Google refuses a malformed filter, so a client that sends
something the fake cannot judge fails loudly instead of matching everything.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ltmctl.gcp.fake.server import invalid

_TOKEN = re.compile(r'\s*(?:(?P<open>\()|(?P<close>\))|(?P<quoted>"(?:[^"\\]|\\.)*")|(?P<op>>=|<=|!=|=|>|<|:)'
                    r'|(?P<word>[^\s()"=<>!:]+))')

Getter = Callable[[str], Any]  # field path -> the record's value (None: absent)
Convert = Callable[[str, str], Any]  # (field, literal) -> a value comparable with what Getter returns


@dataclass
class _Cmp:
    field: str
    op: str
    values: list[str]

    def __call__(self, get: Getter, convert: Convert) -> bool:
        actual = get(self.field)
        results = [self._one(actual, convert(self.field, v)) for v in self.values]
        return any(results) if self.op != "!=" else all(results)

    def _one(self, actual: Any, literal: Any) -> bool:
        if self.op == "!=":
            return actual != literal
        if actual is None:
            return False
        if self.op == "=":
            return actual == literal
        if self.op == ":":
            return str(literal).lower() in str(actual).lower()
        try:
            return {">=": actual >= literal, "<=": actual <= literal, ">": actual > literal,
                    "<": actual < literal}[self.op]
        except TypeError:
            return False


@dataclass
class _Bool:
    op: str  # AND | OR | NOT
    parts: list[Any]

    def __call__(self, get: Getter, convert: Convert) -> bool:
        if self.op == "NOT":
            return not self.parts[0](get, convert)
        results = (p(get, convert) for p in self.parts)
        return all(results) if self.op == "AND" else any(results)


class Filter:
    def __init__(self, text: str) -> None:
        self.text = text
        self._tokens = self._lex(text)
        self._pos = 0
        self._root = _Bool("AND", []) if not self._tokens else self._or()
        if self._pos != len(self._tokens):
            raise invalid(f"Invalid filter: unexpected {self._tokens[self._pos][1]!r} in {text!r}.")

    def matches(self, get: Getter, convert: Convert = lambda field, literal: literal) -> bool:
        return self._root(get, convert)

    def fields(self) -> dict[str, list[str]]:
        """Every `field = value` comparison (field -> values): what a test or a handler may read back."""
        out: dict[str, list[str]] = {}

        def walk(node: Any) -> None:
            if isinstance(node, _Cmp):
                out.setdefault(node.field, []).extend(node.values)
            else:
                for part in node.parts:
                    walk(part)

        walk(self._root)
        return out

    # --- parsing ---------------------------------------------------------------------------------------------

    @staticmethod
    def _lex(text: str) -> list[tuple[str, str]]:
        tokens, pos = [], 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise invalid(f"Invalid filter at position {pos}: {text!r}.")
            kind = m.lastgroup or ""
            value = m.group(kind)
            if kind == "quoted":
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            elif kind == "word" and value in ("AND", "OR", "NOT"):
                kind = value
            tokens.append((kind, value))
            pos = m.end()
        return tokens

    def _peek(self) -> str | None:
        return self._tokens[self._pos][0] if self._pos < len(self._tokens) else None

    def _take(self, kind: str) -> str:
        if self._peek() != kind:
            found = self._tokens[self._pos][1] if self._pos < len(self._tokens) else "end of filter"
            raise invalid(f"Invalid filter: expected {kind}, found {found!r} in {self.text!r}.")
        self._pos += 1
        return self._tokens[self._pos - 1][1]

    def _or(self) -> Any:
        parts = [self._and()]
        while self._peek() == "OR":
            self._pos += 1
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else _Bool("OR", parts)

    def _and(self) -> Any:
        parts = [self._unary()]
        while self._peek() in ("AND", "NOT", "open", "word"):
            if self._peek() == "AND":
                self._pos += 1
            parts.append(self._unary())
        return parts[0] if len(parts) == 1 else _Bool("AND", parts)

    def _unary(self) -> Any:
        kind = self._peek()
        if kind == "NOT":
            self._pos += 1
            return _Bool("NOT", [self._unary()])
        if kind == "open":
            self._pos += 1
            node = self._or()
            self._take("close")
            return node
        field = self._take("word")
        op = self._take("op")
        if self._peek() == "open":
            self._pos += 1
            values = [self._value()]
            while self._peek() == "OR":
                self._pos += 1
                values.append(self._value())
            self._take("close")
        else:
            values = [self._value()]
        return _Cmp(field, op, values)

    def _value(self) -> str:
        if self._peek() in ("quoted", "word"):
            self._pos += 1
            return self._tokens[self._pos - 1][1]
        return self._take("quoted")
