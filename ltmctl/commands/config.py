"""`ltmctl config`: show and validate the configuration."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

app = typer.Typer(help="Show and check the configuration.", no_args_is_help=True)

Output = Annotated[Literal["yaml", "json"], typer.Option("--output", "-o", help="Output format.")]


@app.command()
def show(ctx: typer.Context, output: Output = "yaml",
         origin: Annotated[bool, typer.Option("--origin", help="Instead of the values, where each is written: "
                                                             "the environment or the base it inherits it from, "
                                                             "with the line, or `default`.")] = False) -> None:
    """Print the resolved environment (pipeline settings included), merged with the bases it `extends`.

    Example: ltmctl --env dev config show --output json
    """
    from ltmctl import config, ui

    resolved = ctx.obj.load()
    ui.emit(config.value_origins(resolved) if origin else resolved.as_dict(), output)


@app.command()
def validate(ctx: typer.Context) -> None:
    """Check every environment in the config file, each merged with the bases it `extends`; exit 3 listing every
    problem, each with file, line and key.

    Example: ltmctl config validate
    """
    from ltmctl import config, ui

    path, checked = config.check(ctx.obj.config)
    names = list(checked.environments)
    listed = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    ui.err.print(f"[green]✓[/green] {path} is valid ({len(names)} environment(s): {listed}).")
