"""Read the local stack's service logs (.ltm/<env>/logs/*.log): JSON lines from the services, plain lines
from the servers around them, filtered by time and severity, optionally followed as they grow."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from ltmctl.logs.entries import SERVICES, Entry, keep


def parse_line(service: str, line: str) -> Entry | None:
    text = line.rstrip("\n")
    if not text.strip():
        return None
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return Entry(service, None, "DEFAULT", text, {})
    when = None
    if isinstance(data.get("time"), str):
        try:
            when = datetime.fromisoformat(data["time"].replace("Z", "+00:00"))
        except ValueError:
            when = None
    return Entry(service, when, str(data.get("severity", "DEFAULT")).upper(), str(data.get("message", "")), data)


def files(log_dir: Path, service: str) -> dict[str, Path]:
    names = SERVICES if service == "all" else (service,)
    return {name: log_dir / f"{name}.log" for name in names}


def of_stack(state: Any, service: str) -> dict[str, Path]:
    """The log files of a running local stack (`ltmctl.local.stack.StackState`): where its pieces write."""
    log_dir = Path(next(iter(state.pieces.values())).log).parent
    return files(log_dir, service)


def read(paths: dict[str, Path], *, since: datetime | None = None, min_severity: str | None = None,
         follow: bool = False, poll_s: float = 0.2, stop: Callable[[], bool] = lambda: False) -> Iterator[Entry]:
    """Entries of every file in time order of reading; with follow, keep yielding lines as they are written."""
    handles = {name: path.open("r", encoding="utf-8", errors="replace") for name, path in paths.items()
               if path.exists()}
    try:
        while True:
            got = False
            for name, handle in handles.items():
                for line in iter(handle.readline, ""):
                    if not line.endswith("\n") and follow:
                        handle.seek(handle.tell() - len(line.encode("utf-8", "replace")))
                        break  # a line still being written: read it whole next time
                    got = True
                    entry = parse_line(name, line)
                    if entry and keep(entry, since, min_severity):
                        yield entry
            if not follow or stop():
                return
            if not got:
                time.sleep(poll_s)
    finally:
        for handle in handles.values():
            handle.close()
