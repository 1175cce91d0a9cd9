"""User context store in the relational database: profiles, interactions,
favorites and the learned preference vector (the seeds' "agentdb").

Shares the media store's engine, so an interaction and the item it names live
in one database and one transaction scope. Statements are SQLAlchemy Core and
give the same answers on SQLite and PostgreSQL; what differs lives in
`sql_dialect`. They are built once (below, and per store for the dialect's
inserts) with bound parameters: building a Core statement costs more than
SQLite takes to run it, and these run on every request.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Float, Integer, String, bindparam, func, or_, select
from sqlalchemy.engine import Engine

from metamedia.storage.records import EventRow, UserRecord, VectorState
from metamedia.storage.sql_dialect import (
    conflict_insert,
    greatest,
    json_field,
    json_string,
    lock_rows,
    write_transaction,
)
from metamedia.storage.sql_schema import (
    favorites,
    interactions,
    media,
    media_viewer,
    user_vectors,
    users,
)

# Events that mean "watched or wanted" (training) and that count towards trending.
TRAINING_TYPES = ("view", "click", "like", "rate", "complete", "share", "favorite")
TRENDING_TYPES = ("view", "like", "complete", "rate", "favorite", "share")
# Progress at or above this percentage counts as watched for training.
TRAINING_MIN_PROGRESS = 50

_MEDIA_CHUNK = 500

_i = interactions
_GET_USER = select(users.c.pk, users.c.preferences, users.c.created_at, users.c.updated_at).where(
    users.c.tenant == bindparam("t"), users.c.external_id == bindparam("e")
)
_COUNT_ROWS = {
    table.name: select(func.count()).select_from(table).where(column == bindparam("u"))
    for table, column in (
        (users, users.c.pk),
        (interactions, interactions.c.user_pk),
        (favorites, favorites.c.user_pk),
        (user_vectors, user_vectors.c.user_pk),
    )
}
_DELETE_USER = [
    *(
        table.delete().where(table.c.user_pk == bindparam("u"))
        for table in (interactions, favorites, user_vectors)
    ),
    users.delete().where(users.c.pk == bindparam("u")),
]
_SET_PREFERENCES = (
    users.update().where(users.c.pk == bindparam("u")).values(preferences=bindparam("prefs"))
)
# Moves the user's version (updated_at) strictly forward, even within one clock tick:
# caches key on it, so two changes must never share a version.
_BUMP_VERSION = (
    users.update()
    .where(users.c.pk == bindparam("u"))
    .values(updated_at=greatest(bindparam("now", type_=Float), users.c.updated_at + 0.000001))
)
_LOCK_USER = select(users.c.pk).where(users.c.pk == bindparam("u")).with_for_update()
# Viewers come one row each (an outer join) and are gathered in Python, which both
# databases answer alike; a string aggregate is spelt differently in each.
_MEDIA_PKS = (
    select(
        media.c.external_id, media.c.pk, media.c.visibility, media.c.owner, media_viewer.c.viewer
    )
    .select_from(media.outerjoin(media_viewer, media_viewer.c.pk == media.c.pk))
    .where(
        media.c.tenant == bindparam("t"),
        media.c.external_id.in_(bindparam("ids", expanding=True)),
    )
)
_UNFAVORITE = favorites.delete().where(
    favorites.c.user_pk == bindparam("u"), favorites.c.media_pk == bindparam("m")
)
_HISTORY = (
    select(media.c.external_id, _i.c.media_pk, _i.c.type, _i.c.value, _i.c.ts, _i.c.context)
    .select_from(_i.join(media, media.c.pk == _i.c.media_pk))
    .where(_i.c.user_pk == bindparam("u"))
    .order_by(_i.c.ts.desc(), _i.c.pk.desc())
    .limit(bindparam("n", type_=Integer))
    .offset(bindparam("o", type_=Integer))
)
_SESSION_HISTORY = _HISTORY.where(
    json_field(_i.c.context, "session") == json_string(bindparam("s", type_=String))
)
_EVENTS = (
    select(_i.c.media_pk, _i.c.type, _i.c.value, _i.c.ts)
    .where(_i.c.user_pk == bindparam("u"))
    .order_by(_i.c.ts, _i.c.pk)
)
# A user's events inserted after a known one (ids only grow per user: see events_after).
_EVENTS_AFTER = (
    select(_i.c.pk, _i.c.media_pk, _i.c.type, _i.c.value, _i.c.ts)
    .where(_i.c.user_pk == bindparam("u"), _i.c.pk > bindparam("after"))
    .order_by(_i.c.ts, _i.c.pk)
)
_EVENT_COUNT = select(func.count()).select_from(_i).where(_i.c.user_pk == bindparam("u"))
# Newest favourite first; favourites made at the same instant by item pk.
_FAVORITE_IDS = (
    select(media.c.external_id, favorites.c.created_at)
    .select_from(favorites.join(media, media.c.pk == favorites.c.media_pk))
    .where(favorites.c.user_pk == bindparam("u"))
    .order_by(favorites.c.created_at.desc(), favorites.c.media_pk)
)
_TRAINING_PAIRS = (
    select(_i.c.user_pk, _i.c.media_pk)
    .select_from(_i.join(users, users.c.pk == _i.c.user_pk))
    .where(
        users.c.tenant == bindparam("t"),
        or_(
            _i.c.type.in_(TRAINING_TYPES),
            (_i.c.type == "progress") & (_i.c.value >= TRAINING_MIN_PROGRESS),
        ),
    )
)
_VOICES = func.count(_i.c.user_pk.distinct()).label("n")
_TRENDING = (
    select(_i.c.media_pk, _VOICES)
    .select_from(_i.join(users, users.c.pk == _i.c.user_pk))
    .where(
        users.c.tenant == bindparam("t"),
        _i.c.ts >= bindparam("since", type_=Float),
        _i.c.type.in_(TRENDING_TYPES),
    )
    .group_by(_i.c.media_pk)
    .order_by(_VOICES.desc(), _i.c.media_pk)
    .limit(bindparam("n", type_=Integer))
)
_LOAD_VECTOR = select(
    user_vectors.c.vector, user_vectors.c.updated_at, user_vectors.c.events
).where(user_vectors.c.user_pk == bindparam("u"), user_vectors.c.model == bindparam("m"))


class SQLUserStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # The dialect's inserts, built once for this engine.
        # RETURNING says whether an event went in: a skipped duplicate returns nothing.
        # (Not rowcount: on PostgreSQL SQLAlchemy adds RETURNING to learn the new pk and
        # then reports rowcount -1, duplicate or not.)
        self._insert_event = (
            conflict_insert(engine, interactions)
            .values(
                user_pk=bindparam("u"),
                media_pk=bindparam("m"),
                type=bindparam("kind"),
                value=bindparam("v"),
                ts=bindparam("at"),
                context=bindparam("ctx"),
            )
            .on_conflict_do_nothing(
                index_elements=[
                    interactions.c.user_pk,
                    interactions.c.media_pk,
                    interactions.c.type,
                    interactions.c.ts,
                ]
            )
            .returning(interactions.c.pk)
        )
        self._insert_user = (
            conflict_insert(engine, users)
            .values(
                tenant=bindparam("t"),
                external_id=bindparam("e"),
                preferences="{}",
                created_at=bindparam("now"),
                updated_at=bindparam("now"),
            )
            .on_conflict_do_nothing(index_elements=[users.c.tenant, users.c.external_id])
        )
        self._insert_favorite = (
            conflict_insert(engine, favorites)
            .values(user_pk=bindparam("u"), media_pk=bindparam("m"), created_at=bindparam("at"))
            .on_conflict_do_nothing(index_elements=[favorites.c.user_pk, favorites.c.media_pk])
        )
        vector = conflict_insert(engine, user_vectors).values(
            user_pk=bindparam("u"),
            model=bindparam("m"),
            vector=bindparam("vec"),
            updated_at=bindparam("at"),
            events=bindparam("n"),
        )
        # One vector per user: a vector of another model replaces it.
        self._save_vector_statement = vector.on_conflict_do_update(
            index_elements=[user_vectors.c.user_pk],
            set_={
                name: vector.excluded[name] for name in ("model", "vector", "updated_at", "events")
            },
        )

    # -- users ----------------------------------------------------------------

    def get(self, tenant: str, external_id: str) -> UserRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(_GET_USER, {"t": tenant, "e": external_id}).first()
        if row is None:
            return None
        return UserRecord(
            int(row[0]), tenant, external_id, json.loads(row[1]), float(row[2]), float(row[3])
        )

    def ensure(self, tenant: str, external_id: str) -> UserRecord:
        now = time.time()
        with write_transaction(self.engine) as conn:
            conn.execute(self._insert_user, {"t": tenant, "e": external_id, "now": now})
        record = self.get(tenant, external_id)
        assert record is not None
        return record

    def set_preferences(self, user_pk: int, preferences: dict[str, Any]) -> None:
        with write_transaction(self.engine) as conn:
            conn.execute(_SET_PREFERENCES, {"u": user_pk, "prefs": json.dumps(preferences)})
            _bump_version(conn, user_pk)

    def delete(self, user_pk: int) -> None:
        """Remove the user and, by cascade and explicitly, everything held about them."""
        with write_transaction(self.engine) as conn:
            for statement in _DELETE_USER:
                conn.execute(statement, {"u": user_pk})

    def count_rows(self, user_pk: int) -> dict[str, int]:
        """Rows per table that still mention the user (the GDPR check reads this)."""
        with self.engine.connect() as conn:
            return {
                name: int(conn.execute(query, {"u": user_pk}).scalar_one())
                for name, query in _COUNT_ROWS.items()
            }

    # -- interactions ---------------------------------------------------------

    def media_pks(
        self, tenant: str, external_ids: Sequence[str]
    ) -> dict[str, tuple[int, bool, set[str]]]:
        """external id -> (pk, is public, who else may see it) for items of this tenant."""
        found: dict[str, tuple[int, bool, set[str]]] = {}
        unique = list(dict.fromkeys(external_ids))
        with self.engine.connect() as conn:
            for start in range(0, len(unique), _MEDIA_CHUNK):
                chunk = unique[start : start + _MEDIA_CHUNK]
                for ext, pk, visibility, owner, viewer in conn.execute(
                    _MEDIA_PKS, {"t": tenant, "ids": chunk}
                ):
                    if ext not in found:
                        who = set() if owner is None else {owner}
                        found[ext] = (int(pk), visibility == "public", who)
                    if viewer is not None:
                        found[ext][2].add(viewer)
        return found

    def add_events(
        self,
        user_pk: int,
        events: Sequence[EventRow],
        learn: Callable[[list[EventRow]], VectorState | None] | None = None,
        model: str = "",
    ) -> list[bool]:
        """Insert events; False for an exact duplicate (same item, type and timestamp).

        `learn` turns the newly inserted events into the user's next preference
        vector, saved in the same transaction: the vector never runs ahead of, or
        behind, the interactions it was learned from. The user's row is locked
        first (SQLite's write lock does that already), so two batches for one
        user learn one after the other instead of from the same old vector.
        """
        inserted: list[bool] = []
        with write_transaction(self.engine) as conn:
            lock_rows(conn, _LOCK_USER, {"u": user_pk})
            for event in events:
                result = conn.execute(
                    self._insert_event,
                    {
                        "u": user_pk,
                        "m": event.media_pk,
                        "kind": event.type,
                        "v": event.value,
                        "at": event.ts,
                        "ctx": json.dumps(event.context) if event.context else None,
                    },
                )
                fresh = result.first() is not None
                inserted.append(fresh)
                if fresh and event.type == "favorite":
                    conn.execute(
                        self._insert_favorite, {"u": user_pk, "m": event.media_pk, "at": event.ts}
                    )
                elif fresh and event.type == "unfavorite":
                    conn.execute(_UNFAVORITE, {"u": user_pk, "m": event.media_pk})
            fresh_events = [e for e, new in zip(events, inserted, strict=True) if new]
            state = learn(fresh_events) if learn is not None and fresh_events else None
            if state is not None:
                self._save_vector(conn, user_pk, model, state)
            if fresh_events:
                _bump_version(conn, user_pk)
        return inserted

    def history(
        self, user_pk: int, limit: int, offset: int, session: str | None = None
    ) -> list[tuple[str, EventRow]]:
        """Newest first (ties: the later insert first), with the item's external id;
        optionally one session's events (a session given as a JSON string)."""
        params: dict[str, Any] = {"u": user_pk, "n": limit, "o": offset}
        query = _HISTORY
        if session:
            query, params["s"] = _SESSION_HISTORY, session
        with self.engine.connect() as conn:
            rows = conn.execute(query, params).all()
        return [
            (ext, EventRow(int(pk), kind, value, float(ts), json.loads(ctx) if ctx else None))
            for ext, pk, kind, value, ts, ctx in rows
        ]

    def events(self, user_pk: int) -> list[EventRow]:
        """Every event of the user, oldest first (to rebuild the preference vector)."""
        with self.engine.connect() as conn:
            rows = conn.execute(_EVENTS, {"u": user_pk}).all()
        return [EventRow(int(m), kind, value, float(ts), None) for m, kind, value, ts in rows]

    def events_after(self, user_pk: int, after: int) -> tuple[int, list[tuple[int, EventRow]]]:
        """How many events the user has, and (event id, event) for those with an id
        above `after`, oldest first.

        Event ids only grow per user in commit order: `add_events` locks the user's
        row (SQLite: the database write lock) before it inserts, so an insert for the
        user that commits later gets a later id. A caller holding the events up to
        `after` is therefore current once it adds these, unless the count says some
        were deleted in between.
        """
        with self.engine.connect() as conn:
            rows = conn.execute(_EVENTS_AFTER, {"u": user_pk, "after": after}).all()
            total = int(conn.execute(_EVENT_COUNT, {"u": user_pk}).scalar_one())
        return total, [
            (int(pk), EventRow(int(m), kind, value, float(ts), None))
            for pk, m, kind, value, ts in rows
        ]

    def favorite_ids(self, user_pk: int) -> list[tuple[str, float]]:
        """Newest favourite first; favourites made at the same instant by item pk."""
        with self.engine.connect() as conn:
            rows = conn.execute(_FAVORITE_IDS, {"u": user_pk}).all()
        return [(ext, float(ts)) for ext, ts in rows]

    def training_pairs(self, tenant: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(user pk, media pk) for events that mean "watched or wanted" (not dislike/skip).

        A multiset in no particular order: the model builds a binary matrix from it,
        so sorting the rows would cost the database time and change nothing.
        """
        with self.engine.connect() as conn:
            rows = conn.execute(_TRAINING_PAIRS, {"t": tenant}).all()
        if not rows:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty
        pairs = np.asarray(rows, dtype=np.int64)
        return pairs[:, 0], pairs[:, 1]

    def trending(self, tenant: str, since: float, limit: int) -> list[tuple[int, int]]:
        """(media pk, distinct users with a positive-ish interaction since `since`), most
        first, ties by lower pk. Users, not events: one script sending thousands of
        views is one voice."""
        with self.engine.connect() as conn:
            rows = conn.execute(_TRENDING, {"t": tenant, "since": since, "n": limit}).all()
        return [(int(pk), int(n)) for pk, n in rows]

    # -- preference vectors ---------------------------------------------------

    def load_vector(self, user_pk: int, model: str) -> VectorState | None:
        with self.engine.connect() as conn:
            row = conn.execute(_LOAD_VECTOR, {"u": user_pk, "m": model}).first()
        if row is None:
            return None
        return VectorState(
            np.frombuffer(bytes(row[0]), dtype=np.float32).copy(), float(row[1]), int(row[2])
        )

    def save_vector(self, user_pk: int, model: str, state: VectorState) -> None:
        with write_transaction(self.engine) as conn:
            self._save_vector(conn, user_pk, model, state)

    def _save_vector(self, conn: Connection, user_pk: int, model: str, state: VectorState) -> None:
        conn.execute(
            self._save_vector_statement,
            {
                "u": user_pk,
                "m": model,
                "vec": np.ascontiguousarray(state.vector, dtype=np.float32).tobytes(),
                "at": state.updated_at,
                "n": state.events,
            },
        )


def _bump_version(conn: Connection, user_pk: int) -> None:
    conn.execute(_BUMP_VERSION, {"u": user_pk, "now": time.time()})
