"""Re-rank a user's first feed page right after they interact, off the request path.

An interaction invalidates the user's cached feed, and people usually look at
their feed next: computing it then, on one background thread, turns that next
request from a ~20-60 ms ranking into a cache hit. The refresh goes through
`DiscoveryService` (so experiment variants apply and the cache key matches) but
records no exposure: nobody has seen that page yet. Only the server starts the
refresher; bulk imports in the CLI do not rank feeds nobody asked for.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

from metamedia.services.discovery import DiscoveryService
from metamedia.services.users import UserChange

log = logging.getLogger(__name__)


class FeedRefresher:
    def __init__(self, discovery: DiscoveryService, limit: int = 20) -> None:
        self.discovery = discovery
        self.limit = limit
        self._pending: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.refreshed = 0

    def start(self) -> None:
        with self._wake:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="feed-refresh", daemon=True)
            self._thread.start()

    @property
    def running(self) -> bool:
        """Started (by `serve`): this process ranks feeds ahead of requests."""
        return self._thread is not None

    def stop(self, timeout_s: float = 10.0) -> None:
        with self._wake:
            thread, self._thread = self._thread, None
            self._stopping = True
            self._pending.clear()
            self._wake.notify_all()
        if thread is not None:
            thread.join(timeout_s)

    def user_changed(self, change: UserChange) -> None:
        """Hook for `UserService.on_change`; a user queued twice is ranked once."""
        with self._wake:
            if self._thread is None:
                return
            self._pending[(change.tenant, change.user)] = None
            self._pending.move_to_end((change.tenant, change.user))
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
                (tenant, user), _ = self._pending.popitem(last=False)
            try:
                self.discovery.feed(tenant, user, self.limit, expose=False)
                self.refreshed += 1
            except Exception:  # a failed refresh only means the next request ranks it
                log.exception("feed refresh failed")
