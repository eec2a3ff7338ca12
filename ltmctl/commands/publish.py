"""`ltmctl publish`: synthetic or given events to the pipeline's topic."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def _attributes(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r} is not key=value", param_hint="--attr")
        out[key] = value
    return out


def publish(
    ctx: typer.Context,
    count: Annotated[int | None, typer.Option("--count", "-n", min=1, help="Synthetic events to publish.")] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", allow_dash=True, metavar="FILE",
                                              help="JSON Lines file of events; - for stdin.")] = None,
    seed: Annotated[int | None, typer.Option(help="Make synthetic events reproducible.")] = None,
    source: Annotated[str | None, typer.Option(metavar="iot|app|web",
                                               help="Synthetic events from one source: iot, app or web.")] = None,
    rate: Annotated[float | None, typer.Option(min=0.1, help="At most this many messages per second.")] = None,
    attr: Annotated[list[str] | None, typer.Option("--attr", help="Message attribute k=v (repeatable).")] = None,
    ordering_key: Annotated[str, typer.Option(metavar="KEY", help="Ordering key for every message.")] = "",
    allow_invalid: Annotated[bool, typer.Option(
        help="Publish events that break the contract too (they go to the dead-letter topic).")] = False,
    output: Annotated[str, typer.Option("--output", "-o", metavar="table|json",
                                        help="Summary as table or json.")] = "table",
) -> None:
    """Publish events: synthetic ones (--count) or a JSON Lines file (--file), checked against the contract.

    Example: ltmctl publish --count 1000 --seed 7 --source iot --attr origin=demo
    """
    import sys

    from ltmctl import pipeline, publishing, ui

    if (count is None) == (file is None):
        raise typer.BadParameter("give exactly one of --count and --file", param_hint="--count/--file")
    if source is not None and source not in ("iot", "app", "web"):
        raise typer.BadParameter("must be iot, app or web", param_hint="--source")
    env = ctx.obj.environment()
    env.ready()  # no stack, no credentials: said before a progress bar is drawn, not under an empty one
    options = {"attributes": _attributes(attr or []), "ordering_key": ordering_key, "rate": rate,
               "allow_invalid": allow_invalid}
    # Bytes, read a bounded line at a time: a binary file or a huge line is a skipped line with its reason.
    stream = None if file is None else (sys.stdin.buffer if str(file) == "-" else _open(file))
    with ui.progress("Publishing", total=count) as advance:
        on_progress = lambda ok, failed: advance(ok + failed)  # noqa: E731
        if count is not None:  # several processes for large runs, see publishing.workers_for
            summary = publishing.publish_synthetic_to_env(env, count=count, seed=seed, source=source,
                                                          on_progress=on_progress, **options)
        else:
            items = publishing.from_lines(stream, pipeline.event_validator(env.resolved))
            summary = publishing.publish_to_env(env, items, on_progress=on_progress, **options)
    for position, problems in summary.invalid:
        ui.err.print(f"[yellow]skipped[/yellow] {'line' if file else 'event'} {position}: {problems}")
    for position, reason in summary.failed:
        ui.err.print(f"[red]failed[/red] {'line' if file else 'event'} {position}: {reason}")
    ui.emit(summary.as_dict(), output) if output == "json" else ui.summary_table(summary.as_dict())
    if summary.failed:
        raise typer.Exit(1)


def _open(path: Path):
    try:
        return path.open("rb")
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror}", param_hint="--file") from None
