"""Who is calling, for which tenant, and what they may do: one policy for every interface.

Every request (REST, GraphQL, WebSocket, web page) resolves to exactly one caller:

- a tenant key: an API key bound to one tenant (scopes read < write < admin);
- a platform key: an API key bound to no tenant, which names one with `X-Tenant`;
- an end user: a signed, expiring token naming a tenant and a user, minted by a key
  with `write` on that tenant (`POST /v1/users/{id}/token`);
- anonymous: what `METAMEDIA_ANONYMOUS` allows, in the default tenant only.

The tenant comes from the caller, never from what it claims: a claimed tenant that
differs from the caller's is refused, except from a platform key. An end user is
proven, never claimed: a named user (`X-User`, `?user=`, GraphQL `user:`) is accepted
from a key, which acts on that user's behalf; a user token may only name itself;
anonymous callers may name one only in the demo's `open` mode.

This module is pure policy (no HTTP): the interfaces gather the credentials and
claims, `resolve` turns them into a `Caller`, and `check` applies a route's rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from metamedia.errors import AuthenticationError, PermissionDeniedError
from metamedia.services.auth import Principal, UserToken, check_tenant

AnonymousMode = Literal["off", "read", "open"]
CallerKind = Literal["key", "user", "anonymous"]
MAX_USER_CHARS = 256


class Access(StrEnum):
    """The access rules a route can declare (see `metamedia.api.access.RULES`)."""

    PUBLIC = "public"  # no caller needed: probes, metrics, API docs
    CATALOG_READ = "catalog_read"  # public items; private ones only for their proven viewer
    USER_READ = "user_read"  # a user's profile, preferences, history, favorites, feed
    USER_WRITE = "user_write"  # a user's profile, preferences and interactions
    USER_EXPORT = "user_export"  # everything held about a user (GDPR access)
    USER_ERASE = "user_erase"  # erase a user (GDPR erasure)
    TOKEN_ISSUE = "token_issue"  # mint a user token for a device
    CATALOG_WRITE = "catalog_write"  # create, replace, delete items
    TENANT_ADMIN = "tenant_admin"  # the tenant's own API keys
    PLATFORM_ADMIN = "platform_admin"  # flags, experiments, alerts, caches, audit log
    GRAPHQL = "graphql"  # caller resolved per request; every field checks its own rule
    LIVE = "live"  # the WebSocket authenticates in its protocol, then checks per message
    WEB = "web"  # pages: the signed profile cookie, or the admin session cookie


# What each rule asks of each kind of caller, in words (README and error messages).
RULE_TEXT: dict[Access, str] = {
    Access.PUBLIC: "anyone",
    Access.CATALOG_READ: "any key or user token; anonymous unless METAMEDIA_ANONYMOUS=off",
    Access.USER_READ: "the user's own token, or a key with 'read'",
    Access.USER_WRITE: "the user's own token, or a key with 'write'",
    Access.USER_EXPORT: "the user's own token, or a key with 'write'",
    Access.USER_ERASE: "a key with 'write'",
    Access.TOKEN_ISSUE: "a key with 'write'",
    Access.CATALOG_WRITE: "a key with 'write'",
    Access.TENANT_ADMIN: "a key with 'admin' (a tenant key sees its tenant's keys only)",
    Access.PLATFORM_ADMIN: "a platform key with 'admin'",
    Access.GRAPHQL: "per field, as the REST route it mirrors",
    Access.LIVE: "a key or a user token, sent on connect",
    Access.WEB: "the signed profile cookie (pages), or the admin session (/admin)",
}


@dataclass(frozen=True)
class Caller:
    """The one principal behind a request, with its tenant and the user it acts as."""

    kind: CallerKind
    tenant: str
    mode: AnonymousMode
    key: Principal | None = None
    user: str | None = None  # proven by a token; or named by a key acting for it

    @property
    def viewer(self) -> str | None:
        """Whose private items this caller may see."""
        return self.user

    @property
    def actor(self) -> str:
        if self.key is not None:
            return self.key.actor
        if self.kind == "user":
            return f"user:{self.tenant}:{self.user}"
        return "anonymous"

    def act_as(self, user: str | None) -> str | None:
        """The user a request names (`?user=`, GraphQL `user:`), if this caller may act
        for them; the caller's own user when none is named."""
        if user is None or user == self.user:
            return self.user
        _check_user_claim(self, user)
        return user

    def for_user(self, user: str | None) -> Caller:
        """This caller acting for `user` (refused unless it may)."""
        named = self.act_as(user)
        return Caller(self.kind, self.tenant, self.mode, self.key, named)


def anonymous(mode: AnonymousMode, tenant: str) -> Caller:
    return Caller("anonymous", tenant, mode)


