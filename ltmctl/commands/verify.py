"""`ltmctl verify`: the pipeline's integration checks against a running environment."""

from __future__ import annotations

from typing import Annotated

import typer


def verify(
    ctx: typer.Context,
    timeout: Annotated[float, typer.Option("--timeout", min=5, max=3600,
                                           help="Seconds the checks may wait for the pipeline in all.")] = 120,
    metrics_wait: Annotated[float | None, typer.Option(
        "--metrics-wait", min=0, max=1800,
        help="Seconds to wait for the API's requests to show in metrics (default: 10 locally, 300 on gcp, where "
             "Cloud Monitoring lags).")] = None,
    service_account: Annotated[str | None, typer.Option(
        "--service-account", help="GCP: the account that signs its own JWT for IAP (default: iap.service_account, "
                                  "else the account of Application Default Credentials).")] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="text or json.")] = "text",
) -> None:
    """Check a running environment end to end: API ready, an event stored once as sent and served through IAP,
    unauthenticated calls refused, duplicates counted once, invalid events dead-lettered, requests in metrics.
    Exit 0 only if every check passes, 4 otherwise. Its events use the reserved app id `ltm-verify`.
    Several environments (--env 'prod-*' or dev,prod): run side by side, one row each (checks passed, first
    failure), worst first; exit 0 when all pass, 1 when any check fails, 4 when any environment could not be run.

    Example: ltmctl --env dev verify --timeout 300
    """
    from ltmctl import ui
    from ltmctl.errors import UsageError
    from ltmctl.verify import core

    if output not in ("text", "json"):
        raise UsageError(f"--output must be text or json, not {output!r}.")
    fleet = ctx.obj.load_many()
    if len(fleet) > 1:
        from ltmctl.fleet import view

        raise typer.Exit(view.verify(fleet, timeout_s=timeout, metrics_wait_s=metrics_wait,
                                     service_account=service_account, output=output, debug=ctx.obj.debug))
    from ltmctl.environments import open_environment

    env = open_environment(fleet[0])
    resolved = env.resolved
    wait = metrics_wait if metrics_wait is not None else env.metrics_wait_s

    def show(r: core.Result) -> None:
        mark = "[green]✓[/green]" if r.ok else "[red]✗[/red]"
        ui.err.print(f"{mark} {r.name} ({r.seconds:.1f}s)")
        if output == "text":
            ui.out.print(f"{'✓' if r.ok else '✗'} {r.name}: {r.saw} ({r.seconds:.1f}s)", markup=False,
                         highlight=False)
            if r.hint:
                ui.out.print(f"    look at: {r.hint}", markup=False, highlight=False)

    with env.probe(service_account) as probe:
        results = core.run(probe, timeout_s=timeout, metrics_wait_s=wait, on_result=show)
    if output == "json":
        ui.emit({"environment": resolved.name, "ok": all(r.ok for r in results),
                 "checks": [r.as_dict() for r in results]}, "json")
    failed = [r for r in results if not r.ok]
    if failed:
        ui.err.print(f"[red]{len(failed)} of {len(results)} checks failed[/red] in {resolved.name}.")
        raise typer.Exit(4)
    ui.err.print(f"[green]All {len(results)} checks passed[/green] in {resolved.name}.")
