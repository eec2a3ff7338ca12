"""Run work for many environments side by side, on a bounded pool; a failure becomes its environment's row.

A unit of work covers one environment, or several that one request serves (environments that share a Cloud
Monitoring metrics scope). It returns a row per environment; an error it raises, or returns for one environment,
becomes an error row for each environment concerned, so one environment that cannot be read never hides the rest.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from ltmctl.errors import LtmctlError

WORKERS = 16  # environments in flight at once: enough to hide round trips, few enough to stay polite to APIs


@dataclass
class Unit:
    envs: list[Any]  # ltmctl.config.Resolved
    work: Callable[[], dict[str, Any]]  # environment name -> its row (a dict), or an LtmctlError for it


def per_env(envs: list[Any], work: Callable[[Any], dict[str, Any]]) -> list[Unit]:
    """One unit per environment: `work(resolved)` returns that environment's row."""
    return [Unit([r], lambda r=r: {r.name: work(r)}) for r in envs]


def error_row(resolved: Any, exc: Exception, debug: bool = False) -> dict[str, Any]:
    """An environment that failed, with the error's own message (Google's words, for a Google error)."""
    if isinstance(exc, LtmctlError):
        message, hint = exc.message, exc.hint
    else:
        from google.api_core.exceptions import GoogleAPICallError

        from ltmctl.gcp.errors import translate

        if isinstance(exc, GoogleAPICallError):
            translated = translate(exc, resolved.env.project)
            message, hint = translated.message, translated.hint
        else:
            # A bug, not the environment's state: say so, and keep the other rows.
            message, hint = f"unexpected {type(exc).__name__}: {exc}", "Run again with --debug for the traceback."
            if debug:
                from ltmctl import ui

                ui.err.print("".join(traceback.format_exception(exc)), markup=False, highlight=False)
    return {"environment": resolved.name, "backend": resolved.env.backend, "project": resolved.env.project,
            "state": "error", "error": message, "hint": hint}


def run(units: list[Unit], *, workers: int = WORKERS, on_done: Callable[[int, int], None] | None = None,
        debug: bool = False) -> dict[str, dict[str, Any]]:
    """Every unit's rows by environment name; `on_done(done, total)` hears of each environment as it finishes."""
    total = sum(len(u.envs) for u in units)
    rows: dict[str, dict[str, Any]] = {}
    if not units:
        return rows
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(units))), thread_name_prefix="fleet") as pool:
        futures = {pool.submit(unit.work): unit for unit in units}
        for future in as_completed(futures):
            unit = futures[future]
            try:
                answered = future.result()
            except Exception as exc:  # noqa: BLE001 - every failure is a row: see error_row
                answered = {r.name: exc for r in unit.envs}
            for resolved in unit.envs:
                row = answered.get(resolved.name)
                if row is None:
                    row = LtmctlError(f"no answer for {resolved.name}")
                rows[resolved.name] = error_row(resolved, row, debug) if isinstance(row, Exception) else row
            if on_done:
                on_done(len(rows), total)
    return rows
