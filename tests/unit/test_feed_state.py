"""What the feed keeps between requests for speed, and that it never serves stale data.

`EventHistories` (services/users.py) keeps each user's events and reads only the
new ones; `EaseScores` (services/candidates.py) keeps each user's collaborative
scores and adds only the rows of new history items. Both must answer exactly what
reading everything again answers, after appends, backdated events, deletions, a
re-created user and a new model.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from metamedia.engine.collaborative import fit_ease
from metamedia.services.candidates import CandidateContext, EaseScores
from metamedia.services.runtime import Runtime
from metamedia.services.users import EventHistories
from metamedia.storage.records import EventRow, UserRecord

SPACE = "A crew on a failing orbital station rations oxygen while a rescue ship races a storm."


def _put_items(rt: Runtime, n: int) -> None:
    for i in range(n):
        rt.catalog.put(f"m{i}", {"title": f"m{i}", "description": f"{SPACE} Part {i}."})


def test_histories_match_the_store_after_appends_and_backdated_events(runtime: Runtime) -> None:
    _put_items(runtime, 8)
    now = time.time()
    runtime.users.record(
        "default",
        "ann",
        [{"item": f"m{i}", "type": "view", "ts": now - 1000 + i} for i in range(4)],
        create_user=True,
    )
    store = runtime.users.users
    record = runtime.users.require("default", "ann")
    histories = runtime.users.histories
    first = histories.events(record)
    assert first == store.events(record.pk)

    # A newer event, then one older than everything held (a client's backfill), and
    # one at the same instant as a held one (the later insert sorts after it).
    runtime.users.record("default", "ann", [{"item": "m4", "type": "like", "ts": now - 10}])
    runtime.users.record("default", "ann", [{"item": "m5", "type": "view", "ts": now - 5000}])
    runtime.users.record("default", "ann", [{"item": "m6", "type": "skip", "ts": now - 1000}])
    record = runtime.users.require("default", "ann")
    again = histories.events(record)
    assert again == store.events(record.pk)
    assert again[0].media_pk == store.media_pks("default", ["m5"])["m5"][0]
    assert len(first) == 4  # a list handed out earlier never changes under its holder


def test_a_re_created_user_never_sees_the_erased_users_events(runtime: Runtime) -> None:
    _put_items(runtime, 3)
    events = [{"item": "m0", "type": "like"}, {"item": "m1", "type": "view"}]
    runtime.users.record("default", "bob", events, create_user=True)
    old = runtime.users.require("default", "bob")
    assert len(runtime.users.histories.events(old)) == 2
    runtime.users.delete("default", "bob")
    runtime.users.upsert("default", "bob", None)
    new = runtime.users.require("default", "bob")
    assert runtime.users.histories.events(new) == []
    assert (old.pk, old.created_at) not in runtime.users.histories._data


class _Store:
    """events_after over a list the test edits, as deletions elsewhere would."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, EventRow]] = []
        self.calls: list[int] = []

    def events_after(self, user_pk: int, after: int) -> tuple[int, list[tuple[int, EventRow]]]:
        self.calls.append(after)
        newer = sorted((r for r in self.rows if r[0] > after), key=lambda r: (r[1].ts, r[0]))
        return len(self.rows), newer


def _row(pk: int, ts: float) -> tuple[int, EventRow]:
    return pk, EventRow(100 + pk, "view", None, ts, None)


def test_histories_read_everything_again_when_events_were_deleted() -> None:
    store = _Store()
    histories = EventHistories(store)  # type: ignore[arg-type]
    record = UserRecord(1, "default", "u", {}, 1.0, 1.0)
    store.rows = [_row(1, 10.0), _row(2, 20.0), _row(3, 30.0)]
    assert [e.ts for e in histories.events(record)] == [10.0, 20.0, 30.0]
    store.rows = [_row(1, 10.0), _row(3, 30.0), _row(4, 25.0)]  # 2 deleted, 4 added
    assert [e.ts for e in histories.events(record)] == [10.0, 25.0, 30.0]
    assert store.calls == [0, 3, 0]


