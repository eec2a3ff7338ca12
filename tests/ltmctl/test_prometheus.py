"""Histogram quantile buckets from Prometheus text, checked against values computed by hand."""

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from ltmctl.metrics import prometheus


def exposition(values, buckets=(0.01, 0.1, 1.0)):
    registry = CollectorRegistry()
    h = Histogram("lat_seconds", "x", ["route"], buckets=buckets, registry=registry)
    for route, v in values:
        h.labels(route=route).observe(v)
    return generate_latest(registry).decode()


def test_quantiles_are_the_buckets_that_hold_their_rank():
    # 100 observations: 50 in (0, 0.01], 40 in (0.01, 0.1], 10 in (0.1, 1]
    text = exposition([("a", 0.005)] * 50 + [("a", 0.05)] * 40 + [("a", 0.5)] * 10)
    cumulative = prometheus.buckets(prometheus.parse(text), "lat_seconds", route="a")
    assert cumulative[:3] == [(0.01, 50.0), (0.1, 90.0), (1.0, 100.0)]
    assert prometheus.bucket_of(0.5, cumulative) == (0.0, 0.01)
    assert prometheus.bucket_of(0.7, cumulative) == (0.01, 0.1)
    assert prometheus.bucket_of(0.99, cumulative) == (0.1, 1.0)


def test_series_are_summed_and_filtered_by_label():
    text = exposition([("a", 0.005)] * 3 + [("b", 0.5)] * 1)
    samples = prometheus.parse(text)
    assert prometheus.buckets(samples, "lat_seconds")[-1][1] == 4
    assert prometheus.buckets(samples, "lat_seconds", route="b")[0] == (0.01, 0.0)
    assert prometheus.total(samples, "lat_seconds_count", route="a") == 3


def test_empty_histogram_has_no_quantile():
    assert prometheus.bucket_of(0.5, []) is None
    assert prometheus.bucket_of(0.5, [(0.1, 0.0), (float("inf"), 0.0)]) is None
