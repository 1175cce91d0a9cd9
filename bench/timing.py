"""Timing and summary helpers shared by every benchmark section.

Every section reports percentiles computed the same way (numpy's linear
interpolation over the raw samples, no trimming), so numbers from different
sections and runs are comparable. Samples are kept raw until summarised.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Summary:
    """Distribution of one set of samples, in the unit they were taken in."""

    n: int
    mean: float
    p50: float
    p95: float
    p99: float
    min: float
    max: float

    def as_dict(self) -> dict[str, float]:
        return {k: (float(v) if k != "n" else v) for k, v in asdict(self).items()}


def summarize(samples: Sequence[float]) -> Summary:
    """Percentiles of raw samples; an empty list gives NaNs rather than raising."""
    if not samples:
        nan = float("nan")
        return Summary(0, nan, nan, nan, nan, nan, nan)
    arr = np.asarray(samples, dtype=np.float64)
    p50, p95, p99 = (float(x) for x in np.percentile(arr, [50, 95, 99]))
    return Summary(
        int(arr.shape[0]), float(arr.mean()), p50, p95, p99, float(arr.min()), float(arr.max())
    )


def time_calls_us(fn: Callable[[], object], reps: int, warmup: int = 10) -> list[float]:
    """Per-call wall time in microseconds; warm-up calls are run and discarded."""
    for _ in range(warmup):
        fn()
    samples: list[float] = []
    clock = time.perf_counter_ns
    for _ in range(reps):
        start = clock()
        fn()
        samples.append((clock() - start) / 1000.0)
    return samples


class Stopwatch:
    """`with Stopwatch() as sw: ...; sw.seconds` for coarse phases (builds, ingests)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._start = 0.0

    def __enter__(self) -> Stopwatch:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.seconds = time.perf_counter() - self._start
