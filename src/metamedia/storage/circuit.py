"""A circuit breaker for optional shared services (Redis).

A shared cache that is down must cost each request nothing, not a socket
timeout: after a failure the breaker opens and callers skip the service for a
cool-down, then one caller probes it (half-open) while the others keep
skipping. The cool-down doubles while probes fail, up to a ceiling, and a
success closes the breaker, so recovery needs no operator.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class CircuitBreaker:
    def __init__(
        self,
        cooldown_s: float = 0.5,
        max_cooldown_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cooldown_s = cooldown_s
        self.max_cooldown_s = max_cooldown_s
        self._clock = clock
        self._lock = threading.Lock()
        self._open_until = 0.0
        self._current = cooldown_s
        self._failing = False
        self.failures = 0
        self.skipped = 0
        self.last_error = ""

    @property
    def healthy(self) -> bool:
        """False from a failure until a call succeeds again."""
        return not self._failing

    def allow(self) -> bool:
        """May the caller try the service now? While open: no, except one probe per
        cool-down (the caller that gets True while failing is that probe)."""
        with self._lock:
            if not self._failing:
                return True
            now = self._clock()
            if now < self._open_until:
                self.skipped += 1
                return False
            self._open_until = now + self._current  # others keep skipping during the probe
            return True

    def succeeded(self) -> None:
        if not self._failing:
            return
        with self._lock:
            self._failing = False
            self._current = self.cooldown_s
            self._open_until = 0.0

    def failed(self, error: BaseException) -> None:
        with self._lock:
            self.failures += 1
            self.last_error = type(error).__name__
            if self._failing:
                self._current = min(self._current * 2, self.max_cooldown_s)
            self._failing = True
            self._open_until = self._clock() + self._current
