"""Per-caller GraphQL cost budgets: cost units per minute, per key, user or IP.

The per-document cost limit stops one huge request; it does not stop the same
dear-but-allowed request sent 100 times a minute. The REST rate limit counts
requests, and one GraphQL request can cost a hundred REST requests' work. So
every admitted document is charged its cost to its caller's bucket, and once a
bucket is spent the document is refused with 429 and `Retry-After`, during
validation, before any resolver runs.

Keys are back ends that serve many users, so they get a larger budget than an
end user's token or an anonymous IP.
"""

from __future__ import annotations

import math
import time
from typing import Any

from graphql import GraphQLError
from limits import RateLimitItem, RateLimitItemPerMinute

from metamedia.api.buckets import Bucket, BucketKind, bucket_for, bucket_of
from metamedia.services.access import Caller
from metamedia.services.rate_limits import limiter_for

BUDGET_SPENT = "CostBudgetExceeded"
NAMESPACE = "graphql-cost"


class CostBudget:
    """Sliding-window counters of cost units, one per caller (in this process)."""

    def __init__(
        self,
        per_minute: int,
        key_per_minute: int,
        redis_url: str | None = None,
        database_url: str = "",
    ) -> None:
        self.items: dict[BucketKind, RateLimitItem] = {
            "anonymous": RateLimitItemPerMinute(per_minute),
            "user": RateLimitItemPerMinute(per_minute),
            "key": RateLimitItemPerMinute(key_per_minute),
        }
        self.limiter = limiter_for(redis_url, database_url)  # shared by replicas with Redis

    def charge(self, caller: Bucket, cost: int) -> int | None:
        """Count `cost` against the caller; seconds to wait when it does not fit, else None."""
        item = self.items[caller.kind]
        # A document may never cost more than a whole budget, or it could never run.
        if self.limiter.hit(item, NAMESPACE, caller.id, cost=min(cost, item.amount)):
            return None
        reset = self.limiter.get_window_stats(item, NAMESPACE, caller.id).reset_time
        return max(1, math.ceil(reset - time.time()))

    def charge_request(self, context: Any, cost: int) -> GraphQLError | None:
        """Charge the caller behind a GraphQL context; the error (and the HTTP 429 with
        `Retry-After` on the response) when the budget is spent."""
        request = getattr(context, "request", None)
        client = getattr(request, "client", None)
        host = client.host if client else None
        resolved = getattr(context, "caller", None)
        if isinstance(resolved, Caller):
            caller = bucket_for(resolved, host)
        else:
            runtime = getattr(
                getattr(getattr(request, "app", None), "state", None), "runtime", None
            )
            headers = {k.lower(): v for k, v in getattr(request, "headers", {}).items()}
            caller = bucket_of(runtime, headers, host)
        retry_after = self.charge(caller, cost)
        if retry_after is None:
            return None
        response = getattr(context, "response", None)
        if response is not None:
            response.status_code = 429
            response.headers["Retry-After"] = str(retry_after)
        spent = self.items[caller.kind]
        return GraphQLError(
            f"this operation costs {cost}; the budget of {spent.amount} per minute for "
            f"this {'key' if caller.kind == 'key' else 'caller'} is spent: "
            f"retry after {retry_after} s",
            extensions={
                "code": BUDGET_SPENT,
                "status": 429,
                "cost": cost,
                "budgetPerMinute": spent.amount,
                "retryAfter": retry_after,
            },
        )
