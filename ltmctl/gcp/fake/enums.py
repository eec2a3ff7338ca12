"""The numbers of proto enums whose wire numbers are not their order of declaration.

The generated REST clients send enums as numbers (`$alt=json;enum-encoding=int`); a discovery document lists an
enum's names in declaration order but not their numbers. For most enums the two agree, for some they do not:
google.api.LaunchStage declares EARLY_ACCESS (1) after UNIMPLEMENTED (6) and PRELAUNCH (7), so BETA is 3 on the
wire and the sixth name in the list; Cloud Build's LoggingMode declares CLOUD_LOGGING_ONLY (5) before NONE (4).
Read by position, `launchStage: 3` would be stored as EARLY_ACCESS where Google stores BETA. The numbers come from
the client libraries' own enum types, matched to a discovery enum by its set of names (imported once, on the
first number received: about a second).
"""

from __future__ import annotations

import enum
import importlib
from functools import cache

# The client libraries whose requests the fake serves (their types modules hold the enums they send).
_PACKAGES = ("google.cloud.run_v2", "google.cloud.devtools.cloudbuild_v1", "google.pubsub_v1",
             "google.cloud.iap_v1", "google.cloud.storage", "google.cloud.artifactregistry_v1",
             "google.cloud.monitoring_v3", "google.cloud.logging_v2")


@cache
def reordered() -> dict[frozenset[str], dict[int, str]]:
    """{the enum's names: {number: name}} for every known enum whose numbers differ from its order."""
    from google.api import launch_stage_pb2

    found: list[list[tuple[str, int]]] = [list(launch_stage_pb2.LaunchStage.items())]
    seen: set[int] = set()

    def walk(obj: object, depth: int = 0) -> None:
        if id(obj) in seen or depth > 4:
            return
        seen.add(id(obj))
        for value in list(vars(obj).values()):
            if isinstance(value, type) and issubclass(value, enum.IntEnum):
                found.append([(m.name, m.value) for m in value])
            elif isinstance(value, type) and getattr(value, "__module__", "").startswith("google."):
                walk(value, depth + 1)

    for name in _PACKAGES:
        walk(importlib.import_module(name))
    out = {}
    for members in found:
        if [number for _, number in members] != list(range(len(members))):
            out[frozenset(n for n, _ in members)] = {number: name for name, number in members}
    return out


def name_of(names: list[str], number: int) -> str | None:
    """The name Google reads for `number` in the enum that lists `names`; None if out of range."""
    numbers = reordered().get(frozenset(names))
    if numbers is not None:
        return numbers.get(number)
    return names[number] if 0 <= number < len(names) else None
