"""Named errors shared by every layer.

Each error carries enough context (what, where, why) for the CLI to print it
and for the API to map it to one HTTP status in one place.
"""

from __future__ import annotations


class MetaMediaError(Exception):
    """Base class: every error the product raises on purpose."""

    status_code = 500

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidRequestError(MetaMediaError):
    """A caller sent parameters that cannot be honoured (bad range, unknown filter...)."""

    status_code = 422


class NotFoundError(MetaMediaError):
    """The named resource does not exist (or is not visible to this tenant)."""

    status_code = 404


class ValidationFailed(MetaMediaError):
    """A catalog row failed validation; `reason` says which field and why."""

    status_code = 422


class FormatError(MetaMediaError):
    """A whole input file cannot be read in the requested format."""

    status_code = 400


class IndexUnavailableError(MetaMediaError):
    """An index is missing or unreadable; rebuild it from the relational store."""

    status_code = 503


class StoreUnavailableError(MetaMediaError):
    """The database does not answer (stopped, restarting, unreachable): try again soon.

    Answered as 503 with Retry-After; the service reconnects by itself when the
    database is back, so nothing needs restarting.
    """

    status_code = 503
    retry_after = 5


class StaleMaskError(IndexUnavailableError):
    """A filter mask was made for an index that has since been rebuilt: its positions
    mean other items now. Retrying the query computes a fresh mask."""


class RateLimitedError(MetaMediaError):
    """The caller (a user, a key, an IP) spent its allowance; `retry_after` seconds."""

    status_code = 429

    def __init__(self, message: str, *, retry_after: int, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.retry_after = retry_after


class AuthenticationError(MetaMediaError):
    """No API key, or one that is unknown or revoked."""

    status_code = 401


class PermissionDeniedError(MetaMediaError):
    """The key is valid but lacks the scope the endpoint needs."""

    status_code = 403
