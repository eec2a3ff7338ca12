"""`ltmctl api`: call the pipeline's HTTP API."""

from __future__ import annotations

import getpass
import os
from typing import Annotated

import typer

app = typer.Typer(help="Call the API service with an Identity-Aware Proxy assertion.", no_args_is_help=True)


def _default_email() -> str:
    return os.environ.get("LTM_USER_EMAIL") or f"{getpass.getuser()}@ltm.local"


@app.command()
def token(
    ctx: typer.Context,
    email: Annotated[str | None, typer.Option(help="Identity in the assertion (default: $LTM_USER_EMAIL, "
                                                   "else <user>@ltm.local).")] = None,
    ttl: Annotated[int, typer.Option("--ttl", min=1, max=86400, help="Seconds until it expires.")] = 3600,
) -> None:
    """Print a freshly minted IAP assertion for the local stack's API.

    Example: curl -H "x-goog-iap-jwt-assertion: $(ltmctl api token)" "$LTM_API_URL/get_data/login:ana@example.com"
    """
    from ltmctl.errors import UsageError
    from ltmctl.local import stack

    resolved = ctx.obj.load()
    if resolved.env.backend != "local":
        raise UsageError(f"`api token` mints assertions for the local stack only; {resolved.name!r} is a "
                         f"{resolved.env.backend} environment, where Identity-Aware Proxy signs them.",
                         hint="Use --env local, or call the deployed API through IAP with your own credentials.")
    typer.echo(stack.mint_token(resolved, email or _default_email(), ttl))
