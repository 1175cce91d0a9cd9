"""UserStore contract: every method, the same assertions on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from metamedia.storage.records import EventRow, VectorState
from metamedia.storage.sql_schema import favorites, interactions, user_vectors, users
from tests.contract.conftest import Backend, add_media

T0 = 1_764_590_000.125  # a fixed instant with a fraction: timestamps must round-trip exactly


def event(
    media_pk: int, kind: str, ts: float, value: float | None = None, **context: object
) -> EventRow:
    return EventRow(media_pk, kind, value, ts, dict(context) or None)


def test_get_ensure_and_preferences(backend: Backend) -> None:
    store = backend.users
    assert store.get("acme", "ann") is None

    before = time.time()
    ann = store.ensure("acme", "ann")
    assert (ann.tenant, ann.external_id, ann.preferences) == ("acme", "ann", {})
    assert before <= ann.created_at == ann.updated_at <= time.time()
    assert store.ensure("acme", "ann") == ann  # idempotent: same pk, same timestamps
    assert store.get("acme", "ann") == ann

    other_tenant = store.ensure("globex", "ann")
    assert other_tenant.pk != ann.pk

    store.set_preferences(ann.pk, {"region": "eu", "languages": ["en", "fr"], "adult": False})
    first = store.get("acme", "ann")
    assert first is not None
    assert first.preferences == {"region": "eu", "languages": ["en", "fr"], "adult": False}
    assert first.created_at == ann.created_at
    assert first.updated_at > ann.updated_at
    # The version moves strictly forward even when two changes share a clock tick.
    store.set_preferences(ann.pk, {})
    second = store.get("acme", "ann")
    assert second is not None and second.preferences == {}
    assert second.updated_at > first.updated_at
    assert store.get("globex", "ann") == other_tenant  # untouched


def test_media_pks_resolves_ids_visibility_and_viewers(backend: Backend) -> None:
    public = add_media(backend.engine, "acme", "m-public")
    private = add_media(
        backend.engine,
        "acme",
        "m-private",
        visibility="private",
        owner="olga",
        viewers=["vic", "wes"],
    )
    unowned_private = add_media(
        backend.engine, "acme", "m-shared", visibility="private", viewers=["vic"]
    )
    add_media(backend.engine, "globex", "m-elsewhere")

    found = backend.users.media_pks(
        "acme", ["m-public", "m-private", "m-shared", "m-elsewhere", "nope", "m-public"]
    )
    assert found == {
        "m-public": (public, True, set()),
        "m-private": (private, False, {"olga", "vic", "wes"}),
        "m-shared": (unowned_private, False, {"vic"}),
    }
    assert backend.users.media_pks("acme", []) == {}
    # More ids than one query takes: found in whichever chunk they fall.
    many = [f"absent-{i}" for i in range(1200)]
    many[10], many[700], many[1199] = "m-public", "m-private", "m-shared"
    assert backend.users.media_pks("acme", many) == found


def test_add_events_dedupes_learns_and_keeps_favorites(backend: Backend) -> None:
    store = backend.users
    a = add_media(backend.engine, "acme", "a")
    b = add_media(backend.engine, "acme", "b")
    user = store.ensure("acme", "ann")
    learned: list[list[EventRow]] = []

    def learn(fresh: list[EventRow]) -> VectorState:
        learned.append(fresh)
        vector = np.array([len(fresh), 0.5, -1 / 3], dtype=np.float32)
        return VectorState(vector, fresh[-1].ts, sum(len(batch) for batch in learned))

    batch = [
        event(a, "view", T0, session="s1", source="search"),
        event(b, "favorite", T0 + 1),
        event(a, "view", T0),  # exact duplicate of the first: same item, type and ts
        event(a, "progress", T0 + 2, value=62.5),
    ]
    assert store.add_events(user.pk, batch, learn, model="m1") == [True, True, False, True]
    assert learned == [[batch[0], batch[1], batch[3]]]
    state = store.load_vector(user.pk, "m1")
    assert state is not None
    assert state.vector.dtype == np.float32
    assert state.vector.tolist() == pytest.approx([3.0, 0.5, -1 / 3])
    assert np.array_equal(state.vector, np.array([3.0, 0.5, -1 / 3], dtype=np.float32))
    assert (state.updated_at, state.events) == (T0 + 2, 3)
    after_first = store.get("acme", "ann")
    assert after_first is not None and after_first.updated_at > user.updated_at

    # Nothing new: learn is not called, the version does not move.
    assert store.add_events(user.pk, batch[:2], learn, model="m1") == [False, False]
    assert len(learned) == 1
    assert store.get("acme", "ann") == after_first

    assert store.favorite_ids(user.pk) == [("b", T0 + 1)]
    assert store.add_events(user.pk, [event(b, "favorite", T0 + 3)]) == [True]
    assert store.favorite_ids(user.pk) == [("b", T0 + 1)]  # already a favourite: kept as was
    assert store.add_events(user.pk, [event(b, "unfavorite", T0 + 4)]) == [True]
    assert store.favorite_ids(user.pk) == []
    # A learner that returns None leaves the vector alone.
    assert store.add_events(user.pk, [event(a, "like", T0 + 5)], lambda _: None, "m1") == [True]
    unchanged = store.load_vector(user.pk, "m1")
    assert unchanged is not None
    assert unchanged.vector.tobytes() == state.vector.tobytes()
    assert (unchanged.updated_at, unchanged.events) == (state.updated_at, state.events)
    assert len(store.events(user.pk)) == 6


def test_history_orders_pages_and_filters_sessions(backend: Backend) -> None:
    store = backend.users
    a = add_media(backend.engine, "acme", "a")
    b = add_media(backend.engine, "acme", "b")
    c = add_media(backend.engine, "acme", "c")
    user = store.ensure("acme", "ann")
    rows = [
        event(a, "view", T0, session="s1"),
        event(b, "click", T0 + 1, session="s2", rank=3),
        event(c, "rate", T0 + 1, value=4.5, session="s1"),  # same ts as b, inserted later
        event(a, "skip", T0 + 2),
        event(b, "view", T0 + 3, session=5),  # a number, not the string "5"
    ]
    store.add_events(user.pk, rows)

    newest_first = [
        ("b", rows[4]),
        ("a", rows[3]),
        ("c", rows[2]),  # ties on ts: the later insert first
        ("b", rows[1]),
        ("a", rows[0]),
    ]
    assert store.history(user.pk, 100, 0) == newest_first
    assert store.history(user.pk, 2, 0) == newest_first[:2]
    assert store.history(user.pk, 2, 2) == newest_first[2:4]
    assert store.history(user.pk, 10, 5) == []
    assert store.history(user.pk, 10, 0, session="s1") == [("c", rows[2]), ("a", rows[0])]
    assert store.history(user.pk, 1, 1, session="s1") == [("a", rows[0])]
    assert store.history(user.pk, 10, 0, session="s2") == [("b", rows[1])]
    assert store.history(user.pk, 10, 0, session="5") == []
    assert store.history(user.pk, 10, 0, session="s9") == []
    assert store.history(user.pk, 10, 0, session=None) == newest_first

    # Events: oldest first (ties by insertion), without context.
    assert store.events(user.pk) == [
        EventRow(r.media_pk, r.type, r.value, r.ts, None) for r in rows
    ]
    other = store.ensure("acme", "bob")
    assert store.history(other.pk, 10, 0) == []
    assert store.events(other.pk) == []


def test_events_after_returns_later_inserts_oldest_first_and_the_count(backend: Backend) -> None:
    store = backend.users
    a = add_media(backend.engine, "acme", "a")
    b = add_media(backend.engine, "acme", "b")
    user = store.ensure("acme", "ann")
    other = store.ensure("acme", "bob")
    store.add_events(user.pk, [event(a, "view", T0 + 5), event(b, "like", T0 + 1)])
    store.add_events(other.pk, [event(a, "view", T0)])
    total, rows = store.events_after(user.pk, 0)
    assert total == 2
    assert [row for _, row in rows] == [
        EventRow(b, "like", None, T0 + 1, None),
        EventRow(a, "view", None, T0 + 5, None),
    ]
    last = max(pk for pk, _ in rows)
    # Ids grow in insert order, whatever the timestamps: a backdated event comes after.
    store.add_events(user.pk, [event(a, "rate", T0, value=4.0), event(b, "skip", T0 + 9)])
    total, newer = store.events_after(user.pk, last)
    assert total == 4
    assert [row for _, row in newer] == [
        EventRow(a, "rate", 4.0, T0, None),
        EventRow(b, "skip", None, T0 + 9, None),
    ]
    assert min(pk for pk, _ in newer) > last
    assert store.events_after(user.pk, max(pk for pk, _ in newer)) == (4, [])
    assert store.events_after(other.pk, 0)[0] == 1


def test_favorite_ids_newest_first_ties_by_item(backend: Backend) -> None:
    store = backend.users
    pks = [add_media(backend.engine, "acme", name) for name in ("x", "y", "z")]
    user = store.ensure("acme", "ann")
    store.add_events(
        user.pk,
        [
            event(pks[2], "favorite", T0),
            event(pks[1], "favorite", T0 + 10),
            event(pks[0], "favorite", T0),
        ],
    )
    assert store.favorite_ids(user.pk) == [("y", T0 + 10), ("x", T0), ("z", T0)]


def test_training_pairs_keep_positive_events_of_the_tenant(backend: Backend) -> None:
    store = backend.users
    a = add_media(backend.engine, "acme", "a")
    b = add_media(backend.engine, "acme", "b")
    g = add_media(backend.engine, "globex", "g")
    ann = store.ensure("acme", "ann")
    bob = store.ensure("acme", "bob")
    gus = store.ensure("globex", "gus")
    store.add_events(
        ann.pk,
        [
            event(a, "view", T0),
            event(a, "view", T0 + 1),  # a second view: a second pair (the model dedupes)
            event(b, "progress", T0 + 2, value=50),
            event(b, "dislike", T0 + 3),
            event(b, "skip", T0 + 4),
        ],
    )
    store.add_events(
        bob.pk,
        [
            event(a, "progress", T0, value=49.9),
            event(b, "favorite", T0 + 1),
            event(a, "complete", T0 + 2),
            event(b, "share", T0 + 3),
            event(a, "unfavorite", T0 + 4),
        ],
    )
    store.add_events(gus.pk, [event(g, "like", T0)])

    user_pks, media_pks = store.training_pairs("acme")
    assert user_pks.dtype == np.int64 and media_pks.dtype == np.int64
    pairs = sorted(zip(user_pks.tolist(), media_pks.tolist(), strict=True))
    assert pairs == sorted(
        [(ann.pk, a), (ann.pk, a), (ann.pk, b), (bob.pk, b), (bob.pk, a), (bob.pk, b)]
    )
    globex = store.training_pairs("globex")
    assert (globex[0].tolist(), globex[1].tolist()) == ([gus.pk], [g])
    empty = store.training_pairs("initech")
    assert empty[0].shape == empty[1].shape == (0,)
    assert empty[0].dtype == np.int64


def test_trending_counts_distinct_users_since(backend: Backend) -> None:
    store = backend.users
    a, b, c, d = (add_media(backend.engine, "acme", name) for name in "abcd")
    g = add_media(backend.engine, "globex", "g")
    ann, bob, cat = (store.ensure("acme", name) for name in ("ann", "bob", "cat"))
    gus = store.ensure("globex", "gus")
    for n in range(5):  # one user's many views are one voice
        store.add_events(ann.pk, [event(a, "view", T0 + n)])
    store.add_events(bob.pk, [event(a, "like", T0 + 1), event(c, "complete", T0 + 2)])
    store.add_events(cat.pk, [event(c, "share", T0 + 3), event(b, "rate", T0 + 3, value=5)])
    store.add_events(cat.pk, [event(d, "click", T0 + 3), event(d, "skip", T0 + 4)])  # not counted
    store.add_events(ann.pk, [event(b, "favorite", T0 - 100)])  # before `since`
    store.add_events(gus.pk, [event(g, "view", T0 + 1)])

    assert store.trending("acme", T0, 10) == [(a, 2), (c, 2), (b, 1)]  # ties: lower pk first
    assert store.trending("acme", T0, 2) == [(a, 2), (c, 2)]
    assert store.trending("acme", T0 - 100, 10) == [(a, 2), (b, 2), (c, 2)]
    assert store.trending("acme", T0 + 3, 10) == [(a, 1), (b, 1), (c, 1)]  # clicks do not count
    assert store.trending("globex", 0.0, 10) == [(g, 1)]
    assert store.trending("acme", T0 + 100, 10) == []


def test_vectors_round_trip_and_one_per_user(backend: Backend) -> None:
    store = backend.users
    ann = store.ensure("acme", "ann")
    bob = store.ensure("acme", "bob")
    assert store.load_vector(ann.pk, "m1") is None

    rng = np.random.default_rng(7)
    first = rng.standard_normal(384).astype(np.float32)
    store.save_vector(ann.pk, "m1", VectorState(first, T0, 12))
    loaded = store.load_vector(ann.pk, "m1")
    assert loaded is not None
    assert loaded.vector.tobytes() == first.tobytes()  # bit for bit
    assert loaded.vector.flags.writeable  # a copy, not a view of the driver's buffer
    assert (loaded.updated_at, loaded.events) == (T0, 12)

    second = rng.standard_normal(8).astype(np.float32)
    store.save_vector(ann.pk, "m2", VectorState(second, T0 + 1, 13))  # replaces: one per user
    assert store.load_vector(ann.pk, "m1") is None
    replaced = store.load_vector(ann.pk, "m2")
    assert replaced is not None and replaced.vector.tobytes() == second.tobytes()
    assert (replaced.updated_at, replaced.events) == (T0 + 1, 13)
    assert store.load_vector(bob.pk, "m2") is None
    assert backend.count(user_vectors) == 1


def test_delete_erases_every_row_of_the_user(backend: Backend) -> None:
    store = backend.users
    a = add_media(backend.engine, "acme", "a")
    b = add_media(backend.engine, "acme", "b")
    ann = store.ensure("acme", "ann")
    bob = store.ensure("acme", "bob")
    for user in (ann, bob):
        store.set_preferences(user.pk, {"region": "eu"})
        store.add_events(
            user.pk,
            [event(a, "view", T0, session="s"), event(b, "favorite", T0 + 1)],
            lambda fresh: VectorState(np.ones(4, dtype=np.float32), fresh[-1].ts, len(fresh)),
            "m1",
        )
    expected = {"users": 1, "interactions": 2, "favorites": 1, "user_vectors": 1}
    assert store.count_rows(ann.pk) == expected
    assert store.count_rows(bob.pk) == expected

    store.delete(ann.pk)

    assert store.count_rows(ann.pk) == {name: 0 for name in expected}
    assert backend.count(users, pk=ann.pk) == 0
    assert backend.count(users, tenant="acme", external_id="ann") == 0
    for table in (interactions, favorites, user_vectors):
        assert backend.count(table, user_pk=ann.pk) == 0
    assert store.get("acme", "ann") is None
    assert store.history(ann.pk, 10, 0) == []
    assert store.load_vector(ann.pk, "m1") is None
    # The other user keeps everything.
    assert store.count_rows(bob.pk) == expected
    store.delete(ann.pk)  # deleting again is harmless
    assert store.count_rows(10_000) == {name: 0 for name in expected}


def test_concurrent_batches_for_one_user_learn_in_turn(backend: Backend) -> None:
    """Each batch learns from the vector the previous one saved: none is lost.

    The learner reads the stored vector through another connection, as the user
    service does; without the user's row lock two PostgreSQL transactions would
    both start from the same old vector and one batch would vanish from it.
    """
    store = backend.users
    item = add_media(backend.engine, "acme", "a")
    user = store.ensure("acme", "ann")
    workers = 8

    def learn(fresh: list[EventRow]) -> VectorState:
        previous = store.load_vector(user.pk, "m1")
        seen = 0 if previous is None else previous.events
        time.sleep(0.01)  # widen the window a lost update would need
        return VectorState(np.zeros(2, dtype=np.float32), fresh[-1].ts, seen + len(fresh))

    def batch(n: int) -> list[bool]:
        return store.add_events(user.pk, [event(item, "view", T0 + n)], learn, "m1")

    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(batch, range(workers)))
    assert results == [[True]] * workers
    state = store.load_vector(user.pk, "m1")
    assert state is not None and state.events == workers
    assert len(store.events(user.pk)) == workers
