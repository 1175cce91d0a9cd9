"""Alert rules evaluated over a sliding window of this process's recent observations.

The request middleware, the stage timers and the SQL timer feed an
`ObservationWindow`: a ring of time slots (``window_s / slots`` seconds each)
holding latency samples per series, request and 5xx counts, and a snapshot of
each tracked counter (cache hits / misses) taken when the slot opened. A slot is
reused once it falls out of the window, so memory stays bounded and old
observations drop out without a sweep.

`AlertEvaluator.evaluate(now)` turns the window into rule states. It reads
nothing but the window and the two callables it was given, and takes `now`, so
tests drive time by passing it. Latency rules use the 95th percentile over the
window and, like every rule fed by traffic, need `min_samples` observations
before they may fire: with fewer the state is ``no_data``, so one slow request
pages nobody.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

AlertState = Literal["ok", "firing", "no_data"]

DEFAULT_SLOTS = 60
SAMPLES_PER_SLOT = 512
CACHE_COUNTER = "cache"
FEED_SERIES = "feed"
DB_SERIES = "db_query"


class _Reservoir:
    """Samples of one series in one slot: all of them up to `cap`, then a uniform
    random subset (reservoir sampling) while `count` keeps the true number."""

    __slots__ = ("count", "values")

    def __init__(self) -> None:
        self.count = 0
        self.values: list[float] = []

    def add(self, value: float, cap: int, rng: random.Random) -> None:
        self.count += 1
        if len(self.values) < cap:
            self.values.append(value)
            return
        j = rng.randrange(self.count)
        if j < cap:
            self.values[j] = value


class _Slot:
    __slots__ = ("epoch", "requests", "samples", "server_errors", "snapshots")

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.samples: dict[str, _Reservoir] = {}
        self.requests = 0
        self.server_errors = 0
        self.snapshots: dict[str, tuple[float, ...]] = {}


def weighted_percentile(pairs: Sequence[tuple[float, float]], q: float) -> float | None:
    """Nearest-rank percentile of (value, weight) pairs: the smallest value with at
    least a `q` share of the total weight at or below it (exact for unit weights)."""
    if not pairs:
        return None
    ordered = sorted(pairs)
    target = q * sum(w for _, w in ordered)
    cumulative = 0.0
    for value, weight in ordered:
        cumulative += weight
        if cumulative + 1e-9 >= target:
            return value
    return ordered[-1][0]


class ObservationWindow:
    """Recent observations in a ring of time slots; thread safe, O(1) per record."""

    def __init__(
        self,
        window_s: float = 300.0,
        slots: int = DEFAULT_SLOTS,
        samples_per_slot: int = SAMPLES_PER_SLOT,
        seed: int | None = None,
    ) -> None:
        if window_s <= 0 or slots < 1 or samples_per_slot < 1:
            raise ValueError("window_s, slots and samples_per_slot must be positive")
        self.window_s = float(window_s)
        self.slot_s = self.window_s / slots
        self.samples_per_slot = samples_per_slot
        self._ring: list[_Slot | None] = [None] * slots
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._tracked: dict[str, Callable[[], tuple[float, ...]]] = {}

    # -- recording ------------------------------------------------------------

    def _slot(self, now: float) -> _Slot | None:
        """The slot for `now` (opened if its ring position holds an older one); None
        when `now` is older than the slot now in that position. Call under the lock."""
        epoch = math.floor(now / self.slot_s)
        index = epoch % len(self._ring)
        slot = self._ring[index]
        if slot is None or slot.epoch < epoch:
            slot = _Slot(epoch)
            self._ring[index] = slot
        elif slot.epoch > epoch:
            return None
        return slot

    def observe(self, series: str, seconds: float, now: float | None = None) -> None:
        """One latency observation of `series` (a stage name, "db_query")."""
        now = time.time() if now is None else now
        with self._lock:
            slot = self._slot(now)
            if slot is None:
                return
            reservoir = slot.samples.get(series)
            if reservoir is None:
                reservoir = slot.samples[series] = _Reservoir()
            reservoir.add(seconds, self.samples_per_slot, self._rng)

    def request(self, status: int, now: float | None = None) -> None:
        """One HTTP response; 5xx statuses count as errors, 4xx do not (the client's)."""
        now = time.time() if now is None else now
        with self._lock:
            slot = self._slot(now)
            if slot is None:
                return
            slot.requests += 1
            if status >= 500:
                slot.server_errors += 1

    def track(self, name: str, read: Callable[[], tuple[float, ...]]) -> None:
        """Snapshot the counters `read` returns once per slot (see `sample_counters`)."""
        self._tracked[name] = read

    def sample_counters(self, now: float | None = None) -> None:
        """Snapshot each tracked counter not yet snapshotted in the current slot.

        Cheap when nothing is due (one lock, one dict look-up per counter); the
        readers run outside the lock.
        """
        now = time.time() if now is None else now
        with self._lock:
            slot = self._slot(now)
            if slot is None:
                return
            due = [name for name in self._tracked if name not in slot.snapshots]
        if not due:
            return
        values: dict[str, tuple[float, ...]] = {}
        for name in due:
            try:
                values[name] = tuple(float(v) for v in self._tracked[name]())
            except Exception:  # a failing probe must not fail the request
                continue
        with self._lock:
            slot = self._slot(now)
            if slot is None:
                return
            for name, value in values.items():
                slot.snapshots.setdefault(name, value)

    # -- reading --------------------------------------------------------------

    def _live(self, now: float) -> list[_Slot]:
        newest = math.floor(now / self.slot_s)
        oldest = newest - len(self._ring) + 1
        return [s for s in self._ring if s is not None and oldest <= s.epoch <= newest]

    def percentile(self, series: str, q: float, now: float) -> tuple[int, float | None]:
        """(observations in the window, their `q` percentile or None when there are none)."""
        pairs: list[tuple[float, float]] = []
        count = 0
        with self._lock:
            for slot in self._live(now):
                reservoir = slot.samples.get(series)
                if reservoir is None or not reservoir.values:
                    continue
                count += reservoir.count
                weight = reservoir.count / len(reservoir.values)
                pairs.extend((value, weight) for value in reservoir.values)
        return count, weighted_percentile(pairs, q)

    def requests(self, now: float) -> tuple[int, int]:
        """(responses, 5xx responses) in the window."""
        with self._lock:
            live = self._live(now)
            return sum(s.requests for s in live), sum(s.server_errors for s in live)

    def counter_delta(
        self, name: str, current: tuple[float, ...], now: float
    ) -> tuple[float, ...] | None:
        """`current` minus the oldest snapshot of `name` in the window; None without one.

        A counter that went down was reset (a cache cleared by a restart of its
        owner): then everything counted since the reset, `current`, is the delta.
        """
        with self._lock:
            snapshots = sorted(
                (s.epoch, s.snapshots[name]) for s in self._live(now) if name in s.snapshots
            )
        if not snapshots:
            return None
        oldest = snapshots[0][1]
        if len(oldest) != len(current) or any(c < o for c, o in zip(current, oldest, strict=True)):
            return current
        return tuple(c - o for c, o in zip(current, oldest, strict=True))


@dataclass(frozen=True)
class AlertThresholds:
    """Defaults are the seeds' alert thresholds; the service passes its Settings."""

    feed_p95_s: float = 1.0
    memory_bytes: float = float(1 << 30)
    cache_hit_rate_min: float = 0.70
    db_query_p95_s: float = 0.5
    error_rate: float = 0.01
    min_samples: int = 20


@dataclass(frozen=True)
class AlertStatus:
    name: str
    expression: str
    threshold: float
    unit: str
    window_s: float
    value: float | None
    samples: int | None
    min_samples: int | None
    state: AlertState
    since: float | None
    severity: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Reading:
    name: str
    expression: str
    threshold: float
    unit: str
    severity: str
    value: float | None
    samples: int | None  # None: a reading, not a count of observations (memory)
    breached: bool


class AlertEvaluator:
    """The five rules of the seeds over one `ObservationWindow`.

    `cache_counts` returns cumulative (hits, misses) over the caches;
    `memory_bytes` the process's resident memory now. The evaluator remembers
    since when each rule has been firing; a rule that stops firing (ok or no
    data) is resolved and starts afresh the next time.
    """

    def __init__(
        self,
        thresholds: AlertThresholds,
        window: ObservationWindow,
        cache_counts: Callable[[], tuple[int, int]] | None = None,
        memory_bytes: Callable[[], float] | None = None,
    ) -> None:
        self.thresholds = thresholds
        self.window = window
        self._cache_counts = cache_counts
        self._memory_bytes = memory_bytes
        self._since: dict[str, float] = {}
        self._lock = threading.Lock()
        if cache_counts is not None:
            window.track(CACHE_COUNTER, lambda: tuple(float(v) for v in cache_counts()))

    def evaluate(self, now: float) -> list[AlertStatus]:
        t = self.thresholds
        w = self.window
        span = f"over the last {w.window_s:g} s"
        feed_n, feed_p95 = w.percentile(FEED_SERIES, 0.95, now)
        rss = self._read_memory()
        lookups, hit_rate = self._cache_window(now)
        db_n, db_p95 = w.percentile(DB_SERIES, 0.95, now)
        total, errors = w.requests(now)
        error_rate = errors / total if total else None
        readings = [
            _Reading(
                "feed_latency_p95",
                f"p95 of feed generation time {span} > {t.feed_p95_s:g} s",
                t.feed_p95_s,
                "seconds",
                "medium",
                feed_p95,
                feed_n,
                feed_p95 is not None and feed_p95 > t.feed_p95_s,
            ),
            _Reading(
                "process_memory",
                f"resident memory of the process now > {t.memory_bytes:g} bytes",
                t.memory_bytes,
                "bytes",
                "high",
                rss,
                None,
                rss is not None and rss > t.memory_bytes,
            ),
            _Reading(
                "cache_hit_rate",
                f"cache hits / cache lookups {span} < {t.cache_hit_rate_min:g}",
                t.cache_hit_rate_min,
                "ratio",
                "medium",
                hit_rate,
                lookups,
                hit_rate is not None and hit_rate < t.cache_hit_rate_min,
            ),
            _Reading(
                "db_query_latency_p95",
                f"p95 of database statement time {span} > {t.db_query_p95_s:g} s",
                t.db_query_p95_s,
                "seconds",
                "medium",
                db_p95,
                db_n,
                db_p95 is not None and db_p95 > t.db_query_p95_s,
            ),
            _Reading(
                "error_rate",
                f"5xx responses / all responses {span} > {t.error_rate:g}",
                t.error_rate,
                "ratio",
                "high",
                error_rate,
                total,
                error_rate is not None and error_rate > t.error_rate,
            ),
        ]
        with self._lock:
            return [self._status(r, now) for r in readings]

    def _status(self, r: _Reading, now: float) -> AlertStatus:
        """The rule's state; call under the lock (it moves the firing-since record)."""
        minimum = self.thresholds.min_samples
        enough = r.samples is None or r.samples >= minimum
        state: AlertState = "ok"
        if r.value is None or not enough:
            state = "no_data"
        elif r.breached:
            state = "firing"
        since = None
        if state == "firing":
            since = self._since.setdefault(r.name, now)
        else:
            self._since.pop(r.name, None)
        return AlertStatus(
            name=r.name,
            expression=r.expression,
            threshold=r.threshold,
            unit=r.unit,
            window_s=self.window.window_s,
            value=r.value,
            samples=r.samples,
            min_samples=None if r.samples is None else minimum,
            state=state,
            since=since,
            severity=r.severity,
        )

    def _read_memory(self) -> float | None:
        if self._memory_bytes is None:
            return None
        try:
            return float(self._memory_bytes())
        except Exception:
            return None

    def _cache_window(self, now: float) -> tuple[int | None, float | None]:
        """(lookups, hit rate) between the window's oldest snapshot and now."""
        if self._cache_counts is None:
            return None, None
        try:
            current = tuple(float(v) for v in self._cache_counts())
        except Exception:
            return None, None
        delta = self.window.counter_delta(CACHE_COUNTER, current, now)
        self.window.sample_counters(now)
        if delta is None:
            return 0, None
        hits, misses = delta
        lookups = int(hits + misses)
        return lookups, (hits / lookups if lookups else None)
