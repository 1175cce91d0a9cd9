"""Which peers may say who the client is (`X-Forwarded-For`): none unless configured.

uvicorn trusts `X-Forwarded-For` from 127.0.0.1 by default. Behind no proxy, that
let any local process (or anything a local reverse proxy passes through
unchanged) pick a fresh client IP per request and escape the per-IP rate limit
and the anonymous GraphQL budget. So `serve` trusts no proxy unless told which
addresses are proxies (`--forwarded-allow-ips`, `METAMEDIA_FORWARDED_ALLOW_IPS`).
"""

from __future__ import annotations

from typing import Any


def proxy_options(forwarded_allow_ips: str | None) -> dict[str, Any]:
    """uvicorn settings: honour forwarded headers only from the listed proxy addresses
    (comma-separated IPs or networks, `*` for any); none when empty."""
    trusted = (forwarded_allow_ips or "").strip()
    if not trusted:
        return {"proxy_headers": False, "forwarded_allow_ips": ""}
    return {"proxy_headers": True, "forwarded_allow_ips": trusted}
