"""What both log sources give: entries of the services' logs, the severities, `--since` and the one-line form
`ltmctl logs` prints."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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


def keep(entry: Entry, since: datetime | None, min_severity: str | None) -> bool:
    if since is not None and (entry.time is None or entry.time < since):
        return False
    if min_severity is not None:
        rank = SEVERITIES.index(entry.severity) if entry.severity in SEVERITIES else 0
        return rank >= SEVERITIES.index(min_severity)
    return True


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
