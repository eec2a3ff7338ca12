"""Terminal output: data to stdout, progress and errors to stderr."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from rich.console import Console
from rich.panel import Panel


def _width(stream) -> int | None:
    # Off a terminal (CI logs, pipes) rich assumes 80 columns and would break file:line paths in panels.
    return None if stream.isatty() or os.environ.get("COLUMNS") else 240


out = Console(soft_wrap=True)
err = Console(stderr=True, width=_width(sys.stderr))


def print_error(title: str, message: str, hint: str | None) -> None:
    from rich.markup import escape

    # Messages quote the outside world (build logs, API errors, paths): brackets there are text, not markup.
    body = escape(message) if not hint else f"{escape(message)}\n\n[bold]Hint:[/bold] {escape(hint)}"
    err.print(Panel(body, title=title, title_align="left", border_style="red", expand=False))


def emit(data: Any, output: str) -> None:
    """Write structured data to stdout as JSON or YAML (plain text, never wrapped or coloured)."""
    if output == "json":
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    else:
        import yaml

        sys.stdout.write(yaml.safe_dump(data, sort_keys=False))
    sys.stdout.flush()


def summary_table(data: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(show_header=False, box=None)
    for key, value in data.items():
        table.add_row(f"[bold]{key}[/bold]", "" if value is None else str(value))
    out.print(table)


class progress:  # noqa: N801 - used as a context manager, like rich's own
    """A progress bar on stderr with a rate column; yields advance(completed)."""

    def __init__(self, label: str, total: int | None, unit: str = "msg/s") -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.fields[rate]:>8.0f} " + unit), TimeElapsedColumn(),
                                  console=err, transient=False)
        self._task = self._progress.add_task(label, total=total, rate=0.0)

    def __enter__(self):
        import time

        self._progress.start()
        started = time.monotonic()

        def advance(completed: int) -> None:
            elapsed = time.monotonic() - started
            self._progress.update(self._task, completed=completed, rate=completed / elapsed if elapsed else 0.0)

        return advance

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()


def rows_table(rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(*rows[0].keys())
    for row in rows:
        table.add_row(*(json.dumps(v, default=str) if isinstance(v, dict | list) else str(v) for v in row.values()))
    out.print(table)


def confirm(yes: bool, action: str, question: str, hint: str = "Pass --yes.") -> None:
    """Ask on a terminal; without one, refuse unless --yes (a pipeline never hangs on a prompt)."""
    import typer

    from ltmctl.errors import UsageError

    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"Refusing to {action} without confirmation, and there is no terminal to ask on.", hint=hint)
    typer.confirm(question, abort=True, err=True)
