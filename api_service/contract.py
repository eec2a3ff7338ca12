"""The contract's path-value rules, read from event.schema.json so the API and the ingest side never drift."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

# The fields a caller puts in a URL; each must obey the same pattern the ingest side stored it under.
PATH_FIELDS = ("action_id", "user_email", "app_id", "app_department")


def contract_dir() -> Path:
    """LTM_CONTRACT_DIR, else the copy in this package (image), the checkout's config/, the wheel's copy."""
    here = Path(__file__).resolve().parent
    candidates = [os.environ.get("LTM_CONTRACT_DIR"), here / "contract", here.parent / "config" / "contract",
                  here.parent / "ltmctl" / "_config" / "contract"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "event.schema.json").is_file():
            return Path(candidate)
    raise FileNotFoundError("event.schema.json not found; set LTM_CONTRACT_DIR to the contract directory")


@dataclass(frozen=True)
class FieldRule:
    pattern: str
    max_length: int | None = None


def path_rules(directory: Path | None = None) -> dict[str, FieldRule]:
    """Pattern and length limit of every field that can appear in a route path."""
    schema = json.loads(((directory or contract_dir()) / "event.schema.json").read_text(encoding="utf-8"))
    properties = schema["properties"]
    return {name: FieldRule(properties[name]["pattern"], properties[name].get("maxLength"))
            for name in PATH_FIELDS}
