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


def quantile(q: float, cumulative: list[tuple[float, float]]) -> float | None:
    """Like PromQL's histogram_quantile: linear interpolation inside the bucket that holds rank q·count."""
    if not cumulative or cumulative[-1][1] == 0:
        return None
    count = cumulative[-1][1]
    rank = q * count
    lower_bound, lower_count = 0.0, 0.0
    for bound, cum in cumulative:
        if cum >= rank:
            if bound == float("inf"):
                return lower_bound  # past the last finite bucket: its bound is all we know
            inside = cum - lower_count
            return lower_bound + (bound - lower_bound) * ((rank - lower_count) / inside if inside else 0.0)
        lower_bound, lower_count = bound, cum
    return lower_bound


def summary(text: str, histogram: str, counter: str, **match: str) -> dict[str, Any]:
    samples = parse(text)
    cumulative = buckets(samples, histogram, **match)
    return {
        "requests": total(samples, f"{counter}_total", **match),
        "p50_s": quantile(0.5, cumulative),
        "p99_s": quantile(0.99, cumulative),
    }
