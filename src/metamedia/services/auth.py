"""API keys: minted once, stored as digests, checked per request.

Keys are 32 random bytes, so a fast digest (SHA-256) is enough at rest: there is
no dictionary to attack, and verification stays far under a millisecond. Verified
digests are remembered briefly so a hot key costs no query; revocation therefore
takes effect within `VERIFY_CACHE_S` in every process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metamedia.errors import InvalidRequestError, NotFoundError
from metamedia.storage.memory_cache import TTLCache
from metamedia.storage.records import AuditEntry, KeyRecord
from metamedia.storage.roles import AuditLog, KeyStore

SCOPES = frozenset({"read", "write", "admin"})
DEFAULT_TENANT = "default"
MAX_TENANT_CHARS = 64
VERIFY_CACHE_S = 5.0
BOOTSTRAP_NAME = "bootstrap-admin"
USER_TOKEN = "user-token"


@dataclass(frozen=True)
class Principal:
    """A verified API key: its id and name (never the key itself), its scopes, and the
    one tenant it acts for (None: a platform key, which may name any tenant)."""

    key_id: int | None
    name: str
    scopes: frozenset[str]
    tenant: str | None = None

    @property
    def platform(self) -> bool:
        return self.tenant is None

    def allows(self, scope: str) -> bool:
        # admin implies write implies read
        ladder = {"read": 0, "write": 1, "admin": 2}
        return any(ladder[s] >= ladder[scope] for s in self.scopes if s in ladder)

    @property
    def actor(self) -> str:
        return self.name if self.key_id is None else f"{self.name}#{self.key_id}"


def check_tenant(tenant: str) -> str:
    """A tenant name as keys and tokens carry it: 1-64 printable, non-blank characters."""
    if not tenant or len(tenant) > MAX_TENANT_CHARS or not tenant.isprintable():
        raise InvalidRequestError(
            f"tenant must be 1-{MAX_TENANT_CHARS} printable characters", field="tenant"
        )
    if tenant != tenant.strip():
        raise InvalidRequestError("tenant must not start or end with spaces", field="tenant")
    return tenant


@dataclass(frozen=True)
class IssuedKey:
    record: KeyRecord
    secret: str  # shown once to the operator, never stored


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class UserToken:
    tenant: str
    user: str
    expires: float


class KeyService:
    def __init__(
        self,
        keys: KeyStore,
        audit: AuditLog,
        bootstrap: str | None = None,
        secret_file: Path | None = None,
    ) -> None:
        self.keys = keys
        self.audit = audit
        self._secret_file = secret_file
        self._signing_key: bytes | None = None
        self._bootstrap = digest(bootstrap) if bootstrap else None
        self._verified: TTLCache[Principal] = TTLCache(10_000, VERIFY_CACHE_S)

    @property
    def configured(self) -> bool:
        """False until someone sets an admin key or creates one: writes are then refused."""
        return self._bootstrap is not None or any(k.revoked_at is None for k in self.keys.all())

    def create(
        self,
        name: str,
        scopes: list[str],
        actor: str = "cli",
        tenant: str | None = DEFAULT_TENANT,
    ) -> IssuedKey:
        """Mint a key for `tenant` (None: a platform key that may name any tenant)."""
        name = name.strip()
        if tenant is not None:
            tenant = check_tenant(tenant)
        if not name or len(name) > 128:
            raise InvalidRequestError("key name must be 1-128 characters")
        unknown = sorted(set(scopes) - SCOPES)
        if unknown or not scopes:
            raise InvalidRequestError(
                f"scopes must be a non-empty subset of {sorted(SCOPES)}; unknown: {unknown}"
            )
        prefix = secrets.token_hex(4)
        secret = f"mm_{prefix}_{secrets.token_urlsafe(32)}"
        record = self.keys.add(name, prefix, digest(secret), frozenset(scopes), tenant)
        detail = {"name": name, "scopes": scopes, "tenant": tenant}
        self.audit.record(actor, "key.create", f"key#{record.pk}", detail)
        return IssuedKey(record, secret)

    def revoke(self, key_id: int, actor: str = "cli") -> None:
        if not self.keys.revoke(key_id):
            raise NotFoundError(f"no active API key with id {key_id}")
        self._verified.clear()
        self.audit.record(actor, "key.revoke", f"key#{key_id}", {})

    def all(self) -> list[KeyRecord]:
        return self.keys.all()

    def verify(self, secret: str) -> Principal | None:
        """The caller's principal, or None for an unknown or revoked key."""
        if not secret or len(secret) > 256:
            return None
        hashed = digest(secret)
        cached = self._verified.get(hashed)
        if cached is not None:
            return cached
        principal: Principal | None = None
        if self._bootstrap is not None and secrets.compare_digest(hashed, self._bootstrap):
            principal = Principal(None, BOOTSTRAP_NAME, frozenset({"admin"}))
        else:
            record = self.keys.by_digest(hashed)
            if record is not None and record.revoked_at is None:
                principal = Principal(record.pk, record.name, record.scopes, record.tenant)
        if principal is not None:
            self._verified.set(hashed, principal)
        return principal

    def get(self, key_id: int) -> KeyRecord | None:
        return self.keys.by_pk(key_id)

    def fingerprint(self, principal: Principal) -> str | None:
        """A short value that changes whenever the key behind `principal` does: a
        session opened with a key carries it and ends when it no longer matches
        (the bootstrap key changed in the environment, or the key was revoked)."""
        if principal.key_id is None:
            if principal.name != BOOTSTRAP_NAME or self._bootstrap is None:
                return None
            basis = f"bootstrap:{self._bootstrap}"
        else:
            record = self.keys.by_pk(principal.key_id)
            if record is None or record.revoked_at is not None:
                return None
            basis = f"key:{record.pk}:{record.prefix}:{record.tenant}:{sorted(record.scopes)}"
        mac = hmac.new(self.derived_key("key-fingerprint"), basis.encode(), hashlib.sha256)
        return mac.hexdigest()[:32]

    def record(self, actor: str, action: str, target: str, detail: dict[str, Any]) -> AuditEntry:
        """Append to the audit log (flags, experiments, keys, cache clears)."""
        return self.audit.record(actor, action, target, detail)

    def history(self, limit: int = 100, action_prefix: str | None = None) -> list[AuditEntry]:
        return self.audit.recent(limit, action_prefix)

    # -- user tokens ------------------------------------------------------------

    def issue_user_token(self, tenant: str, user: str, ttl_s: float = 3600.0) -> str:
        """A token that proves one end user of one tenant: the device sends it as
        `Authorization: Bearer` (REST, GraphQL) or in the WebSocket `auth` message and
        acts as that user only. A back end holding a `write` key for the tenant mints
        it, so devices never hold keys."""
        return self.seal(USER_TOKEN, {"t": tenant, "u": user}, ttl_s)

    def verify_user_token(self, token: str) -> UserToken | None:
        claims = self.unseal(USER_TOKEN, token)
        if claims is None or not isinstance(claims.get("t"), str):
            return None
        if not isinstance(claims.get("u"), str):
            return None
        return UserToken(claims["t"], claims["u"], float(claims["exp"]))

    def derived_key(self, purpose: str) -> bytes:
        """A secret for one purpose (CSRF tokens, web sessions), the same in every
        process on this data directory, so several workers accept each other's tokens."""
        return hmac.new(self._key(), purpose.encode(), hashlib.sha256).digest()

    def seal(self, purpose: str, claims: dict[str, Any], ttl_s: float) -> str:
        """A signed, expiring token carrying `claims` (readable, not secret)."""
        body = {**claims, "exp": round(time.time() + ttl_s)}
        payload = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
        mac = hmac.new(self.derived_key(purpose), payload.encode(), hashlib.sha256).digest()
        return f"{payload}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"

    def unseal(self, purpose: str, token: str | None) -> dict[str, Any] | None:
        """The claims of a genuine, unexpired `seal` token, else None."""
        if not token or len(token) > 2048:
            return None
        payload, _, signature = token.partition(".")
        mac = hmac.new(self.derived_key(purpose), payload.encode(), hashlib.sha256).digest()
        expected = base64.urlsafe_b64encode(mac).decode().rstrip("=")
        if not payload or not hmac.compare_digest(signature, expected):
            return None
        try:
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except ValueError:
            return None
        if not isinstance(claims, dict) or float(claims.get("exp", 0)) <= time.time():
            return None
        return claims

    def _key(self) -> bytes:
        """The signing key: shared by every process on this data directory, made once."""
        if self._signing_key is None:
            if self._secret_file is None:
                self._signing_key = secrets.token_bytes(32)
            else:
                self._signing_key = _load_or_create_secret(self._secret_file)
        return self._signing_key


def _load_or_create_secret(path: Path) -> bytes:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = secrets.token_bytes(32)
        try:
            with open(path, "xb") as handle:  # another process may win the race
                handle.write(fresh)
            path.chmod(0o600)
        except FileExistsError:
            pass
    return path.read_bytes()
