"""Read a Prometheus text exposition and reduce it to figures: counters by label, histogram quantiles."""

from __future__ import annotations

from collections import defaultdict
from typing import Any


def parse(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample as (name, labels, value)."""
    from prometheus_client.parser import text_string_to_metric_families

    return [(s.name, dict(s.labels), s.value) for family in text_string_to_metric_families(text)
            for s in family.samples]


def total(samples: list[tuple[str, dict[str, str], float]], name: str, **match: str) -> float:
    return sum(v for n, labels, v in samples if n == name and all(labels.get(k) == x for k, x in match.items()))


def buckets(samples: list[tuple[str, dict[str, str], float]], name: str, **match: str) -> list[tuple[float, float]]:
    """Cumulative (upper bound, count) of a histogram, summed over series that match."""
    sums: dict[float, float] = defaultdict(float)
    for n, labels, value in samples:
        if n == f"{name}_bucket" and all(labels.get(k) == x for k, x in match.items()):
            sums[float(labels["le"])] += value
    return sorted(sums.items())


def bucket_of(q: float, cumulative: list[tuple[float, float]]) -> tuple[float, float] | None:
    """(lower, upper] bounds of the bucket that holds rank q·count: all a histogram knows of a quantile. With one
    request between 50 and 100 ms, interpolating inside the bucket would say p50 75 ms and p99 99.5 ms, figures
    that read like measurements; this says (50, 100] for both."""
    if not cumulative or cumulative[-1][1] <= 0:
        return None
    rank = q * cumulative[-1][1]
    lower = 0.0
    for bound, cum in cumulative:
        if cum >= rank and cum > 0:
            return lower, bound
        lower = bound
    return lower, float("inf")


def shown_bucket(bounds: tuple[float, float] | None, scale: float = 1000.0, unit: str = "ms") -> str:
    """`≤ 100 ms`, or `> 30000 ms` past the last finite bucket, or `—`."""
    if bounds is None:
        return "—"
    lower, upper = bounds
    if upper == float("inf"):
        return f"> {lower * scale:g} {unit}"
    return f"≤ {upper * scale:g} {unit}"


def summary(text: str, histogram: str, counter: str, **match: str) -> dict[str, Any]:
    samples = parse(text)
    cumulative = buckets(samples, histogram, **match)
    return {
        "requests": total(samples, f"{counter}_total", **match),
        "p50": bucket_of(0.5, cumulative),
        "p99": bucket_of(0.99, cumulative),
    }
