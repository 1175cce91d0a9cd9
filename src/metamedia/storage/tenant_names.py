"""Tenant names inside file names (and any other flat namespace): collision-free.

Replacing unsafe characters is not enough: `acme.com`, `acme_com` and `acme/com`
all became `acme_com`, so the tenants shared one themes file and training one
overwrote the other. A name is percent-encoded (injective, and readable for
plain names) and suffixed with a digest of the exact name, so two tenants that
differ only in case still differ on case-insensitive file systems.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import quote

_LEGACY_SAFE = re.compile(r"^[A-Za-z0-9-]+$")


def tenant_key(tenant: str) -> str:
    """A file-name-safe, collision-free encoding of `tenant`."""
    readable = quote(tenant, safe="-")
    digest = hashlib.sha256(tenant.encode("utf-8")).hexdigest()[:12]
    return f"{readable}.{digest}"


def legacy_tenant_key(tenant: str) -> str | None:
    """The name older versions used, where it could belong to no other tenant
    (letters, digits and '-': nothing was replaced); None otherwise."""
    return tenant if _LEGACY_SAFE.match(tenant) else None
