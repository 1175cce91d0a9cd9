"""What end users and anonymous callers may write: small batches, at a human pace.

Interactions feed trending, the feed and experiment outcomes. A back end holding
a key imports history in large batches and is trusted to; a device (a user
token, or anonymous where a deployment opens writes) is one person, and nobody
clicks 5,000 times in one request. So untrusted batches are capped
(`untrusted_event_batch`, 422 past it) and each user's events are counted per
minute (`user_event_rate`, 429 with Retry-After past it), whoever sends them.
Trending also counts distinct users, so what does get through is one voice.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from starlette.requests import HTTPConnection

from metamedia.errors import InvalidRequestError, RateLimitedError
from metamedia.services.access import Caller
from metamedia.services.rate_limits import limiter_for
from metamedia.services.runtime import Runtime

NAMESPACE = "user-events"


class EventGate:
    """Admits a batch of events for one user, or says why not."""

    def __init__(
        self, max_batch: int, per_user: str, redis_url: str | None = None, database_url: str = ""
    ) -> None:
        self.max_batch = max_batch
        self.per_user: RateLimitItem = parse(per_user)
        self.limiter = limiter_for(redis_url, database_url)  # shared by replicas with Redis

    def admit(self, caller: Caller, tenant: str, user: str, count: int) -> None:
        """Raise when an untrusted caller sends too many events at once or too fast."""
        if caller.kind == "key" or count == 0:
            return
        if count > self.max_batch:
            raise InvalidRequestError(
                f"a batch from an end user or anonymous caller holds at most {self.max_batch} "
                f"events, got {count}: send fewer, or import history from a back end with a "
                "`write` key",
                field="events",
            )
        self.pace(tenant, user, count)

    def pace(self, tenant: str, user: str, count: int) -> None:
        """Count `count` events against the user's per-minute allowance (429 past it)."""
        who = f"{tenant}\x1f{user}"
        if self.limiter.hit(self.per_user, NAMESPACE, who, cost=count):
            return
        reset = self.limiter.get_window_stats(self.per_user, NAMESPACE, who).reset_time
        retry_after = max(1, math.ceil(reset - time.time()))
        raise RateLimitedError(
            f"user {user!r} sent more than {self.per_user.amount} events per "
            f"{self.per_user.get_expiry()} s: retry after {retry_after} s",
            retry_after=retry_after,
        )


def event_gate(conn: HTTPConnection) -> EventGate:
    """The app's gate (one per process), made on first use from the runtime's settings."""
    state = conn.app.state
    gate = getattr(state, "event_gate", None)
    if not isinstance(gate, EventGate):
        runtime: Runtime = state.runtime
        settings = runtime.settings
        gate = EventGate(
            settings.untrusted_event_batch,
            settings.user_event_rate,
            settings.redis_url,
            settings.resolved_database_url,
        )
        state.event_gate = gate
    return gate
