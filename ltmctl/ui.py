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
    body = message if not hint else f"{message}\n\n[bold]Hint:[/bold] {hint}"
    err.print(Panel(body, title=title, title_align="left", border_style="red", expand=False))


def emit(data: Any, output: str) -> None:
    """Write structured data to stdout as JSON or YAML (plain text, never wrapped or coloured)."""
    if output == "json":
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    else:
        import yaml

        sys.stdout.write(yaml.safe_dump(data, sort_keys=False))
    sys.stdout.flush()
