"""Synthetic events that look real: a fixed catalogue of apps, departments, actions and users."""

from __future__ import annotations

import itertools
import random
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
OTHER_APPS = tuple(a for a in APPS if a not in IOT_APPS)
CLIENTS = ("chrome", "firefox", "safari", "android", "ios")
# The sequence for a seed is cut into blocks of this many events, each from its own RNG seeded with
# (seed, block): any slice [start, end) of the sequence can be generated on its own (by a worker process)
# and comes out identical to the same events of a single run, at the cost of one seeding per block.
BLOCK = 1024
# A few users do most of the work, as in real traffic. Cumulative weights, computed once: choices()
# would otherwise add them up again for every event.
_USER_WEIGHTS = list(itertools.accumulate(1.0 / (i + 1) for i in range(len(USERS))))
_ACTION_WEIGHTS = list(itertools.accumulate([5, 3, 2, 1, 1]))
_WEEK_S = 7 * 24 * 3600
# UUID version 4 and RFC 4122 variant bits, as uuid.UUID(int=..., version=4) sets them.
_UUID_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID_SET = (0x4000 << 64) | (0x8000 << 48)


def new_seed() -> int:
    """A seed for a run without --seed: drawn once, then shared by every process publishing the run."""
    return random.SystemRandom().randrange(2**63)


def _block_rng(seed: int, block: int) -> random.Random:
    # A string seed is hashed with SHA-512 by random.Random: stable across processes and Python runs.
    return random.Random(f"ltm-synthetic:{seed}:{block}")


def events(count: int, *, seed: int | None = None, source: str | None = None,
           now: datetime | None = None, start: int = 0) -> Iterator[dict[str, Any]]:
    """Events start .. start+count-1 (0-based) of the sequence for `seed`; the same seed (and `now`) gives the
    same events, event ids included, however the sequence is sliced."""
    seed = new_seed() if seed is None else seed
    now = now or datetime.now(UTC)
    end = start + count
    block = start // BLOCK
    index = block * BLOCK
    while index < end:
        rng = _block_rng(seed, block)
        stop = min(end, index + BLOCK)
        for i in range(index, stop):
            event = _event(rng, source, now)
            if i >= start:
                yield event
        block += 1
        index = stop


def _event(rng: random.Random, source: str | None, now: datetime) -> dict[str, Any]:
    random_ = rng.random
    kind = source or SOURCES[int(random_() * 3)]
    app_id = IOT_APPS[int(random_() * 2)] if kind == "iot" else OTHER_APPS[int(random_() * 4)]
    department, actions = APPS[app_id]
    action = rng.choices(actions, cum_weights=_ACTION_WEIGHTS)[0]
    user = rng.choices(USERS, cum_weights=_USER_WEIGHTS)[0]
    when = now - timedelta(seconds=int(random_() * (_WEEK_S + 1)))
    payload: dict[str, Any] = {"session": f"s-{rng.getrandbits(32):08x}"}
    if kind == "iot":
        payload["device"] = f"{app_id}-dev-{int(random_() * 40) + 1:03d}"
        payload["value"] = round(random_() * 100, 2)
    else:
        payload["client"] = CLIENTS[int(random_() * 5)]
        payload["latency_ms"] = 20 + int(random_() * 881)
    h = f"{(rng.getrandbits(128) & _UUID_CLEAR) | _UUID_SET:032x}"
    return {
        "event_id": f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}",
        "action_id": action,
        "user_email": user,
        "app_id": app_id,
        "app_department": department,
        "source": kind,
        "event_time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "payload": payload,
    }
