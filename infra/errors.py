"""infra's own error, translated into a user-facing one by whoever calls infra."""


class InfraError(Exception):
    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
