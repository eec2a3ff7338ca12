"""`ltmctl demo`: the whole pipeline, end to end, on this machine."""

from __future__ import annotations

import time
import uuid
from typing import Annotated

import typer


def demo(
    ctx: typer.Context,
    keep: Annotated[bool, typer.Option(help="Leave the local stack running afterwards.")] = False,
    count: Annotated[int, typer.Option(help="Valid synthetic events to publish.", min=1, max=1_000_000)] = 10_000,
) -> None:
    """Start the local stack, publish events, read them back through the API, show dead letters and metrics.

    Example: ltmctl demo --keep
    """
    from ltmctl import demo as core
    from ltmctl import ui
    from ltmctl.errors import LtmctlError

    env = ctx.obj.environment()
    env.require("local", "demo")
    started = time.monotonic()
    with ui.progress("  rows stored", total=None, unit="rows/s") as advance:
        run = core.Context(env, uuid.uuid4().hex[:12], on_progress=lambda done, total: advance(done),
                           count=count)
        for title, step in core.steps(run, keep):
            ui.err.print(f"[bold]•[/bold] {title}…")
            try:
                detail = step()
            except LtmctlError as exc:
                ui.err.print(f"[red]✗ {title}[/red]")
                if run.started_stack and not keep:
                    core._down(run)
                raise exc
            ui.err.print(f"[green]✓[/green] {title}")
            for line in detail.splitlines():
                ui.out.print(f"    {line}", highlight=False, markup=False)
    ui.err.print(f"[bold green]Demo finished[/bold green] in {time.monotonic() - started:.0f}s.")
