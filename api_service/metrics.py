"""Prometheus metrics in a registry of the app's own, so several apps in one process never share counts."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

# Covers a cache hit (well under 1 ms) up to a slow BigQuery query.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """Requests by route template and status class, latency by route, cache results by route."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("ltm_api_requests", "HTTP requests answered.", ["route", "status_class"],
                                registry=self.registry)
        self.latency = Histogram("ltm_api_request_duration_seconds", "Time to answer an HTTP request.",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.cache = Counter("ltm_api_cache_lookups", "Cache lookups of the data routes.", ["route", "result"],
                             registry=self.registry)

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route=route, status_class=f"{status // 100}xx").inc()
        self.latency.labels(route=route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
