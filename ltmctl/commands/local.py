"""`ltmctl local`: the whole pipeline on loopback emulators, no cloud account needed."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

app = typer.Typer(help="Run the pipeline on this machine: Pub/Sub emulator, bqemulator, ingest function.",
                  no_args_is_help=True)


@app.command()
def up(
    ctx: typer.Context,
    port_base: Annotated[int | None, typer.Option(
        "--port-base", help="Use ports N, N+1, ... instead of the configured ones; 0 picks free ports.")] = None,
) -> None:
    """Start the local stack, apply infra to it, and return; the processes keep running.

    Example: ltmctl local up && eval "$(ltmctl local env)"
    """
    from ltmctl import ui
    from ltmctl.local import stack

    resolved = _local(ctx)
    started_at = time.monotonic()
    with ui.err.status("Starting the local stack…") as spinner:
        def report(piece: str, what: str) -> None:
            if piece == "warning":
                ui.err.print(f"  [bold yellow]![/bold yellow] {what}")
            else:
                ui.err.print(f"  [green]✓[/green] {piece}: {what}" if "healthy" in what or piece == "infra"
                             else f"  • {piece}: {what}")
            spinner.update(f"Starting the local stack… ({piece}: {what})")

        state, started = stack.up(resolved, port_base, report)
    if started:
        ui.err.print(f"[bold green]Local stack is up[/bold green] in {time.monotonic() - started_at:.1f}s; "
                     f"state in {stack.state_file(resolved)}")
    else:
        ui.err.print("[bold]Local stack is already running.[/bold]")
    ui.err.print('Use it from a shell with: eval "$(ltmctl local env)"')


@app.command()
def down(
    ctx: typer.Context,
    force: Annotated[bool, typer.Option(
        "--force", help="Stop even if the Pub/Sub emulator still holds undelivered messages (they are lost).")
    ] = False,
    drain_timeout: Annotated[float, typer.Option(
        "--drain-timeout", min=0, help="Wait at most this many seconds for undelivered messages to be stored.")
    ] = 120.0,
) -> None:
    """Stop exactly the processes `local up` started (also after a crash left a stale state file).

    The Pub/Sub emulator keeps messages in memory only: while it holds undelivered ones, `down` waits for them to
    be stored, and refuses (exit 4, saying how many) if some remain, unless --force.

    Example: ltmctl local down
    """
    from ltmctl import ui
    from ltmctl.local import stack

    def report(piece: str, what: str) -> None:
        ui.err.print(f"  [bold yellow]![/bold yellow] {what}" if piece == "warning" else f"  • {piece}: {what}")

    result = stack.down(_local(ctx), report, force=force, drain_s=drain_timeout)
    if result.lost:
        ui.err.print(f"[bold yellow]Lost {'at least ' if result.lost_more else ''}{result.lost:,} undelivered "
                     "message(s)[/bold yellow] with the Pub/Sub emulator (--force).")
    if result.dead_letters:
        ui.err.print(f"[yellow]{result.dead_letters:,} dead letter(s) went with the Pub/Sub emulator.[/yellow]")
    ui.err.print("[bold]Local stack is down.[/bold]" if result.stopped else "No local stack was running.")


@app.command()
def status(
    ctx: typer.Context,
    output: Annotated[str, typer.Option("--output", "-o", help="table or json.")] = "table",
) -> None:
    """Show each piece of the local stack: pid, port, healthy or not; the delivery's requests in flight and the
    ingest subscription's backlog. Exit 4 if any piece is unhealthy.

    Example: ltmctl local status --output json
    """
    from ltmctl import ui
    from ltmctl.local import stack

    resolved = _local(ctx)
    rows = stack.status(resolved)
    if output == "json":
        ui.emit(rows, "json")
    else:
        from rich.table import Table

        table = Table("piece", "pid", "port", "healthy", "activity", "url", "log")
        for row in rows:
            mark = "[green]healthy[/green]" if row["healthy"] else (
                "[yellow]unhealthy[/yellow]" if row["running"] else "[red]stopped[/red]")
            table.add_row(row["piece"], str(row["pid"]), str(row["port"]), mark, stack.activity(row), row["url"],
                          row["log"])
        ui.out.print(table)
    problem = stack.status_problem(resolved, rows)
    if problem is not None:
        raise problem  # names what is down and what to do; exit 4


@app.command()
def env(ctx: typer.Context) -> None:
    """Print shell lines that point any client at the local stack: the Python clients, gcloud, bq, curl.

    Writes the token file and bigqueryrc those lines name to .ltm/local/clients/ (0600); `local down` removes them.

    Example: eval "$(ltmctl local env)"
    """
    from ltmctl.local import stack

    typer.echo("\n".join(stack.env_lines(_local(ctx))))


def _local(ctx: typer.Context) -> Any:
    """The selected environment's config; a usage error unless it is a local one."""
    env = ctx.obj.environment()
    env.require("local", "local")
    return env.resolved
