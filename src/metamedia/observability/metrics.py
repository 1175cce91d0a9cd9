"""Prometheus metrics for one process, in a registry of its own.

A registry per app (not the global default) lets tests and several apps in one
process each count their own requests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _GaugeCallback(Collector):
    """Gauges read at scrape time (index sizes, cache counters, outbox lag)."""

    def __init__(self, read: Callable[[], dict[str, float]]) -> None:
        self._read = read

    def collect(self) -> Iterable[GaugeMetricFamily]:
        try:
            values = self._read()
        except Exception:  # a failing probe must not break the scrape
            return []
        families = []
        for name, value in values.items():
            family = GaugeMetricFamily(f"metamedia_{name}", name.replace("_", " "))
            family.add_metric([], float(value))
            families.append(family)
        return families


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.requests = Counter(
            "metamedia_http_requests_total",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "metamedia_http_request_seconds",
            "HTTP request latency by route and method.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.stage = Histogram(
            "metamedia_stage_seconds",
            "Latency of internal stages (embedding, search, feed).",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "metamedia_errors_total",
            "Errors returned, by type.",
            ["type"],
            registry=self.registry,
        )

    def watch(self, read: Callable[[], dict[str, float]]) -> None:
        self.registry.register(_GaugeCallback(read))

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))


def observe(metrics: Any, stage: str, seconds: float) -> None:
    if metrics is not None:
        metrics.stage.labels(stage=stage).observe(seconds)
