"""Cloud Logging (REST v2): entries:list over entries a test stores with `add_entry`, with the filter language's
comparisons on resource, labels, payload fields, `timestamp` (as a time) and `severity` (by rank), `orderBy` and
paging."""

from __future__ import annotations

import copy
from typing import Any

from ltmctl.gcp.fake.filters import Filter
from ltmctl.gcp.fake.monitoring import parse_time
from ltmctl.gcp.fake.server import Api, Request, invalid

SEVERITIES = ("DEFAULT", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT", "EMERGENCY")
_RANK = {name: i * 100 for i, name in enumerate(SEVERITIES)}


def _field(entry: dict[str, Any], field: str) -> Any:
    if field == "severity":
        return _RANK.get(entry.get("severity", "DEFAULT"), 0)
    if field in ("timestamp", "receiveTimestamp"):
        return parse_time(entry[field]) if entry.get(field) else None
    node: Any = entry
    for part in field.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part.strip('"'))
    return node if node is None or isinstance(node, str | int | float) else str(node)


def _literal(field: str, text: str) -> Any:
    if field == "severity":
        if text.upper() not in _RANK:
            raise invalid(f"Invalid severity {text!r} in filter.")
        return _RANK[text.upper()]
    if field in ("timestamp", "receiveTimestamp"):
        return parse_time(text)
    return text


class LoggingApi(Api):
    discovery = ("logging.v2",)
    service = "logging.googleapis.com"
    title = "Cloud Logging API"
    page_size = 50  # small, so tests exercise paging

    def __init__(self, fake) -> None:
        super().__init__(fake)
        self.entries: list[dict[str, Any]] = []

    def routes(self):
        return [("POST", "/v2/entries:list", self.list_entries)]

    def add_entry(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Store one LogEntry (REST JSON); logName, insertId and receiveTimestamp are filled in when absent."""
        stored = copy.deepcopy(entry)
        stored.setdefault("logName", f"projects/{self.fake.project}/logs/run.googleapis.com%2Fstdout")
        stored.setdefault("insertId", f"fake{self.fake.next_id():08d}")
        stored.setdefault("receiveTimestamp", stored.get("timestamp"))
        with self.fake.lock:
            self.entries.append(stored)
        return stored

    def list_entries(self, req: Request):
        body = req.data or {}
        names = body.get("resourceNames") or []
        if not names:
            raise invalid("resourceNames: at least one resource name is required.")
        projects = {self.fake.project_id(n.split("/", 1)[1]) for n in names if n.startswith("projects/")}
        chosen = Filter(body.get("filter", ""))
        found = [e for e in self.entries
                 if e["logName"].split("/")[1] in projects and chosen.matches(lambda f, e=e: _field(e, f), _literal)]
        order = (body.get("orderBy") or "timestamp asc").lower().replace(" ", "")
        if order not in ("timestampasc", "timestampdesc"):
            raise invalid(f"Invalid orderBy {body.get('orderBy')!r}.")
        found.sort(key=lambda e: (parse_time(e["timestamp"]), e["insertId"]), reverse=order.endswith("desc"))
        start = int(body.get("pageToken") or 0)
        size = min(int(body.get("pageSize") or self.page_size), self.page_size)
        page = found[start:start + size]
        out: dict[str, Any] = {"entries": copy.deepcopy(page)} if page else {}
        if start + size < len(found):
            out["nextPageToken"] = str(start + size)
        return out
