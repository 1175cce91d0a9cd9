"""The alert rules' sliding-window math, driven by explicit `now` values."""

from __future__ import annotations

import pytest

from metamedia.observability.alerts import (
    AlertEvaluator,
    AlertStatus,
    AlertThresholds,
    ObservationWindow,
    weighted_percentile,
)

# 300 s window in 60 slots of 5 s; observations at t=1000 live in slot [1000, 1005).
T0 = 1000.0


def by_name(statuses: list[AlertStatus]) -> dict[str, AlertStatus]:
    return {s.name: s for s in statuses}


def test_old_observations_drop_out_of_the_window() -> None:
    window = ObservationWindow(window_s=300, slots=60)
    for _ in range(5):
        window.observe("feed", 2.0, now=T0)
    window.request(500, now=T0)
    assert window.percentile("feed", 0.95, T0 + 1) == (5, 2.0)
    # Still inside: the window reaches back to the start of the oldest live slot.
    assert window.percentile("feed", 0.95, T0 + 299)[0] == 5
    assert window.requests(T0 + 299) == (1, 1)
    # One window later the slot is out, and its ring position is reused afresh.
    assert window.percentile("feed", 0.95, T0 + 300) == (0, None)
    assert window.requests(T0 + 300) == (0, 0)
    window.observe("feed", 0.1, now=T0 + 300)
    assert window.percentile("feed", 0.95, T0 + 301) == (1, 0.1)


def test_p95_is_over_the_window_only() -> None:
    window = ObservationWindow(window_s=60, slots=6)
    # 100 slow observations long ago, then 1..100 ms spread over the last minute.
    for _ in range(100):
        window.observe("db_query", 9.0, now=T0)
    now = T0 + 500
    for i in range(1, 101):
        window.observe("db_query", i / 1000, now=now - 50 + i * 0.4)
    count, p95 = window.percentile("db_query", 0.95, now)
    assert count == 100
    assert p95 == pytest.approx(0.095)  # nearest rank: the 95th of 100 sorted values
    assert window.percentile("db_query", 0.50, now)[1] == pytest.approx(0.050)
    assert window.percentile("feed", 0.95, now) == (0, None)


def test_a_full_slot_keeps_a_weighted_sample_and_the_true_count() -> None:
    window = ObservationWindow(window_s=10, slots=1, samples_per_slot=50, seed=7)
    for i in range(1000):
        window.observe("feed", 1.0 if i % 2 else 0.001, now=T0)
    count, p95 = window.percentile("feed", 0.95, T0)
    assert count == 1000
    assert p95 == 1.0  # half the observations are 1 s: any sample's p95 is 1 s


def test_weighted_percentile_nearest_rank() -> None:
    assert weighted_percentile([], 0.95) is None
    assert weighted_percentile([(float(v), 1.0) for v in range(1, 21)], 0.95) == 19.0
    assert weighted_percentile([(1.0, 1.0), (5.0, 3.0)], 0.5) == 5.0


def test_minimum_samples_before_a_latency_rule_fires() -> None:
    window = ObservationWindow(window_s=300)
    rules = AlertEvaluator(AlertThresholds(feed_p95_s=1.0, min_samples=3), window)
    window.observe("feed", 5.0, now=T0)
    window.observe("feed", 5.0, now=T0)
    feed = by_name(rules.evaluate(T0 + 1))["feed_latency_p95"]
    assert feed.state == "no_data" and feed.value == 5.0 and feed.samples == 2
    assert feed.min_samples == 3 and feed.since is None
    window.observe("feed", 5.0, now=T0 + 2)
    feed = by_name(rules.evaluate(T0 + 3))["feed_latency_p95"]
    assert feed.state == "firing" and feed.since == T0 + 3


def test_firing_since_is_kept_then_resolved_then_fresh() -> None:
    window = ObservationWindow(window_s=60, slots=6)
    rules = AlertEvaluator(AlertThresholds(db_query_p95_s=0.5, min_samples=2), window)
    assert by_name(rules.evaluate(T0))["db_query_latency_p95"].state == "no_data"
    window.observe("db_query", 0.9, now=T0)
    window.observe("db_query", 0.8, now=T0)
    first = by_name(rules.evaluate(T0 + 1))["db_query_latency_p95"]
    assert (first.state, first.since, first.value) == ("firing", T0 + 1, 0.9)
    still = by_name(rules.evaluate(T0 + 30))["db_query_latency_p95"]
    assert (still.state, still.since) == ("firing", T0 + 1)
    # Fast statements arrive; the slow ones age out: resolved.
    for _ in range(10):
        window.observe("db_query", 0.001, now=T0 + 40)
    resolved = by_name(rules.evaluate(T0 + 61))["db_query_latency_p95"]
    assert (resolved.state, resolved.since, resolved.samples) == ("ok", None, 10)
    # Slow again: a new episode with a new `since`.
    for _ in range(40):
        window.observe("db_query", 2.0, now=T0 + 70)
    again = by_name(rules.evaluate(T0 + 71))["db_query_latency_p95"]
    assert (again.state, again.since) == ("firing", T0 + 71)


