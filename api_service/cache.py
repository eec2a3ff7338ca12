"""A small thread-safe TTL cache with LRU eviction, for hot keys of the data routes."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any


class TTLCache:
    """Entries expire `ttl` seconds after they were stored; past `max_entries` the least recently used go."""

    def __init__(self, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        # Route handlers run in a thread pool, so every read also writes (LRU order) under this lock.
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any | None:
        """The live value for key, or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expires, value = entry
            if self._clock() >= expires:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return value

    def put(self, key: Hashable, value: Any, ttl: float) -> None:
        """Store value for ttl seconds; a ttl of 0 or less stores nothing."""
        if ttl <= 0:
            return
        with self._lock:
            self._entries[key] = (self._clock() + ttl, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
