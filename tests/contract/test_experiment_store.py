"""ExperimentStore contract: every method, the same assertions on SQLite and PostgreSQL."""

from __future__ import annotations

import time

from sqlalchemy import select

from metamedia.storage.records import (
    ConfigEntry,
    ConfigSync,
    EventRow,
    Exposure,
    OutcomeCounts,
    VariantCounts,
)
from metamedia.storage.sql_schema import experiment_exposures, experiment_outcomes
from tests.contract.conftest import Backend, add_media

T0 = 1_764_590_000.125


def test_definitions_put_get_load_delete_and_version(backend: Backend) -> None:
    store = backend.experiments
    assert store.version() == 0
    assert store.load() == (0, [])
    assert store.get("beta") is None

    before = time.time()
    store.put("beta", "flag", {"enabled": True, "rules": [{"region": "eu"}]}, "alice")
    assert store.version() == 1
    beta = store.get("beta")
    assert beta is not None
    assert (beta.key, beta.kind, beta.body, beta.source, beta.config_hash, beta.updated_by) == (
        "beta",
        "flag",
        {"enabled": True, "rules": [{"region": "eu"}]},
        "api",
        None,
        "alice",
    )
    assert before <= beta.updated_at <= time.time()

    store.put("alpha", "experiment", {"variants": ["a", "b"]}, "bob")
    store.put("beta", "flag", {"enabled": False}, "carol")  # replaces
    version, rows = store.load()
    assert version == store.version() == 3
    assert [row.key for row in rows] == ["alpha", "beta"]  # by key
    assert rows[1].body == {"enabled": False} and rows[1].updated_by == "carol"
    assert rows == [store.get("alpha"), store.get("beta")]

    assert store.delete("alpha") is True
    assert store.version() == 4
    assert store.delete("alpha") is False
    assert store.version() == 5  # every write bumps, even one that found nothing
    assert [row.key for row in store.load()[1]] == ["beta"]


def test_sync_config_inserts_overrides_keeps_and_removes(backend: Backend) -> None:
    store = backend.experiments
    first = store.sync_config(
        [
            ConfigEntry("dark", "flag", {"enabled": True}, "h1"),
            ConfigEntry("exp", "experiment", {"variants": ["a"]}, "h2"),
        ],
        "config",
    )
    assert first == ConfigSync(inserted=["dark", "exp"], overridden=[], removed=[])
    dark = store.get("dark")
    assert dark is not None
    assert (dark.source, dark.config_hash, dark.updated_by) == ("config", "h1", "config")

    # An API edit keeps the config hash, and a sync with the same hash leaves it alone.
    store.put("dark", "flag", {"enabled": False}, "alice")
    edited = store.get("dark")
    assert edited is not None
    assert (edited.source, edited.config_hash, edited.body) == ("api", "h1", {"enabled": False})
    store.put("api-only", "flag", {"enabled": True}, "alice")
    version = store.version()

    second = store.sync_config(
        [
            ConfigEntry("dark", "flag", {"enabled": True}, "h1"),  # same hash: API edit wins
            ConfigEntry("api-only", "flag", {"enabled": False}, "h3"),  # now configured
        ],
        "config",
    )
    assert second == ConfigSync(inserted=[], overridden=["api-only"], removed=["exp"])
    assert store.version() == version + 1
    assert store.get("dark") == edited
    api_only = store.get("api-only")
    assert api_only is not None
    assert (api_only.source, api_only.config_hash, api_only.body) == (
        "config",
        "h3",
        {"enabled": False},
    )
    assert store.get("exp") is None

    third = store.sync_config([ConfigEntry("dark", "flag", {"enabled": True}, "h9")], "config")
    # "api-only" came from the config last, so it goes; "dark" changed in the config.
    assert third == ConfigSync(inserted=[], overridden=["dark"], removed=["api-only"])
    dark = store.get("dark")
    assert dark is not None and (dark.source, dark.body) == ("config", {"enabled": True})
    assert store.sync_config([], "config") == ConfigSync([], [], ["dark"])
    assert store.load()[1] == []


def _exposure_row(backend: Backend, experiment: str, tenant: str, user: str) -> tuple[object, ...]:
    x = experiment_exposures
    with backend.engine.connect() as conn:
        row = conn.execute(
            select(x.c.variant, x.c.first_ts, x.c.last_ts, x.c.count).where(
                x.c.experiment == experiment, x.c.tenant == tenant, x.c.user_id == user
            )
        ).one()
    return tuple(row)


def _outcome_row(
    backend: Backend, experiment: str, tenant: str, user: str, kind: str
) -> tuple[object, ...]:
    o = experiment_outcomes
    with backend.engine.connect() as conn:
        row = conn.execute(
            select(o.c.count, o.c.first_ts).where(
                o.c.experiment == experiment,
                o.c.tenant == tenant,
                o.c.user_id == user,
                o.c.type == kind,
            )
        ).one()
    return tuple(row)


