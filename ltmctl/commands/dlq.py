"""`ltmctl dlq`: the messages the pipeline could not store, kept in the dead-letter subscription."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

app = typer.Typer(help="Inspect, re-publish and purge dead-lettered messages.", no_args_is_help=True)


@app.command("list")
def list_(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, help="Show at most N messages.")] = 100,
    output: Annotated[Literal["table", "json"], typer.Option("--output", "-o", help="Format on stdout.")] = "table",
) -> None:
    """Show dead-lettered messages with their error and detail; they stay in the subscription.

    Example: ltmctl dlq list --limit 20 --output json
    """
    from ltmctl import dead_letters, ui

    env = ctx.obj.environment()
    resolved = env.resolved
    note = dead_letters.lease_note(resolved)
    c = env.clients()
    try:
        letters = dead_letters.peek(c, resolved.pipeline.dead_letter_subscription, limit=limit, lease_note=note)
        held = dead_letters.held_until(note, c, resolved.pipeline.dead_letter_subscription)
    finally:
        c.close()
    if output == "json":
        ui.emit([letter.as_dict() for letter in letters], "json")
    else:
        _table(letters)
    more = " (the limit; there may be more)" if len(letters) == limit else ""
    ui.err.print(f"{len(letters)} dead letter(s){more} in {resolved.pipeline.dead_letter_subscription}, "
                 f"left in place.")
    _held_warning(held)


@app.command()
def replay(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, help="Re-publish at most N messages.")] = 1000,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Re-publish dead letters to the main topic (original data and attributes, plus ltm_replayed_from),
    removing each from the dead-letter subscription only after its publish succeeded.

    Example: ltmctl dlq replay --limit 100 --yes
    """
    from rich.markup import escape

    from ltmctl import dead_letters, ui

    env = ctx.obj.environment()
    resolved = env.resolved
    p = resolved.pipeline
    note = dead_letters.lease_note(resolved)
    c = env.clients()
    try:
        ui.confirm(yes, "replay", f"Re-publish up to {limit} dead letters from {p.dead_letter_subscription} "
                                f"to {p.topic}?")
        report = dead_letters.replay(c, p.dead_letter_subscription, p.topic, limit=limit, lease_note=note)
        held = dead_letters.held_until(note, c, p.dead_letter_subscription)
    finally:
        c.close()
    for message_id, reason in report.failed:
        ui.err.print(f"[red]✗[/red] {message_id}: {escape(reason)} (kept in {p.dead_letter_subscription})")
    ui.err.print(f"Replayed {len(report.replayed)} dead letter(s) to {p.topic}; {len(report.failed)} failed.")
    _held_warning(held)
    if report.failed:
        raise typer.Exit(1)


@app.command()
def purge(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Required: purging cannot be undone.")] = False,
) -> None:
    """Delete every dead letter published until now (seeks the dead-letter subscription to the current time).

    Example: ltmctl dlq purge --yes
    """
    from ltmctl import dead_letters, ui
    from ltmctl.errors import UsageError

    env = ctx.obj.environment()
    resolved = env.resolved
    sub = resolved.pipeline.dead_letter_subscription
    if not yes:
        raise UsageError(f"Purging deletes every message in {sub} for good.",
                         hint="Look first with `ltmctl dlq list`; then run `ltmctl dlq purge --yes`.")
    c = env.clients()
    try:
        cutoff = dead_letters.purge(c, sub)
    finally:
        c.close()
    ui.err.print(f"Purged {sub}: every dead letter published before {cutoff:%Y-%m-%d %H:%M:%S} UTC is gone.")


def _held_warning(held) -> None:
    from ltmctl import ui

    if held is not None:
        ui.err.print("[yellow]Some dead letters may not be counted: an earlier run took some and could not "
                     f"release them; they stay held (invisible) until {held.astimezone():%H:%M:%S}. "
                     "Run this again after that.[/yellow]")


def _table(letters: list) -> None:
    from rich.table import Table
    from rich.text import Text

    from ltmctl import ui

    # One line per message: long details and payloads are cut with an ellipsis (--output json has them whole).
    table = Table(expand=True)
    for name, options in (("message id", {}), ("published", {}), ("error", {}), ("detail", {"ratio": 3}),
                          ("original id", {}), ("bytes", {"justify": "right"}), ("data", {"ratio": 2})):
        table.add_column(name, no_wrap=True, overflow="ellipsis", **options)
    for letter in letters:
        table.add_row(*(Text(str(v or "")) for v in (
            letter.message_id, letter.publish_time[:19].replace("T", " "), letter.error, letter.error_detail,
            letter.original_message_id, len(letter.data), letter.preview())))
    ui.out.print(table)