def test_histories_stay_within_their_event_budget() -> None:
    store = _Store()
    histories = EventHistories(store, max_events=5)  # type: ignore[arg-type]
    store.rows = [_row(i, float(i)) for i in range(1, 4)]
    for pk in (1, 2, 3):
        histories.events(UserRecord(pk, "default", f"u{pk}", {}, 1.0, 1.0))
    assert histories._held <= 5 and len(histories._data) == 1


def _model() -> Any:
    rng = np.random.default_rng(3)
    users = rng.integers(0, 40, 600)
    items = rng.integers(0, 60, 600) * 10
    return fit_ease(users.astype(np.int64), items.astype(np.int64), l2=5.0)


def test_ease_scores_equal_a_full_sum_as_history_grows_shrinks_and_the_model_changes() -> None:
    model = _model()
    cache = EaseScores()
    keys = model.keys.tolist()
    history = [keys[0], keys[3], keys[3], 99_999]  # a repeat and an unknown item
    for step in range(6):
        got = cache.score(("t", "u"), model, history)
        assert np.allclose(got, model.score(history), atol=1e-5)
        history = [*history, keys[step + 5]]
    shrunk = history[2:]
    assert np.allclose(cache.score(("t", "u"), model, shrunk), model.score(shrunk), atol=1e-5)
    other = fit_ease(np.array([0, 0, 1], dtype=np.int64), np.array([10, 20, 10], dtype=np.int64))
    assert np.allclose(cache.score(("t", "u"), other, [10]), other.score([10]), atol=1e-6)
    cache.forget("t", "u")
    assert not cache._data


def test_collab_feature_is_the_score_of_unconsumed_model_items_else_zero() -> None:
    model = _model()
    keys = model.keys.tolist()
    ctx = CandidateContext(
        tenant="t",
        user="u",
        prefs=None,  # type: ignore[arg-type]
        flt=None,  # type: ignore[arg-type]
        events=[],
        seen=frozenset(),
        history=[keys[1], keys[2]],
        direction=None,
        now=0.0,
        ease=model,
    )
    asked = [keys[1], keys[5], 7, keys[-1], -3, keys[0]]
    expected = [ctx.collab_scores.get(k, 0.0) for k in asked]
    assert np.allclose(ctx.collab_feature(asked), expected)
    assert ctx.collab_feature(asked)[0] == 0.0  # consumed


def test_a_feed_after_an_interaction_leaves_the_item_out(runtime: Runtime) -> None:
    _put_items(runtime, 30)
    runtime.users.record("default", "cat", [{"item": "m0", "type": "like"}], create_user=True)
    first = runtime.recommend.feed("default", "cat", limit=10)
    assert first.items
    top = first.items[0].id
    runtime.users.record("default", "cat", [{"item": top, "type": "view"}])
    again = runtime.recommend.feed("default", "cat", limit=10)
    assert top not in [item.id for item in again.items]


def test_date_order_is_the_date_key_order() -> None:
    from metamedia.services.recommend import _date_key, _date_order
    from metamedia.storage.records import RankingRow

    dates = [None, "1997", "1997-05-01", "1997-12-31", "1998", None, "1997", "2001-01-01"]
    rows = [
        RankingRow(pk, 0.0, released, float(pk % 3), None, (), ())
        for pk, released in zip([9, 3, 7, 1, 4, 2, 8, 5], dates, strict=True)
    ]
    expected = sorted(range(len(rows)), key=lambda i: _date_key(rows[i]))
    assert _date_order(rows).tolist() == expected
    assert _date_order([]).tolist() == []


def test_ease_columns_follow_the_history_order_and_skip_unknown_keys() -> None:
    from metamedia.engine.collaborative import EaseModel

    history = [30, 99, 10, 30, -1, 20, 5]
    ascending = EaseModel(np.array([10, 20, 30], dtype=np.int64), np.eye(3, dtype=np.float32))
    assert ascending.columns(history) == [2, 0, 2, 1]
    assert ascending.columns([]) == []
    unsorted = EaseModel(np.array([30, 10, 20], dtype=np.int64), np.eye(3, dtype=np.float32))
    assert unsorted.columns(history) == [0, 1, 0, 2]
    empty = EaseModel(np.empty(0, dtype=np.int64), np.empty((0, 0), dtype=np.float32))
    assert empty.columns(history) == []
