"""How the deploy core reports what it does, without knowing about terminals: the command passes an object with
these methods (rich spinners and lines there), tests and dry runs pass `Quiet` or a recorder."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Protocol


class Progress(Protocol):
    def step(self, message: str) -> None:
        """A step has been taken (or skipped): one line."""

    def log(self, component: str, line: str) -> None:
        """One line of a build log, as it arrives."""

    def waiting(self, message: str) -> contextlib.AbstractContextManager[None]:
        """Around a blocking wait (an operation, a build): a spinner, for instance."""


class Quiet:
    def step(self, message: str) -> None:
        return None

    def log(self, component: str, line: str) -> None:
        return None

    @contextlib.contextmanager
    def waiting(self, message: str) -> Iterator[None]:
        yield


class Recorder(Quiet):
    """Keeps every step and log line: for tests, and for a summary after the fact."""

    def __init__(self) -> None:
        self.steps: list[str] = []
        self.lines: list[tuple[str, str]] = []

    def step(self, message: str) -> None:
        self.steps.append(message)

    def log(self, component: str, line: str) -> None:
        self.lines.append((component, line))