def test_exposures_are_counted_per_user(backend: Backend) -> None:
    store = backend.experiments
    assert store.exposures_of("acme", "ann") == []
    assert store.variant_counts("exp") == {}

    store.record_exposure("exp", "acme", "ann", "b", T0)
    store.record_exposure("exp", "acme", "ann", "a", T0 + 5)  # another process: count only
    store.record_exposure("exp", "acme", "bob", "a", T0 + 1)
    store.record_exposure("exp", "globex", "ann", "a", T0 + 2)
    store.record_exposure("aaa", "acme", "ann", "a", T0 + 3)
    assert _exposure_row(backend, "exp", "acme", "ann") == ("b", T0, T0 + 5, 2)

    store.add_exposure_counts(
        [
            ("exp", "acme", "ann", 3, T0 + 2),  # older than last_ts: last_ts stays
            ("exp", "acme", "bob", 4, T0 + 9),
            ("exp", "acme", "nobody", 7, T0 + 9),  # no such row: nothing happens
        ]
    )
    store.add_exposure_counts([])
    assert _exposure_row(backend, "exp", "acme", "ann") == ("b", T0, T0 + 5, 5)
    assert _exposure_row(backend, "exp", "acme", "bob") == ("a", T0 + 1, T0 + 9, 5)
    assert backend.count(experiment_exposures, user_id="nobody") == 0

    assert store.exposures_of("acme", "ann") == [
        Exposure("aaa", "a", T0 + 3),
        Exposure("exp", "b", T0),
    ]
    assert store.exposures_of("globex", "ann") == [Exposure("exp", "a", T0 + 2)]
    assert store.variant_counts("exp") == {
        "a": VariantCounts(users=2, exposures=6),  # bob (5) and globex's ann (1)
        "b": VariantCounts(users=1, exposures=5),
    }
    assert store.variant_counts("aaa") == {"a": VariantCounts(1, 1)}


def test_outcomes_count_for_the_exposed_variant(backend: Backend) -> None:
    store = backend.experiments
    assert store.outcome_counts("exp") == {}
    store.record_exposure("exp", "acme", "ann", "a", T0)
    store.record_exposure("exp", "acme", "bob", "a", T0)
    store.record_exposure("exp", "acme", "cat", "b", T0)
    store.record_exposure("exp", "globex", "ann", "b", T0)  # same id, other tenant
    store.add_outcomes(
        [
            ("exp", "acme", "ann", "click", 2, T0 + 5),
            ("exp", "acme", "ann", "like", 1, T0 + 6),
            ("exp", "acme", "bob", "click", 1, T0 + 7),
            ("exp", "acme", "cat", "click", 4, T0 + 8),
            ("exp", "globex", "ann", "click", 1, T0 + 9),
            ("exp", "acme", "stranger", "click", 9, T0),  # never exposed: not counted
        ]
    )
    store.add_outcomes([("exp", "acme", "ann", "click", 3, T0 + 1)])  # adds; earlier first_ts
    store.add_outcomes([("exp", "acme", "ann", "like", 1, T0 + 60)])  # adds; first_ts stays
    store.add_outcomes([])
    assert _outcome_row(backend, "exp", "acme", "ann", "click") == (5, T0 + 1)
    assert _outcome_row(backend, "exp", "acme", "ann", "like") == (2, T0 + 6)

    assert store.outcome_counts("exp") == {
        ("a", "click"): OutcomeCounts(users=2, events=6),
        ("a", "like"): OutcomeCounts(users=1, events=2),
        ("a", "any"): OutcomeCounts(users=2, events=8),
        ("b", "click"): OutcomeCounts(users=2, events=5),
        ("b", "any"): OutcomeCounts(users=2, events=5),  # acme's cat and globex's ann
    }
    assert store.outcome_counts("other") == {}


def test_forget_user_and_experiment_leave_no_rows(backend: Backend) -> None:
    store = backend.experiments
    for experiment in ("e1", "e2"):
        for tenant, user in (("acme", "ann"), ("acme", "bob"), ("globex", "ann")):
            store.record_exposure(experiment, tenant, user, "a", T0)
            store.add_outcomes([(experiment, tenant, user, "click", 1, T0 + 1)])

    store.forget_user("acme", "ann")
    for table in (experiment_exposures, experiment_outcomes):
        assert backend.count(table, tenant="acme", user_id="ann") == 0
        assert backend.count(table, tenant="globex", user_id="ann") == 2
        assert backend.count(table, tenant="acme", user_id="bob") == 2
    assert store.exposures_of("acme", "ann") == []
    assert store.variant_counts("e1") == {"a": VariantCounts(2, 2)}
    store.forget_user("acme", "ann")  # again: harmless

    store.forget_experiment("e1")
    for table in (experiment_exposures, experiment_outcomes):
        assert backend.count(table, experiment="e1") == 0
        assert backend.count(table, experiment="e2") == 2
    assert store.variant_counts("e1") == {}
    assert store.outcome_counts("e1") == {}
    assert store.outcome_counts("e2")[("a", "any")] == OutcomeCounts(2, 2)


def test_user_traits_read_interactions_and_region(backend: Backend) -> None:
    store = backend.experiments
    assert store.user_traits("acme", "ann") == (False, None)  # unknown user
    ann = backend.users.ensure("acme", "ann")
    assert store.user_traits("acme", "ann") == (False, None)
    backend.users.set_preferences(ann.pk, {"region": "eu"})
    assert store.user_traits("acme", "ann") == (False, "eu")

    item = add_media(backend.engine, "acme", "a")
    backend.users.add_events(ann.pk, [EventRow(item, "view", None, T0, None)])
    assert store.user_traits("acme", "ann") == (True, "eu")
    assert store.user_traits("globex", "ann") == (False, None)

    backend.users.set_preferences(ann.pk, {"region": 44})  # not a string: no region
    assert store.user_traits("acme", "ann") == (True, None)
