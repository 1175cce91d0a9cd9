"""KeyStore and AuditLog contracts: every method, the same assertions on both backends."""

from __future__ import annotations

import time
from datetime import date

import pytest
from sqlalchemy.exc import IntegrityError

from metamedia.storage.records import AuditEntry
from metamedia.storage.sql_schema import api_keys
from tests.contract.conftest import Backend


def test_keys_add_find_list_and_revoke(backend: Backend) -> None:
    keys = backend.keys
    assert keys.all() == []
    assert keys.by_digest("d" * 64) is None
    assert keys.by_pk(1) is None

    before = time.time()
    admin = keys.add("ops", "mm_ab12", "a" * 64, frozenset({"admin", "read", "write"}))
    tenant_key = keys.add("shop", "mm_cd34", "b" * 64, frozenset({"read"}), tenant="acme")
    empty = keys.add("nothing", "mm_ef56", "c" * 64, frozenset())
    assert before <= admin.created_at <= tenant_key.created_at <= time.time()
    assert (admin.name, admin.prefix, admin.scopes, admin.revoked_at, admin.tenant) == (
        "ops",
        "mm_ab12",
        frozenset({"admin", "read", "write"}),
        None,
        None,
    )
    assert tenant_key.tenant == "acme" and tenant_key.scopes == frozenset({"read"})
    assert empty.scopes == frozenset()
    assert len({admin.pk, tenant_key.pk, empty.pk}) == 3

    # What was returned is what is stored, read any way.
    assert keys.by_digest("a" * 64) == admin
    assert keys.by_digest("b" * 64) == tenant_key
    assert keys.by_pk(empty.pk) == empty
    assert keys.all() == [admin, tenant_key, empty]  # in creation order

    with pytest.raises(IntegrityError):  # a digest names one key
        keys.add("copy", "mm_ab12", "a" * 64, frozenset({"read"}))
    assert keys.all() == [admin, tenant_key, empty]

    assert keys.revoke(tenant_key.pk) is True
    revoked = keys.by_pk(tenant_key.pk)
    assert revoked is not None and revoked.revoked_at is not None
    assert tenant_key.created_at <= revoked.revoked_at <= time.time()
    assert keys.revoke(tenant_key.pk) is False  # already revoked: the first time stays
    assert keys.by_pk(tenant_key.pk) == revoked
    assert keys.revoke(10_000) is False
    assert keys.by_digest("b" * 64) == revoked
    assert [k.revoked_at is None for k in keys.all()] == [True, False, True]
    assert backend.count(api_keys) == 3


def test_audit_log_records_and_lists_newest_first(backend: Backend) -> None:
    audit = backend.audit
    assert audit.recent() == []

    before = time.time()
    first = audit.record("alice", "flag.put", "beta", {"enabled": True, "rules": [1, 2]})
    assert isinstance(first, AuditEntry)
    assert (first.actor, first.action, first.target, first.detail) == (
        "alice",
        "flag.put",
        "beta",
        {"enabled": True, "rules": [1, 2]},
    )
    assert before <= first.ts <= time.time()
    second = audit.record("bob", "key.create", "mm_ab12", {"scopes": ["read"]})
    third = audit.record("carol", "flag_x.delete", "gamma", {})
    # Values JSON cannot hold are stored as their text (the entry returned keeps the
    # caller's own dict).
    fourth = audit.record("dave", "Flag.put", "delta", {"on": date(2026, 12, 1)})
    assert first.pk < second.pk < third.pk < fourth.pk

    entries = audit.recent()
    assert [e.pk for e in entries] == [fourth.pk, third.pk, second.pk, first.pk]
    assert entries[1:] == [third, second, first]
    assert entries[0].detail == {"on": "2026-12-01"}
    assert [e.pk for e in audit.recent(limit=2)] == [fourth.pk, third.pk]

    # The prefix is matched exactly: case counts, and "_" or "%" are plain characters.
    assert audit.recent(action_prefix="flag.") == [first]
    assert audit.recent(action_prefix="flag") == [third, first]
    assert [e.pk for e in audit.recent(action_prefix="Flag")] == [fourth.pk]
    assert audit.recent(action_prefix="flag_") == [third]
    assert audit.recent(action_prefix="f%") == []
    assert audit.recent(action_prefix="key.create") == [second]
    assert audit.recent(action_prefix="key.create.more") == []
    assert audit.recent(limit=1, action_prefix="flag") == [third]
    assert len(audit.recent(action_prefix="")) == 4  # empty: no filter