def resolve(
    mode: AnonymousMode,
    anonymous_tenant: str,
    key: Principal | None,
    token: UserToken | None,
    claimed_tenant: str | None = None,
    claimed_user: str | None = None,
) -> Caller:
    """The caller behind verified credentials and what the request claims.

    Refuses (403) a claimed tenant that is not the caller's (unless it holds a platform
    key) and a claimed user it may not act for.
    """
    if claimed_tenant is not None:
        claimed_tenant = check_tenant(claimed_tenant)
    if claimed_user is not None:
        claimed_user = check_user(claimed_user)
    if key is not None:
        if key.tenant is None:
            caller = Caller("key", claimed_tenant or anonymous_tenant, mode, key)
        else:
            _same_tenant(key.tenant, claimed_tenant, f"key '{key.name}'")
            caller = Caller("key", key.tenant, mode, key)
    elif token is not None:
        _same_tenant(token.tenant, claimed_tenant, "this user token")
        caller = Caller("user", token.tenant, mode, None, token.user)
    else:
        _same_tenant(anonymous_tenant, claimed_tenant, "an anonymous caller")
        caller = anonymous(mode, anonymous_tenant)
    return caller.for_user(claimed_user) if claimed_user is not None else caller


def check_user(user: str) -> str:
    if not user or len(user) > MAX_USER_CHARS or not user.isprintable():
        raise PermissionDeniedError(f"a user id is 1-{MAX_USER_CHARS} printable characters")
    return user


def _same_tenant(own: str, claimed: str | None, who: str) -> None:
    if claimed is not None and claimed != own:
        raise PermissionDeniedError(
            f"{who} acts for tenant {own!r} only; the tenant comes from the credentials, "
            f"so {claimed!r} is refused (only platform keys may name a tenant)"
        )


def _check_user_claim(caller: Caller, user: str) -> None:
    check_user(user)
    if caller.kind == "key":
        return
    if caller.kind == "user":
        raise PermissionDeniedError(
            f"this user token is for {caller.user!r}; it cannot act for another user"
        )
    if caller.mode != "open":
        raise PermissionDeniedError(
            "an anonymous caller cannot name a user: send that user's token, or a key "
            "acting on their behalf"
        )


def check(caller: Caller, rule: Access, user: str | None = None) -> None:
    """Refuse (401 without credentials, 403 with the wrong ones) unless `caller` may
    do what `rule` covers; `user` is the user a user-data route is about."""
    if rule in (Access.PUBLIC, Access.GRAPHQL, Access.LIVE, Access.WEB):
        return
    if rule is Access.CATALOG_READ:
        if caller.kind == "anonymous" and caller.mode == "off":
            raise AuthenticationError(
                "this deployment serves no anonymous reads (METAMEDIA_ANONYMOUS=off): send "
                "an API key or a user token"
            )
        return
    if rule in (Access.USER_READ, Access.USER_WRITE, Access.USER_EXPORT):
        scope = "read" if rule is Access.USER_READ else "write"
        _check_user_data(caller, scope, user)
        return
    if rule in (Access.USER_ERASE, Access.TOKEN_ISSUE, Access.CATALOG_WRITE):
        require_key(caller, "write")
        return
    if rule is Access.TENANT_ADMIN:
        require_key(caller, "admin")
        return
    if rule is Access.PLATFORM_ADMIN:
        key = require_key(caller, "admin")
        if not key.platform:
            raise PermissionDeniedError(
                f"key '{key.name}' is bound to tenant {key.tenant!r}; this endpoint changes "
                "every tenant and needs a platform key with 'admin'"
            )
        return
    raise AssertionError(f"unknown access rule {rule!r}")  # pragma: no cover


def require_key(caller: Caller, scope: str) -> Principal:
    """The caller's key if it holds `scope`; 401 without a key, 403 otherwise."""
    key = caller.key
    if key is None:
        who = "a user token" if caller.kind == "user" else "an anonymous caller"
        error = PermissionDeniedError if caller.kind == "user" else AuthenticationError
        raise error(
            f"this endpoint needs an API key with scope '{scope}'; {who} cannot use it: "
            "send it as 'Authorization: Bearer <key>' or 'X-API-Key'"
        )
    if not key.allows(scope):
        raise PermissionDeniedError(
            f"key '{key.name}' has scopes {sorted(key.scopes)}; this endpoint needs '{scope}'"
        )
    return key


def _check_user_data(caller: Caller, scope: str, user: str | None) -> None:
    if caller.kind == "key":
        require_key(caller, scope)
        return
    if caller.kind == "user":
        if user is not None and user != caller.user:
            raise PermissionDeniedError(
                f"this user token is for {caller.user!r}; another user's data needs their "
                "own token or an API key"
            )
        return
    if caller.mode != "open":
        raise AuthenticationError(
            "a user's data needs that user's token (`POST /v1/users/{id}/token`, minted by "
            "a key with 'write') or an API key acting for them"
        )
