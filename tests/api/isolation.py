"""The world the isolation suite attacks, the callers that attack it, and the oracle.

Two tenants ("default", which anonymous callers see, and "globex"), each with public
and private items and three users with preferences and history. Every string a caller
must not see carries a marker word, so a leak anywhere in a response body (results,
reasons, counts of items by title, error messages) is found by looking for the word.

The oracle says what each kind of caller may do under each access rule. It is
written here from the issue's words, not imported from the service, so the suite
checks the implementation against the specification rather than against itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from metamedia.services.access import Access
from tests.conftest import ADMIN_KEY

A = "default"
B = "globex"

# item id -> (tenant, marker word in its title, visibility, who may see it when private)
ITEMS: dict[str, tuple[str, str, str, frozenset[str]]] = {
    "a1": (A, "acmepublic", "public", frozenset()),
    "a2": (A, "acmesecret", "private", frozenset({"ann", "bob"})),
    "a3": (A, "catsecret", "private", frozenset({"cat"})),
    "a4": (A, "acmeshow", "public", frozenset()),
    "g1": (B, "globexpublic", "public", frozenset()),
    "g2": (B, "globexsecret", "private", frozenset({"gus", "gia"})),
    "g3": (B, "globexshow", "public", frozenset()),
}
WORDS = {"a1": "lighthouse", "a2": "vault", "a3": "orchard", "a4": "harbor"}
WORDS |= {"g1": "lighthouse", "g2": "vault", "g3": "harbor"}
USERS: dict[str, str] = {"ann": A, "bob": A, "cat": A, "gus": B, "gia": B, "gil": B}
QUERY = "lighthouse vault orchard harbor"


def user_markers(user: str) -> tuple[str, ...]:
    """Strings only that user's own data holds: preferences, device and session."""
    return (f"prefmark{user}", f"devmark{user}", f"sessmark{user}")


def preferences(user: str) -> dict[str, Any]:
    return {"blocked_owners": [f"prefmark{user}"], "maturity_limit": "R"}


@dataclass(frozen=True)
class Who:
    """One attacker: its credentials and what the oracle needs to know about it."""

    name: str
    kind: str  # "anonymous" | "user" | "key"
    tenant: str | None  # None: a platform key
    scopes: frozenset[str] = frozenset()
    user: str | None = None
    headers: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    def holds(self, scope: str) -> bool:
        ladder = {"read": 0, "write": 1, "admin": 2}
        return any(ladder[s] >= ladder[scope] for s in self.scopes)


def build_world(client: httpx.Client) -> list[Who]:
    """Items, users, histories and every kind of caller, made through the API itself."""
    admin = {"X-API-Key": ADMIN_KEY}
    for media_id, (tenant, marker, visibility, viewers) in ITEMS.items():
        body: dict[str, Any] = {
            "title": f"{marker.capitalize()} {WORDS[media_id].capitalize()}",
            "type": "movie",
            "description": f"A story about a {WORDS[media_id]} and the {marker} family.",
            "genres": ["Drama"],
            "year": 2001,
        }
        if visibility == "private":
            owner = sorted(viewers)[0]
            body |= {"visibility": "private", "owner": owner, "allowed_users": sorted(viewers)}
        done = client.put(f"/v1/media/{media_id}", json=body, headers=admin | {"X-Tenant": tenant})
        assert done.status_code in (200, 201), done.text
    for user, tenant in USERS.items():
        scope = admin | {"X-Tenant": tenant}
        made = client.put(
            f"/v1/users/{user}", json={"preferences": preferences(user)}, headers=scope
        )
        assert made.status_code == 200, made.text
        seen = [
            m
            for m, (t, _, _, viewers) in ITEMS.items()
            if t == tenant and (not viewers or user in viewers)
        ]
        context = {"device": f"devmark{user}", "session": f"sessmark{user}", "surface": "feed"}
        events = [{"item": m, "type": "like", "context": context} for m in seen[:2]]
        events.append({"item": seen[0], "type": "favorite", "context": context})
        recorded = client.post(
            f"/v1/users/{user}/interactions", json={"events": events}, headers=scope
        )
        assert recorded.status_code == 200 and recorded.json()["rejected"] == 0, recorded.text

    def key(name: str, scopes: list[str], tenant: str | None) -> dict[str, str]:
        body: dict[str, Any] = {"name": name, "scopes": scopes}
        body |= {"platform": True} if tenant is None else {"tenant": tenant}
        made = client.post("/v1/admin/keys", json=body, headers=admin)
        assert made.status_code == 201, made.text
        return {"X-API-Key": made.json()["key"]}

    def token(user: str) -> dict[str, str]:
        minted = client.post(f"/v1/users/{user}/token", headers=admin | {"X-Tenant": USERS[user]})
        assert minted.status_code == 200, minted.text
        return {"Authorization": f"Bearer {minted.json()['token']}"}

    return [
        Who("anonymous", "anonymous", A),
        Who("token-ann", "user", A, user="ann", headers=token("ann")),
        Who("token-cat", "user", A, user="cat", headers=token("cat")),
        Who("token-gus", "user", B, user="gus", headers=token("gus")),
        Who("read-default", "key", A, frozenset({"read"}), headers=key("r", ["read"], A)),
        Who("write-default", "key", A, frozenset({"write"}), headers=key("w", ["write"], A)),
        Who("admin-default", "key", A, frozenset({"admin"}), headers=key("a", ["admin"], A)),
        Who("write-globex", "key", B, frozenset({"write"}), headers=key("wg", ["write"], B)),
        Who("read-platform", "key", None, frozenset({"read"}), headers=key("rp", ["read"], None)),
        Who("admin-platform", "key", None, frozenset({"admin"}), headers=admin),
    ]


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    tenant: str  # the tenant the request acts in
    viewer: str | None  # whose private items it may see
    user_data: str | None  # whose personal data it may see


