"""Synthetic events that look real: a fixed catalogue of apps, departments, actions and users."""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

# app_id -> its department; each app has the actions its users take most.
APPS: dict[str, tuple[str, list[str]]] = {
    "crm": ("sales", ["login", "view_account", "update_opportunity", "export_report", "logout"]),
    "billing": ("finance", ["login", "create_invoice", "approve_payment", "view_invoice", "logout"]),
    "hr-portal": ("people", ["login", "submit_timesheet", "request_leave", "view_payslip", "logout"]),
    "warehouse": ("operations", ["scan_item", "pick_order", "pack_order", "ship_order", "sensor_reading"]),
    "support-desk": ("customer-care", ["login", "open_ticket", "reply_ticket", "close_ticket", "logout"]),
    "fleet": ("logistics", ["gps_ping", "engine_start", "engine_stop", "door_open", "fuel_level"]),
}
FIRST = ["ana", "bruno", "carla", "diego", "elena", "felipe", "gabriela", "hugo", "irene", "javier",
         "karen", "luis", "maria", "nicolas", "olga", "pablo", "quique", "rosa", "sergio", "tania"]
LAST = ["perez", "gomez", "rodriguez", "fernandez", "lopez", "martinez", "sanchez", "romero", "diaz", "torres"]
USERS = [f"{f}.{last}@example.com" for f in FIRST for last in LAST[:3]]
SOURCES = ("iot", "app", "web")
IOT_APPS = ("warehouse", "fleet")


def events(count: int, *, seed: int | None = None, source: str | None = None,
           now: datetime | None = None) -> Iterator[dict[str, Any]]:
    """`count` events; the same seed (and `now`) gives the same events, event ids included."""
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    # A few users do most of the work, as in real traffic. Cumulative weights, computed once: choices()
    # would otherwise add them up again for every event.
    user_weights = list(itertools.accumulate(1.0 / (i + 1) for i in range(len(USERS))))
    action_weights = list(itertools.accumulate([5, 3, 2, 1, 1]))
    other_apps = [a for a in APPS if a not in IOT_APPS]
    for _ in range(count):
        kind = source or rng.choice(SOURCES)
        app_id = rng.choice(IOT_APPS) if kind == "iot" else rng.choice(other_apps)
        department, actions = APPS[app_id]
        action = rng.choices(actions, cum_weights=action_weights)[0]
        user = rng.choices(USERS, cum_weights=user_weights)[0]
        when = now - timedelta(seconds=rng.randint(0, 7 * 24 * 3600))
        payload: dict[str, Any] = {"session": f"s-{rng.randrange(16**8):08x}"}
        if kind == "iot":
            payload.update(device=f"{app_id}-dev-{rng.randint(1, 40):03d}", value=round(rng.uniform(0, 100), 2))
        else:
            payload.update(client=rng.choice(["chrome", "firefox", "safari", "android", "ios"]),
                           latency_ms=rng.randint(20, 900))
        yield {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "action_id": action,
            "user_email": user,
            "app_id": app_id,
            "app_department": department,
            "source": kind,
            "event_time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "payload": payload,
        }
