"""Numbers for the admin page, read from the live Prometheus registry and services.

The registry is the one source the `/metrics` scrape also reads, so the page
and a Prometheus dashboard never disagree. Percentiles are estimated from the
histogram buckets the same way PromQL's `histogram_quantile` does: linear
interpolation inside the bucket that holds the rank.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client.registry import CollectorRegistry

from metamedia.observability.alerts import AlertEvaluator

DASH = "\u2013"  # shown for "no value"
HITS_SUFFIXES = ("_hits_total", "_hits")
MISSES_FOR = {"_hits_total": "_misses_total", "_hits": "_misses"}


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class LatencyRow:
    label: str
    count: int
    mean_ms: float | None
    p50_ms: float | None
    p95_ms: float | None


@dataclass(frozen=True)
class CacheRow:
    name: str
    hits: int
    misses: int

    @property
    def rate(self) -> float | None:
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else None


def samples(registry: CollectorRegistry) -> list[Sample]:
    return [
        Sample(s.name, dict(s.labels), float(s.value))
        for family in registry.collect()
        for s in family.samples
    ]


def bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The q-quantile from cumulative (upper bound, count) pairs, sorted by bound."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, cumulative in buckets:
        if cumulative >= rank:
            if math.isinf(bound):
                return lower  # beyond the last finite bucket: its bound is the best guess
            inside = cumulative - below
            fraction = (rank - below) / inside if inside else 1.0
            return lower + (bound - lower) * fraction
        lower, below = bound, cumulative
    return lower


def histogram_rows(
    all_samples: Iterable[Sample], metric: str, group_by: tuple[str, ...]
) -> list[LatencyRow]:
    """Count, mean, p50 and p95 of one histogram per label group (other labels summed)."""
    buckets: dict[tuple[str, ...], dict[float, float]] = defaultdict(lambda: defaultdict(float))
    sums: dict[tuple[str, ...], float] = defaultdict(float)
    counts: dict[tuple[str, ...], float] = defaultdict(float)
    for s in all_samples:
        key = tuple(s.labels.get(label, "") for label in group_by)
        if s.name == f"{metric}_bucket":
            buckets[key][float(s.labels["le"])] += s.value
        elif s.name == f"{metric}_sum":
            sums[key] += s.value
        elif s.name == f"{metric}_count":
            counts[key] += s.value
    rows = []
    for key, count in counts.items():
        if count <= 0:
            continue
        ordered = sorted(buckets[key].items())
        p50, p95 = bucket_quantile(0.5, ordered), bucket_quantile(0.95, ordered)
        rows.append(
            LatencyRow(
                " ".join(k for k in key if k),
                int(count),
                sums[key] / count * 1000,
                None if p50 is None else p50 * 1000,
                None if p95 is None else p95 * 1000,
            )
        )
    rows.sort(key=lambda r: -r.count)
    return rows


def cache_rows(all_samples: Iterable[Sample]) -> list[CacheRow]:
    """Every hits/misses pair in the registry (`<x>_hits_total` with `<x>_misses_total`,
    same labels), whichever collector exported it."""
    values = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in all_samples}
    rows = []
    for (name, labels), hits in values.items():
        suffix = next((x for x in HITS_SUFFIXES if name.endswith(x)), None)
        if suffix is None:
            continue
        prefix = name[: -len(suffix)]
        misses = values.get((prefix + MISSES_FOR[suffix], labels))
        if misses is None:
            continue
        label_text = " ".join(v for _, v in labels)
        title = prefix.removeprefix("metamedia_").replace("_", " ")
        # `metamedia_cache_hits{cache="search"}` reads best as just "search".
        name = label_text if title == "cache" and label_text else f"{title} {label_text}"
        rows.append(CacheRow(name.strip().replace("_", " "), int(hits), int(misses)))
    rows.sort(key=lambda r: r.name)
    return rows


def counter_rows(all_samples: Iterable[Sample], metric: str, label: str) -> list[tuple[str, int]]:
    totals: dict[str, float] = defaultdict(float)
    for s in all_samples:
        if s.name in (metric, f"{metric}_total"):
            totals[s.labels.get(label, "")] += s.value
    return sorted(((k, int(v)) for k, v in totals.items()), key=lambda kv: -kv[1])


def metrics_summary(metrics: Any) -> dict[str, Any]:
    """What the admin page shows from the live metrics (empty when none are attached)."""
    if metrics is None:
        return {"routes": [], "stages": [], "caches": [], "errors": [], "requests": 0}
    got = samples(metrics.registry)
    routes = histogram_rows(got, "metamedia_http_request_seconds", ("method", "route"))
    return {
        "routes": routes,
        "stages": histogram_rows(got, "metamedia_stage_seconds", ("stage",)),
        "caches": cache_rows(got),
        "errors": counter_rows(got, "metamedia_errors", "type"),
        "requests": sum(r.count for r in routes),
    }


def alerts_summary(evaluator: AlertEvaluator) -> dict[str, Any]:
    """The alert rules' states from the app's evaluator, through each status's `as_dict()`,
    so the page follows whatever rules observability/alerts.py defines."""
    rules = [status.as_dict() for status in evaluator.evaluate(time.time())]
    return {
        "rules": rules,
        "firing": [r["name"] for r in rules if r.get("state") == "firing"],
    }


def readable(value: float | None, unit: str) -> str:
    """An alert value or threshold in the unit a person reads it in."""
    if value is None:
        return DASH
    if unit == "seconds":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "bytes":
        return f"{value / 2**20:.0f} MiB"
    if unit == "ratio":
        return f"{value * 100:.1f}%"
    return f"{value:.4g} {unit}"
