"""`ltmctl config`: show and validate the configuration."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

app = typer.Typer(help="Show and check the configuration.", no_args_is_help=True)

Output = Annotated[Literal["yaml", "json"], typer.Option("--output", "-o", help="Output format.")]


@app.command()
def show(ctx: typer.Context, output: Output = "yaml") -> None:
    """Print the resolved environment (pipeline settings included).

    Example: ltmctl --env dev config show --output json
    """
    from ltmctl import ui

    ui.emit(ctx.obj.load().as_dict(), output)


@app.command()
def validate(ctx: typer.Context) -> None:
    """Check every environment in the config file; exit 3 naming file, line and key on the first problem.

    Example: ltmctl config validate
    """
    from ltmctl import ui

    resolved = ctx.obj.load()
    ui.err.print(f"[green]✓[/green] {resolved.path} is valid (environment [bold]{resolved.name}[/bold]).")
