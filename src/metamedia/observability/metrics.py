"""Prometheus metrics for one process, in a registry of its own.

A registry per app (not the global default) lets tests and several apps in one
process each count their own requests.
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import psutil
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from metamedia.observability.alerts import DB_SERIES, ObservationWindow

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# SQLite statements mostly take tens of microseconds; the alert threshold is 0.5 s.
DB_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


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


class CacheNumbers(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def entries(self) -> int: ...
    @property
    def bytes(self) -> int: ...
    @property
    def hits(self) -> int: ...
    @property
    def misses(self) -> int: ...
    @property
    def evictions(self) -> int: ...
    @property
    def expirations(self) -> int: ...


class _CacheCollector(Collector):
    """Per-cache counters and sizes, labelled by cache name, read at scrape time."""

    def __init__(self, read: Callable[[], Sequence[CacheNumbers]]) -> None:
        self._read = read

    def collect(self) -> Iterable[Metric]:
        try:
            caches = self._read()
        except Exception:  # a failing probe must not break the scrape
            return []
        counters = {
            field: CounterMetricFamily(
                f"metamedia_cache_{field}", f"Cache {field} by cache.", labels=["cache"]
            )
            for field in ("hits", "misses", "evictions", "expirations")
        }
        gauges = {
            field: GaugeMetricFamily(
                f"metamedia_cache_{field}", f"Cache {field} in use by cache.", labels=["cache"]
            )
            for field in ("entries", "bytes")
        }
        for cache in caches:
            for field, counter in counters.items():
                counter.add_metric([cache.name], float(getattr(cache, field)))
            for field, gauge in gauges.items():
                gauge.add_metric([cache.name], float(getattr(cache, field)))
        return [*counters.values(), *gauges.values()]


class Metrics:
    def __init__(self, window_s: float = 300.0) -> None:
        # Recent observations for the alert rules (observability/alerts.py).
        self.window = ObservationWindow(window_s)
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
            "HTTP request latency by route, method and status.",
            ["route", "method", "status"],
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
        self.db_query = Histogram(
            "metamedia_db_query_seconds",
            "Database statement latency by operation (select, insert, update, delete, other).",
            ["operation"],
            buckets=DB_BUCKETS,
            registry=self.registry,
        )
        self.vector_plans = Counter(
            "metamedia_vector_search_plans_total",
            "In-memory vector searches by index (items, passages) and the plan the cost "
            "model chose (exact, graph, graph_wide).",
            ["index", "plan"],
            registry=self.registry,
        )
        self.errors = Counter(
            "metamedia_errors_total",
            "Errors returned, by type.",
            ["type"],
            registry=self.registry,
        )
        # Memory governance: RSS as our own gauge too (ProcessCollector's is Linux-only).
        self.watch(lambda: {"process_resident_bytes": resident_bytes()})

    def watch(self, read: Callable[[], dict[str, float]]) -> None:
        self.registry.register(_GaugeCallback(read))

    def watch_caches(self, read: Callable[[], Sequence[CacheNumbers]]) -> None:
        self.registry.register(_CacheCollector(read))

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))


def observe(metrics: Any, stage: str, seconds: float) -> None:
    if metrics is not None:
        metrics.stage.labels(stage=stage).observe(seconds)
        metrics.window.observe(stage, seconds)


# The metrics of the app serving the current request, set by its middleware, so
# that code below the interfaces (services) can time a stage without holding them.
current_metrics: contextvars.ContextVar[Metrics | None] = contextvars.ContextVar(
    "metamedia_metrics", default=None
)


def observe_current(stage: str, seconds: float) -> None:
    """`observe` into the current request's metrics; a no-op outside a request (CLI)."""
    observe(current_metrics.get(), stage, seconds)


def count_vector_plan_current(index: str, plan: str) -> None:
    """Count a vector search's plan in the current request's metrics (no-op outside one)."""
    metrics = current_metrics.get()
    if metrics is not None:
        metrics.vector_plans.labels(index=index, plan=plan).inc()


def observe_db(metrics: Metrics, operation: str, seconds: float) -> None:
    metrics.db_query.labels(operation=operation).observe(seconds)
    metrics.window.observe(DB_SERIES, seconds)


_process: tuple[int, psutil.Process] | None = None


def resident_bytes() -> int:
    """This process's resident set size (RSS) in bytes."""
    global _process
    pid = os.getpid()
    if _process is None or _process[0] != pid:  # first call, or a forked worker
        _process = (pid, psutil.Process(pid))
    return int(_process[1].memory_info().rss)
