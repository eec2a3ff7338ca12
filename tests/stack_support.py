"""Reading a running local stack back in tests: its state file, clients on its ports, CLI text without boxes."""

from __future__ import annotations

import json
from pathlib import Path

from ltmctl import clients


def flat(text: str) -> str:
    """CLI output with rich's panel borders and line wrapping folded away, for substring checks."""
    return " ".join(text.replace("│", " ").split())


def state_of(project_dir: Path) -> dict:
    return json.loads((project_dir / ".ltm" / "local" / "state.json").read_text())


def clients_for(project_dir: Path) -> clients.Clients:
    state = state_of(project_dir)
    return clients.for_emulators(state["project"], f"127.0.0.1:{state['ports']['pubsub']}",
                                 f"http://127.0.0.1:{state['ports']['bigquery']}")
