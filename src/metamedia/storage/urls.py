"""Database URLs as they may be shown: in logs, errors, `stats` and CLI output."""

from __future__ import annotations


def redact_url(url: str) -> str:
    """The URL with any password masked (`scheme://user:***@host/db`)."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}{sep}{userinfo.split(':', 1)[0]}:***@{host}"
