"""A small thread-safe TTL cache bounded in bytes, with LRU eviction, for hot keys of the data routes."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

# What an entry costs beyond its value's bytes: the key tuple and its strings, the OrderedDict node, the entry
# tuple. Measured at about 600 bytes for a get_data key with 128-character ids; rounded up.
ENTRY_OVERHEAD_BYTES = 1024
SWEEP_INTERVAL_S = 1.0


def _key_bytes(key: Hashable) -> int:
    parts = key if isinstance(key, tuple) else (key,)
    return sum(len(p) for p in parts if isinstance(p, str | bytes))


class TTLCache:
    """Entries expire `ttl` seconds after they were stored. Bounded by the bytes of what it holds (`size` of each
    value plus its key and bookkeeping) and by a count; past either, the least recently used go. Expired entries
    are swept out at most once a second on a store, so memory is not held by answers nobody can be given."""

    def __init__(self, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic, *,
                 max_bytes: int = 128 * 1024 * 1024) -> None:
        self._max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, Any, int]] = OrderedDict()
        self.bytes = 0
        self._next_sweep = float("-inf")
        # Route handlers run in a thread pool, so every read also writes (LRU order) under this lock.
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any | None:
        """The live value for key, or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expires, value, _ = entry
            if self._clock() >= expires:
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return value

    def put(self, key: Hashable, value: Any, ttl: float, size: int = 0) -> None:
        """Store value for ttl seconds, counted as `size` bytes; a ttl of 0 or less, or a value larger than the
        whole cache, stores nothing."""
        cost = size + _key_bytes(key) + ENTRY_OVERHEAD_BYTES
        if ttl <= 0 or cost > self.max_bytes:
            return
        with self._lock:
            now = self._clock()
            if key in self._entries:
                self._drop(key)
            if now >= self._next_sweep:
                self._sweep(now)
            self._entries[key] = (now + ttl, value, cost)
            self.bytes += cost
            while len(self._entries) > self._max_entries or self.bytes > self.max_bytes:
                self._drop(next(iter(self._entries)))

    def _drop(self, key: Hashable) -> None:
        self.bytes -= self._entries.pop(key)[2]

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + SWEEP_INTERVAL_S
        for key in [k for k, (expires, _, _) in self._entries.items() if now >= expires]:
            self._drop(key)

    def __len__(self) -> int:
        return len(self._entries)
