"""Read the local stack's service logs (.ltm/<env>/logs/*.log): JSON lines from the services, plain lines
from the servers around them, filtered by time and severity, optionally followed as they grow."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ltmctl.errors import UsageError

SEVERITIES = ("DEFAULT", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT", "EMERGENCY")
SERVICES = ("api", "ingest")


@dataclass(frozen=True)
class Entry:
    service: str
    time: datetime | None
    severity: str
    message: str
    data: dict[str, Any]  # the parsed JSON line, {} for a plain line

    def as_dict(self) -> dict[str, Any]:
        return {"service": self.service, "time": self.time.isoformat() if self.time else None,
                "severity": self.severity, "message": self.message, **({"entry": self.data} if self.data else {})}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """`30s`, `15m`, `1h`, `2d`, or an RFC 3339 time."""
    now = now or datetime.now(UTC)
    m = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if m:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[m.group(2)]
        return now - timedelta(**{unit: int(m.group(1))})
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--since {text!r} is neither a duration (30m, 1h, 2d) nor an RFC 3339 time.") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


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


def _keep(entry: Entry, since: datetime | None, min_severity: str | None) -> bool:
    if since is not None and (entry.time is None or entry.time < since):
        return False
    if min_severity is not None:
        rank = SEVERITIES.index(entry.severity) if entry.severity in SEVERITIES else 0
        return rank >= SEVERITIES.index(min_severity)
    return True


def files(log_dir: Path, service: str) -> dict[str, Path]:
    names = SERVICES if service == "all" else (service,)
    return {name: log_dir / f"{name}.log" for name in names}


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
                    if entry and _keep(entry, since, min_severity):
                        yield entry
            if not follow or stop():
                return
            if not got:
                time.sleep(poll_s)
    finally:
        for handle in handles.values():
            handle.close()


def format_entry(entry: Entry) -> str:
    """One line: time, severity, service, then method path status latency for a request."""
    when = entry.time.astimezone().strftime("%H:%M:%S.%f")[:-3] if entry.time else " " * 12
    request = entry.data.get("httpRequest") if entry.data else None
    if isinstance(request, dict):
        from urllib.parse import urlsplit

        path = urlsplit(str(request.get("requestUrl", ""))).path
        latency = str(request.get("latency", "")).rstrip("s")
        try:
            latency = f"{float(latency) * 1000:.1f} ms"
        except ValueError:
            pass
        body = f"{request.get('requestMethod', '')} {path} {request.get('status', '')} {latency}"
        if entry.data.get("email"):
            body += f" {entry.data['email']}"
    else:
        extras = {k: v for k, v in entry.data.items() if k not in ("time", "severity", "message")}
        body = entry.message + (" " + json.dumps(extras, default=str) if extras else "")
    return f"{when} {entry.severity:8} {entry.service:6} {body}"
