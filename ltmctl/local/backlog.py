"""How many messages a subscription of the Pub/Sub emulator holds, which it does not say by itself.

The emulator has no metrics and no backlog figure, so the only way to learn what it holds is to pull: every
message pulled is held until the count is done (so none is counted twice) and then released at once
(acknowledgement deadline 0), so delivery resumes. Each pull is a delivery attempt towards a dead-letter
policy's maximum, so callers count sparingly. Messages leased to someone else (a push in flight, another
reader) are not seen.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

from ltmctl.errors import BackendError

PULL_MAX = 1000  # Pub/Sub's maximum per pull; the emulator answers at most 100
COUNT_CAP = 50_000  # beyond this the figure is "at least"; holding more would cost the emulator memory and time
BUDGET_S = 60.0


def count_waiting(subscriber: Any, path: str, *, cap: int = COUNT_CAP, budget_s: float = BUDGET_S
                  ) -> tuple[int, bool]:
    """(messages the subscription holds that nobody else has leased, whether counting stopped at a bound)."""
    seen, bounded = waiting_ids(subscriber, path, cap=cap, budget_s=budget_s)
    return len(seen), bounded


def waiting_ids(subscriber: Any, path: str, *, cap: int = COUNT_CAP, budget_s: float = BUDGET_S
                ) -> tuple[set[str], bool]:
    """(the message ids of what count_waiting counts, whether counting stopped at a bound)."""
    from google.api_core import exceptions

    seen: set[str] = set()
    held: list[str] = []
    deadline = time.monotonic() + budget_s
    bounded = False
    try:
        while True:
            if len(seen) >= cap or time.monotonic() >= deadline:
                bounded = True
                break
            try:
                # return_immediately: a snapshot of what is there now. Without it the emulator holds the last,
                # empty pull open for about 4 s before answering, which every `local down` paid. (Google
                # discourages it for Pub/Sub itself; this counts only the local emulator's subscriptions.)
                with warnings.catch_warnings():  # the client's DeprecationWarning says the same as above
                    warnings.filterwarnings("ignore", "The return_immediately flag is deprecated",
                                            DeprecationWarning)
                    response = subscriber.pull(request={"subscription": path, "max_messages": PULL_MAX,
                                                        "return_immediately": True}, timeout=5.0, retry=None)
            except exceptions.DeadlineExceeded:
                break  # nothing arrived while waiting: empty
            except exceptions.NotFound:
                return set(), False  # no such subscription (infra not applied): it holds nothing
            except exceptions.GoogleAPICallError as exc:
                raise BackendError(f"Cannot count the messages in {path}: {exc.message}",
                                   hint="Check the Pub/Sub emulator with `ltmctl local status`.") from None
            if not response.received_messages:
                break
            for received in response.received_messages:
                held.append(received.ack_id)
                seen.add(received.message.message_id)
    finally:
        release(subscriber, path, held)
    return seen, bounded


def release(subscriber: Any, path: str, ack_ids: list[str]) -> None:
    """Make leased messages deliverable again now rather than after their acknowledgement deadline."""
    from google.api_core import exceptions

    for start in range(0, len(ack_ids), PULL_MAX):
        try:
            subscriber.modify_ack_deadline(request={"subscription": path, "ack_ids": ack_ids[start:start + PULL_MAX],
                                                    "ack_deadline_seconds": 0}, timeout=30)
        except exceptions.GoogleAPICallError:
            pass  # they come back by themselves when the deadline passes; nothing else to do on the way out
