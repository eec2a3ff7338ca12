"""`--env` as a selection: one name, a comma-separated list, glob patterns (`prod-*`), or any mix, matched against
the config's environment names in config order."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

from ltmctl.errors import ConfigError, UsageError

_GLOB = set("*?[")


def is_selection(spec: str | None) -> bool:
    """Whether `spec` may name more than one environment (a list or a pattern), rather than one name."""
    return bool(spec) and ("," in spec or bool(_GLOB & set(spec)))  # type: ignore[operator]


def patterns(spec: str) -> list[str]:
    parts = [p.strip() for p in spec.split(",")]
    if not all(parts):
        raise UsageError(f"--env {spec!r} has an empty name in its list.",
                         hint="Separate names or patterns with single commas, e.g. --env 'prod-*,staging'.")
    return parts


def match(spec: str, names: list[str], path: Path) -> list[str]:
    """The names `spec` selects, in `names` (config) order; a pattern that matches nothing is a ConfigError."""
    chosen: set[str] = set()
    for pattern in patterns(spec):
        found = fnmatch.filter(names, pattern)
        if not found:
            raise ConfigError(f"{path}: --env {pattern!r} matches no environment (defined: {', '.join(names)}).",
                              hint="Use a defined name, a list (dev,prod) or a pattern ('prod-*').")
        chosen.update(found)
    return [n for n in names if n in chosen]


def load(explicit: str | None, spec: str | None) -> list[Any]:
    """Every selected environment, resolved (`ltmctl.config.Resolved`); the config is read once."""
    from ltmctl import config

    if not is_selection(spec):
        return [config.load(explicit, spec)]
    path, root = config.find_config(explicit)
    parsed = config.parse(config.read_text(path), path)
    names = match(spec, list(parsed.environments), path)  # type: ignore[arg-type]
    return [_resolved(parsed, name, path, root) for name in names]


def _resolved(parsed: Any, name: str, path: Path, root: Path) -> Any:
    # As config.load resolves the one it selects (kept in step with it).
    from ltmctl.config import Resolved

    chosen = parsed.environments[name]
    pipeline = parsed.pipeline
    if chosen.ingest_mode is not None:
        pipeline = pipeline.model_copy(update={"ingest_mode": chosen.ingest_mode})
    return Resolved(name=name, env=chosen, pipeline=pipeline, path=path, root=root)


def require_one(selected: list[Any], command: str | None) -> Any:
    """The one environment of a command that acts on one; a selection of several is a usage error."""
    if len(selected) == 1:
        return selected[0]
    what = f"`ltmctl {command}`" if command else "This command"
    raise UsageError(f"{what} acts on one environment; --env selects {len(selected)}: "
                     f"{', '.join(r.name for r in selected)}.",
                     hint="Name one environment with --env NAME. `metrics`, `status` and `verify` take a list or a "
                          "pattern.")
