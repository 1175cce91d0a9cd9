"""Which bucket a request counts against, for budgets and abuse limits.

Budgets (GraphQL cost per minute, event batch sizes, per-user write rates) must
follow who is really calling: a verified key, a verified end-user token, or
else the client IP. A made-up key or token falls back to the IP, so inventing
credentials never buys a fresh budget.

Unlike `api.access.caller_of`, this never refuses: a bad credential is a 401
there, and here simply the IP's bucket, so the guard can count it before any
handler runs. It only uses the key and token checks `KeyService` has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from metamedia.services.access import Caller
from metamedia.services.runtime import Runtime

BucketKind = Literal["key", "user", "anonymous"]


@dataclass(frozen=True)
class Bucket:
    """`kind` decides the budget; `id` names the bucket (never a secret)."""

    kind: BucketKind
    id: str
    tenant: str | None = None
    user: str | None = None

    @property
    def trusted(self) -> bool:
        """A back-end holding a key: may send large batches and see experiment variants."""
        return self.kind == "key"


def presented_secret(headers: dict[str, str]) -> str | None:
    """The bearer credential (key or user token), from lower-cased headers."""
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return headers.get("x-api-key") or None


def bucket_for(caller: Caller, client_host: str | None) -> Bucket:
    """The bucket of a caller `api.access` already resolved (no second verification)."""
    if caller.kind == "key" and caller.key is not None:
        return Bucket("key", f"key:{caller.key.actor}")
    if caller.kind == "user" and caller.user is not None:
        return Bucket("user", f"user:{caller.tenant}\x1f{caller.user}", caller.tenant, caller.user)
    return Bucket("anonymous", f"ip:{client_host or 'unknown'}")


def bucket_of(runtime: Runtime | None, headers: dict[str, str], client_host: str | None) -> Bucket:
    """The caller's bucket: a verified key, a verified user token, or the client IP."""
    secret = presented_secret(headers)
    if runtime is not None and secret:
        principal = runtime.keys.verify(secret)
        if principal is not None:
            return Bucket("key", f"key:{principal.actor}")
        token = runtime.keys.verify_user_token(secret)
        if token is not None:
            return Bucket("user", f"user:{token.tenant}\x1f{token.user}", token.tenant, token.user)
    return Bucket("anonymous", f"ip:{client_host or 'unknown'}")