def oracle(
    who: Who,
    rule: Access,
    mode: str,
    claims: dict[str, str],
    path_user: str | None = None,
    named_user: str | None = None,
) -> Verdict:
    """What the issue says should happen: `claims` are X-Tenant / X-User headers,
    `path_user` the user a user-data route is about, `named_user` a `?user=` or
    GraphQL `user:` argument."""
    if rule in (Access.PUBLIC, Access.WEB):  # no credentials read, no claims judged
        return Verdict(True, A, None, None)
    refused = Verdict(False, who.tenant or A, None, None)
    tenant = who.tenant or A
    viewer = who.user
    claimed_tenant = claims.get("X-Tenant")
    if claimed_tenant is not None and claimed_tenant != tenant:
        if not (who.kind == "key" and who.tenant is None):
            return refused
        tenant = claimed_tenant
    for claimed_user in (claims.get("X-User"), named_user):
        if claimed_user is None or claimed_user == who.user:
            continue
        if who.kind == "key" or (who.kind == "anonymous" and mode == "open"):
            viewer = claimed_user
        else:
            return refused
    allowed = _rule_allows(who, rule, mode, path_user)
    if not allowed:
        return refused
    personal = rule in (Access.USER_READ, Access.USER_WRITE, Access.USER_EXPORT)
    if personal and path_user is not None:
        viewer = path_user
    return Verdict(True, tenant, viewer, path_user if personal else None)


def _rule_allows(who: Who, rule: Access, mode: str, path_user: str | None) -> bool:
    if rule in (Access.PUBLIC, Access.GRAPHQL, Access.WEB, Access.LIVE):
        return True
    if rule is Access.CATALOG_READ:
        return who.kind != "anonymous" or mode != "off"
    if rule in (Access.USER_READ, Access.USER_WRITE, Access.USER_EXPORT):
        if who.kind == "user":
            return path_user is None or path_user == who.user
        if who.kind == "anonymous":
            return mode == "open"
        return who.holds("read" if rule is Access.USER_READ else "write")
    if rule in (Access.USER_ERASE, Access.TOKEN_ISSUE, Access.CATALOG_WRITE):
        return who.kind == "key" and who.holds("write")
    if rule is Access.TENANT_ADMIN:
        return who.kind == "key" and who.holds("admin")
    if rule is Access.PLATFORM_ADMIN:
        return who.kind == "key" and who.holds("admin") and who.tenant is None
    raise AssertionError(f"the oracle has no answer for {rule}")


def leaks(text: str, verdict: Verdict) -> list[str]:
    """Marker words in a response that its caller may not see."""
    body = text.lower()
    found = []
    for _media_id, (tenant, marker, visibility, viewers) in ITEMS.items():
        may = verdict.allowed and tenant == verdict.tenant
        if visibility == "private":
            may = may and verdict.viewer in viewers
        if marker in body and not may:
            found.append(marker)
    for user, tenant in USERS.items():
        may = verdict.allowed and verdict.user_data == user and tenant == verdict.tenant
        found += [m for m in user_markers(user) if m in body and not may]
    return found
