"""`ltmctl api`: call the pipeline's HTTP API."""

from __future__ import annotations

import getpass
import os
from typing import Annotated

import typer

app = typer.Typer(help="Call the API service with an Identity-Aware Proxy assertion.", no_args_is_help=True)


def _default_email() -> str:
    return os.environ.get("LTM_USER_EMAIL") or f"{getpass.getuser()}@ltm.local"


Email = Annotated[str | None, typer.Option(help="Identity to call as, local stack only (default: "
                                                "$LTM_USER_EMAIL, else <user>@ltm.local).")]
Output = Annotated[str, typer.Option("--output", "-o", help="json or table.")]


def _show(answer, output: str) -> None:
    from ltmctl import ui

    if not answer.ok:
        ui.err.print(f"[red]HTTP {answer.status}[/red] from {answer.url}")
        ui.emit(answer.body, "json")
        raise typer.Exit(1)
    if output == "table" and isinstance(answer.body, dict):
        rows = answer.body.get("top_actions") or [
            {k: e[k] for k in ("event_time", "event_id", "app_id", "app_department", "source", "payload")}
            for e in answer.body.get("events", [])]
        ui.summary_table({k: v for k, v in answer.body.items() if not isinstance(v, list)})
        if rows:
            ui.rows_table(rows)
    else:
        ui.emit(answer.body, "json")


@app.command("get-data")
def get_data(
    ctx: typer.Context, action_id: str, user_email: str, email: Email = None, output: Output = "json",
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    days: Annotated[int, typer.Option(min=1, max=365)] = 30,
) -> None:
    """GET /get_data/ACTION_ID:USER_EMAIL: the user's events for an action, newest first.

    Example: ltmctl api get-data login ana.perez@example.com --limit 5 -o table
    """
    from ltmctl import api_calls

    answer = api_calls.call(ctx.obj.environment(), api_calls.get_data_path(action_id, user_email),
                            {"limit": limit, "days": days}, email=email or _default_email())
    _show(answer, output)


@app.command("app-info")
def app_info(
    ctx: typer.Context, app_id: str, department: str, email: Email = None, output: Output = "json",
    days: Annotated[int, typer.Option(min=1, max=365)] = 30,
) -> None:
    """GET /app_info/APP_ID:DEPARTMENT: events, users, actions and top actions of an app.

    Example: ltmctl api app-info crm sales -o table
    """
    from ltmctl import api_calls

    answer = api_calls.call(ctx.obj.environment(), api_calls.app_info_path(app_id, department), {"days": days},
                            email=email or _default_email())
    _show(answer, output)


@app.command()
def token(
    ctx: typer.Context,
    email: Annotated[str | None, typer.Option(help="Identity in a local assertion (default: $LTM_USER_EMAIL, "
                                                   "else <user>@ltm.local).")] = None,
    ttl: Annotated[int, typer.Option("--ttl", min=1, max=86400, help="Seconds until it expires (in GCP at most "
                                                                     "3600).")] = 3600,
) -> None:
    """Print a credential for the API: a minted IAP assertion locally (send it as x-goog-iap-jwt-assertion); in GCP
    what IAP accepts from a program (send it as Authorization: Bearer): a service account's signed JWT, or your
    ID token for an OAuth client in iap.programmatic_clients.

    Example: curl -H "Authorization: Bearer $(ltmctl --env dev api token)" "$LTM_API_URL/get_data/login:ana@example.com"
    """
    headers = ctx.obj.environment().auth_headers(email or _default_email(), ttl)
    value = next(iter(headers.values()))
    typer.echo(value.removeprefix("Bearer "))
