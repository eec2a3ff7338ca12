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
    from rich.text import Text

    from ltmctl import ui

    # The short fields on one aligned line per message; why it was refused, its data and its original id on lines
    # of their own under it, wrapped to the terminal's width: a reason is never cut, whatever the width (#17).
    heads = ("message id", "published (UTC)", "error", "bytes")
    rows = [(letter.message_id, letter.publish_time[:19].replace("T", " "), letter.error or "",
             f"{len(letter.data):,}") for letter in letters]
    widths = [max(len(cell) for cell in column) for column in zip(heads, *rows, strict=True)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(c.rjust(w) if i == 3 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths,
                                                                                          strict=True)))

    if not letters:
        return  # the count on stderr says there are none
    ui.out.print(Text(line(heads), style="bold"), soft_wrap=False)
    for letter, row in zip(letters, rows, strict=True):
        ui.out.print(Text(line(row)), soft_wrap=False)
        for label, value in (("reason", letter.error_detail or "—"), ("data", letter.preview()),
                             ("original", letter.original_message_id or "—")):
            _hanging(f"  {label:<9}", value)


def _hanging(label: str, value: str) -> None:
    """`label value`, the value wrapped at the terminal's width and indented under itself; a word longer than a
    line is folded onto the next, never cut."""
    from rich.text import Text

    from ltmctl import ui

    room = max(ui.out.width - len(label), 20)
    lines = Text(value).wrap(ui.out, room, overflow="fold")
    for i, piece in enumerate(lines):
        piece.rstrip()
        ui.out.print(Text.assemble((label if i == 0 else " " * len(label), "dim"), piece), soft_wrap=False,
                     highlight=False)
