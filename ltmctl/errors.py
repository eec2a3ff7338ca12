"""The one error type of ltmctl: a message, a hint that says how to fix it, and an exit code."""

from __future__ import annotations


class LtmctlError(Exception):
    """A failure the user can act on. The CLI renders it as one panel and exits with `exit_code`."""

    exit_code = 1
    title = "Error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(LtmctlError):
    exit_code = 2
    title = "Usage error"


class ConfigError(LtmctlError):
    exit_code = 3
    title = "Configuration error"


class BackendError(LtmctlError):
    """A cloud service or emulator failed or is missing."""

    exit_code = 4
    title = "Backend error"


class StackNotRunning(BackendError):
    def __init__(self, root: str) -> None:
        super().__init__(
            f"No local stack is running for {root}.",
            hint="Start it with `ltmctl local up`.",
        )
