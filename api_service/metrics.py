"""Prometheus metrics in a registry of the app's own, so several apps in one process never share counts."""

from __future__ import annotations

from typing import Any

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
        # labels() costs a lock and a dict build per call; route templates and status classes are few, so the
        # children are kept here (route is always a template or 'unmatched', never a raw path).
        self._children: dict[tuple[str, int], tuple[Any, Any]] = {}
        self._cache_children: dict[tuple[str, str], Any] = {}

    def observe(self, route: str, status: int, seconds: float) -> None:
        children = self._children.get((route, status // 100))
        if children is None:
            children = (self.requests.labels(route=route, status_class=f"{status // 100}xx"),
                        self.latency.labels(route=route))
            self._children[(route, status // 100)] = children
        children[0].inc()
        children[1].observe(seconds)

    def cache_lookup(self, route: str, result: str) -> None:
        child = self._cache_children.get((route, result))
        if child is None:
            child = self._cache_children[(route, result)] = self.cache.labels(route=route, result=result)
        child.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