def test_error_rate_counts_5xx_only() -> None:
    window = ObservationWindow(window_s=60, slots=6)
    rules = AlertEvaluator(AlertThresholds(error_rate=0.01, min_samples=10), window)
    for status in [200] * 50 + [404] * 30 + [422] * 19:
        window.request(status, now=T0)
    ok = by_name(rules.evaluate(T0 + 1))["error_rate"]
    assert (ok.state, ok.value, ok.samples) == ("ok", 0.0, 99)
    window.request(503, now=T0 + 2)
    at_threshold = by_name(rules.evaluate(T0 + 3))["error_rate"]
    # Exactly 1 % is the threshold, and "> 1 %" fires only above it.
    assert at_threshold.state == "ok" and at_threshold.value == pytest.approx(1 / 100)
    window.request(500, now=T0 + 4)
    firing = by_name(rules.evaluate(T0 + 5))["error_rate"]
    assert firing.state == "firing" and firing.value == pytest.approx(2 / 101)
    assert firing.since == T0 + 5
    assert by_name(rules.evaluate(T0 + 100))["error_rate"].state == "no_data"


def test_cache_hit_rate_is_the_delta_since_the_window_start() -> None:
    counts = [0, 0]
    window = ObservationWindow(window_s=60, slots=6)
    rules = AlertEvaluator(
        AlertThresholds(cache_hit_rate_min=0.7, min_samples=10),
        window,
        cache_counts=lambda: (counts[0], counts[1]),
    )
    # Lifetime counts before the window: many misses, never seen by the window.
    counts[:] = [0, 1000]
    window.sample_counters(now=T0)  # what the middleware does on each request
    cache = by_name(rules.evaluate(T0 + 1))["cache_hit_rate"]
    assert (cache.state, cache.samples, cache.value) == ("no_data", 0, None)
    counts[:] = [90, 1010]  # 90 hits, 10 misses since the window's first snapshot
    cache = by_name(rules.evaluate(T0 + 20))["cache_hit_rate"]
    assert (cache.state, cache.samples, cache.value) == ("ok", 100, 0.9)
    # Later slots snapshot again; once the first slot leaves, only new lookups count.
    for t in range(30, 90, 10):
        window.sample_counters(now=T0 + t)
    counts[:] = [95, 1030]  # since the snapshot at T0+30 (90, 1010): 5 hits, 20 misses
    cache = by_name(rules.evaluate(T0 + 85))["cache_hit_rate"]
    assert (cache.state, cache.samples, cache.value) == ("firing", 25, 0.2)


def test_a_reset_counter_counts_from_zero() -> None:
    counts = [500, 500]
    window = ObservationWindow(window_s=60, slots=6)
    rules = AlertEvaluator(
        AlertThresholds(min_samples=1), window, cache_counts=lambda: (counts[0], counts[1])
    )
    window.sample_counters(now=T0)
    counts[:] = [1, 3]  # caches cleared: the counters restarted
    cache = by_name(rules.evaluate(T0 + 5))["cache_hit_rate"]
    assert cache.samples == 4 and cache.value == 0.25


def test_memory_is_a_point_reading() -> None:
    rss = [100.0]
    rules = AlertEvaluator(
        AlertThresholds(memory_bytes=1000), ObservationWindow(), memory_bytes=lambda: rss[0]
    )
    memory = by_name(rules.evaluate(T0))["process_memory"]
    assert (memory.state, memory.value, memory.samples, memory.severity) == (
        "ok",
        100.0,
        None,
        "high",
    )
    rss[0] = 2000.0
    assert by_name(rules.evaluate(T0 + 1))["process_memory"].state == "firing"
    no_probe = AlertEvaluator(AlertThresholds(), ObservationWindow())
    assert by_name(no_probe.evaluate(T0))["process_memory"].state == "no_data"


def test_every_rule_reports_its_threshold_window_and_severity() -> None:
    thresholds = AlertThresholds(
        feed_p95_s=1.0,
        memory_bytes=float(1 << 30),
        cache_hit_rate_min=0.7,
        db_query_p95_s=0.5,
        error_rate=0.01,
    )
    statuses = AlertEvaluator(thresholds, ObservationWindow(window_s=120)).evaluate(T0)
    assert [(s.name, s.threshold, s.severity) for s in statuses] == [
        ("feed_latency_p95", 1.0, "medium"),
        ("process_memory", float(1 << 30), "high"),
        ("cache_hit_rate", 0.7, "medium"),
        ("db_query_latency_p95", 0.5, "medium"),
        ("error_rate", 0.01, "high"),
    ]
    assert all(s.window_s == 120 and s.state == "no_data" for s in statuses)
    assert "over the last 120 s" in statuses[0].expression


def test_an_observation_older_than_its_ring_slot_is_dropped() -> None:
    window = ObservationWindow(window_s=10, slots=2)
    window.observe("feed", 1.0, now=T0 + 10)  # slot epoch 202, ring position 0
    window.observe("feed", 9.0, now=T0)  # epoch 200, same position: older, dropped
    assert window.percentile("feed", 0.95, T0 + 10) == (1, 1.0)
