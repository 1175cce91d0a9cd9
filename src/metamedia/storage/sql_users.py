"""User context store on the embedded SQLite file: profiles, interactions,
favorites and the learned preference vector (the seeds' "agentdb").

Shares the media store's engine, so an interaction and the item it names live
in one database and one transaction scope.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import text
from sqlalchemy.engine import Engine

from metamedia.storage.records import EventRow, UserRecord, VectorState
from metamedia.storage.sql_schema import (
    favorites,
    interactions,
    user_vectors,
    users,
    write_transaction,
)


class SQLUserStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- users ----------------------------------------------------------------

    def get(self, tenant: str, external_id: str) -> UserRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT pk, preferences, created_at, updated_at FROM users "
                    "WHERE tenant = :t AND external_id = :e"
                ),
                {"t": tenant, "e": external_id},
            ).first()
        if row is None:
            return None
        return UserRecord(
            int(row[0]), tenant, external_id, json.loads(row[1]), float(row[2]), float(row[3])
        )

    def ensure(self, tenant: str, external_id: str) -> UserRecord:
        now = time.time()
        with write_transaction(self.engine) as conn:
            conn.execute(
                text(
                    "INSERT OR IGNORE INTO users(tenant, external_id, preferences, created_at, "
                    "updated_at) VALUES (:t, :e, '{}', :now, :now)"
                ),
                {"t": tenant, "e": external_id, "now": now},
            )
        record = self.get(tenant, external_id)
        assert record is not None
        return record

    def set_preferences(self, user_pk: int, preferences: dict[str, Any]) -> None:
        with write_transaction(self.engine) as conn:
            conn.execute(
                users.update()
                .where(users.c.pk == user_pk)
                .values(preferences=json.dumps(preferences))
            )
            _bump_version(conn, user_pk)

    def delete(self, user_pk: int) -> None:
        """Remove the user and, by cascade and explicitly, everything held about them."""
        with write_transaction(self.engine) as conn:
            for table in (interactions, favorites, user_vectors):
                conn.execute(table.delete().where(table.c.user_pk == user_pk))
            conn.execute(users.delete().where(users.c.pk == user_pk))

    def count_rows(self, user_pk: int) -> dict[str, int]:
        """Rows per table that still mention the user (the GDPR check reads this)."""
        counts = {}
        with self.engine.connect() as conn:
            for name, column in (
                ("users", "pk"),
                ("interactions", "user_pk"),
                ("favorites", "user_pk"),
                ("user_vectors", "user_pk"),
            ):
                counts[name] = int(
                    conn.execute(
                        text(f"SELECT count(*) FROM {name} WHERE {column} = :u"), {"u": user_pk}
                    ).scalar_one()
                )
        return counts

    # -- interactions ---------------------------------------------------------

    def media_pks(
        self, tenant: str, external_ids: Sequence[str]
    ) -> dict[str, tuple[int, bool, set[str]]]:
        """external id -> (pk, is public, who else may see it) for items of this tenant."""
        found: dict[str, tuple[int, bool, set[str]]] = {}
        unique = list(dict.fromkeys(external_ids))
        with self.engine.connect() as conn:
            for start in range(0, len(unique), 500):
                chunk = unique[start : start + 500]
                params = {f"e{i}": v for i, v in enumerate(chunk)}
                keys = ", ".join(f":e{i}" for i in range(len(chunk)))
                rows = conn.execute(
                    text(
                        "SELECT m.external_id, m.pk, m.visibility, m.owner, "
                        "(SELECT group_concat(v.viewer, char(31)) FROM media_viewer v "
                        "WHERE v.pk = m.pk) FROM media m "
                        f"WHERE m.tenant = :t AND m.external_id IN ({keys})"
                    ),
                    {"t": tenant, **params},
                )
                for ext, pk, visibility, owner, viewers in rows:
                    allowed = set(viewers.split("\x1f")) if viewers else set()
                    found[ext] = (int(pk), visibility == "public", {owner, *allowed} - {None})
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
        behind, the interactions it was learned from.
        """
        inserted: list[bool] = []
        with write_transaction(self.engine) as conn:
            for event in events:
                result = conn.execute(
                    text(
                        "INSERT OR IGNORE INTO interactions(user_pk, media_pk, type, value, ts, "
                        "context) VALUES (:u, :m, :type, :value, :ts, :ctx)"
                    ),
                    {
                        "u": user_pk,
                        "m": event.media_pk,
                        "type": event.type,
                        "value": event.value,
                        "ts": event.ts,
                        "ctx": json.dumps(event.context) if event.context else None,
                    },
                )
                fresh = bool(result.rowcount)
                inserted.append(fresh)
                if fresh and event.type in ("favorite", "unfavorite"):
                    self._apply_favorite(conn, user_pk, event)
            fresh_events = [e for e, new in zip(events, inserted, strict=True) if new]
            state = learn(fresh_events) if learn is not None and fresh_events else None
            if state is not None:
                self._save_vector(conn, user_pk, model, state)
            if fresh_events:
                _bump_version(conn, user_pk)
        return inserted

    @staticmethod
    def _apply_favorite(conn: Any, user_pk: int, event: EventRow) -> None:
        if event.type == "favorite":
            conn.execute(
                text(
                    "INSERT OR IGNORE INTO favorites(user_pk, media_pk, created_at) "
                    "VALUES (:u, :m, :ts)"
                ),
                {"u": user_pk, "m": event.media_pk, "ts": event.ts},
            )
        else:
            conn.execute(
                text("DELETE FROM favorites WHERE user_pk = :u AND media_pk = :m"),
                {"u": user_pk, "m": event.media_pk},
            )

    def history(
        self, user_pk: int, limit: int, offset: int, session: str | None = None
    ) -> list[tuple[str, EventRow]]:
        """Newest first, with the item's external id; optionally one session's events."""
        in_session = " AND json_extract(i.context, '$.session') = :s" if session else ""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT m.external_id, i.media_pk, i.type, i.value, i.ts, i.context "
                    "FROM interactions i JOIN media m ON m.pk = i.media_pk "
                    f"WHERE i.user_pk = :u{in_session} "
                    "ORDER BY i.ts DESC, i.pk DESC LIMIT :n OFFSET :o"
                ),
                {"u": user_pk, "n": limit, "o": offset, "s": session},
            ).all()
        return [
            (ext, EventRow(int(pk), kind, value, float(ts), json.loads(ctx) if ctx else None))
            for ext, pk, kind, value, ts, ctx in rows
        ]

    def events(self, user_pk: int) -> list[EventRow]:
        """Every event of the user, oldest first (to rebuild the preference vector)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT media_pk, type, value, ts FROM interactions "
                    "WHERE user_pk = :u ORDER BY ts, pk"
                ),
                {"u": user_pk},
            ).all()
        return [EventRow(int(m), kind, value, float(ts), None) for m, kind, value, ts in rows]

    def favorite_ids(self, user_pk: int) -> list[tuple[str, float]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT m.external_id, f.created_at FROM favorites f "
                    "JOIN media m ON m.pk = f.media_pk WHERE f.user_pk = :u "
                    "ORDER BY f.created_at DESC"
                ),
                {"u": user_pk},
            ).all()
        return [(ext, float(ts)) for ext, ts in rows]

    def training_pairs(self, tenant: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(user pk, media pk) for events that mean "watched or wanted" (not dislike/skip)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT i.user_pk, i.media_pk FROM interactions i "
                    "JOIN users u ON u.pk = i.user_pk WHERE u.tenant = :t AND i.type IN "
                    "('view', 'click', 'like', 'rate', 'complete', 'share', 'favorite') "
                    "OR (u.tenant = :t AND i.type = 'progress' AND i.value >= 50)"
                ),
                {"t": tenant},
            ).all()
        if not rows:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty
        pairs = np.asarray(rows, dtype=np.int64)
        return pairs[:, 0], pairs[:, 1]

    def trending(self, tenant: str, since: float, limit: int) -> list[tuple[int, int]]:
        """(media pk, distinct users with a positive-ish interaction since `since`), most
        first. Users, not events: one script sending thousands of views is one voice."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT i.media_pk, count(DISTINCT i.user_pk) AS n FROM interactions i "
                    "JOIN users u ON u.pk = i.user_pk "
                    "WHERE u.tenant = :t AND i.ts >= :since "
                    "AND i.type IN ('view', 'like', 'complete', 'rate', 'favorite', 'share') "
                    "GROUP BY i.media_pk ORDER BY n DESC LIMIT :n"
                ),
                {"t": tenant, "since": since, "n": limit},
            ).all()
        return [(int(pk), int(n)) for pk, n in rows]

    # -- preference vectors ---------------------------------------------------

    def load_vector(self, user_pk: int, model: str) -> VectorState | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT vector, updated_at, events FROM user_vectors "
                    "WHERE user_pk = :u AND model = :m"
                ),
                {"u": user_pk, "m": model},
            ).first()
        if row is None:
            return None
        return VectorState(
            np.frombuffer(row[0], dtype=np.float32).copy(), float(row[1]), int(row[2])
        )

    def save_vector(self, user_pk: int, model: str, state: VectorState) -> None:
        with write_transaction(self.engine) as conn:
            self._save_vector(conn, user_pk, model, state)

    @staticmethod
    def _save_vector(conn: Any, user_pk: int, model: str, state: VectorState) -> None:
        conn.execute(
            text(
                "INSERT INTO user_vectors(user_pk, model, vector, updated_at, events) "
                "VALUES (:u, :m, :v, :t, :n) ON CONFLICT(user_pk) DO UPDATE SET "
                "model = :m, vector = :v, updated_at = :t, events = :n"
            ),
            {
                "u": user_pk,
                "m": model,
                "v": np.ascontiguousarray(state.vector, dtype=np.float32).tobytes(),
                "t": state.updated_at,
                "n": state.events,
            },
        )


def _bump_version(conn: Any, user_pk: int) -> None:
    """Move the user's version (updated_at) strictly forward, even within one clock tick:
    caches key on it, so two changes must never share a version."""
    conn.execute(
        text("UPDATE users SET updated_at = MAX(:now, updated_at + 0.000001) WHERE pk = :u"),
        {"now": time.time(), "u": user_pk},
    )
