"""Flag / experiment definitions, exposures and outcomes in the relational store.

Every write to the definitions bumps the `features_version` counter in `meta`
in the same transaction, so any process sharing the database can tell with one
primary-key read whether it must reload. Each write transaction starts with
that bump: it takes SQLite's write lock first (waiting on `busy_timeout`)
instead of failing to upgrade a read lock when two processes race; on
PostgreSQL it locks the counter's row, so writers of definitions queue there
the same way. Statements are SQLAlchemy Core and answer alike on SQLite and
PostgreSQL; what differs lives in `sql_dialect`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import (
    Connection,
    Integer,
    Text,
    and_,
    bindparam,
    cast,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.engine import Engine

from metamedia.storage.records import (
    ConfigEntry,
    ConfigSync,
    DefinitionRow,
    Exposure,
    OutcomeCounts,
    VariantCounts,
)
from metamedia.storage.sql_dialect import conflict_insert, greatest, least, write_transaction
from metamedia.storage.sql_schema import (
    experiment_exposures,
    experiment_outcomes,
    feature_definitions,
    interactions,
    meta,
    users,
)

VERSION_KEY = "features_version"


class SQLExperimentStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- definitions -------------------------------------------------------------

    def version(self) -> int:
        """The definitions' change counter: one indexed read, cheap enough per request."""
        with self.engine.connect() as conn:
            value = conn.execute(select(meta.c.value).where(meta.c.key == VERSION_KEY)).scalar()
        return int(value) if value is not None else 0

    def load(self) -> tuple[int, list[DefinitionRow]]:
        """The version and every definition, the version read first.

        Under PostgreSQL's READ COMMITTED each statement sees its own snapshot, so a
        writer may commit between the two reads; reading the version first means the
        definitions are never older than the version returned (at worst newer: one
        needless reload later), never the stale pair that would stick.
        """
        with self.engine.connect() as conn:
            value = conn.execute(select(meta.c.value).where(meta.c.key == VERSION_KEY)).scalar()
            rows = conn.execute(select(feature_definitions).order_by(feature_definitions.c.key))
            found = [_definition(row._mapping) for row in rows]
        return (int(value) if value is not None else 0), found

    def get(self, key: str) -> DefinitionRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(feature_definitions).where(feature_definitions.c.key == key)
            ).first()
        return None if row is None else _definition(row._mapping)

    def put(self, key: str, kind: str, body: dict[str, Any], actor: str) -> None:
        """Create or replace from the API; keeps the config hash (see `sync_config`)."""
        now = time.time()
        with write_transaction(self.engine) as conn:
            _bump(conn)
            _upsert(
                conn,
                {"key": key, "kind": kind, "body": _dump(body), "source": "api"},
                now,
                actor,
                keep=("config_hash",),
            )

    def delete(self, key: str) -> bool:
        with write_transaction(self.engine) as conn:
            _bump(conn)
            done = conn.execute(delete(feature_definitions).where(feature_definitions.c.key == key))
        return bool(done.rowcount)

    def sync_config(self, entries: Iterable[ConfigEntry], actor: str) -> ConfigSync:
        """Apply configured definitions at start-up; the API's edits win until the config
        text of that definition changes.

        - absent in the store: inserted;
        - present with a different config hash (the configured definition changed, or
          the key was created through the API and is now configured): overridden;
        - same hash: left alone, including any edit made through the API since;
        - last written by the config but no longer configured: removed.
        """
        wanted = {entry.key: entry for entry in entries}
        inserted: list[str] = []
        overridden: list[str] = []
        removed: list[str] = []
        now = time.time()
        with write_transaction(self.engine) as conn:
            _bump(conn)
            current = {
                row.key: (row.source, row.config_hash)
                for row in conn.execute(
                    select(
                        feature_definitions.c.key,
                        feature_definitions.c.source,
                        feature_definitions.c.config_hash,
                    )
                )
            }
            for key, entry in wanted.items():
                if key in current and current[key][1] == entry.config_hash:
                    continue
                (overridden if key in current else inserted).append(key)
                values = {
                    "key": key,
                    "kind": entry.kind,
                    "body": _dump(entry.body),
                    "source": "config",
                    "config_hash": entry.config_hash,
                }
                _upsert(conn, values, now, actor)
            for key, (source, _) in current.items():
                if source == "config" and key not in wanted:
                    removed.append(key)
                    conn.execute(
                        delete(feature_definitions).where(feature_definitions.c.key == key)
                    )
        return ConfigSync(inserted, overridden, removed)

    # -- exposures and outcomes --------------------------------------------------

    def record_exposure(
        self, experiment: str, tenant: str, user: str, variant: str, ts: float
    ) -> None:
        """A first exposure seen by this process; another process may have written it."""
        with write_transaction(self.engine) as conn:
            stmt = conflict_insert(conn, experiment_exposures).values(
                experiment=experiment,
                tenant=tenant,
                user_id=user,
                variant=variant,
                first_ts=ts,
                last_ts=ts,
                count=1,
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[
                        experiment_exposures.c.experiment,
                        experiment_exposures.c.tenant,
                        experiment_exposures.c.user_id,
                    ],
                    set_={
                        "count": experiment_exposures.c.count + 1,
                        "last_ts": stmt.excluded.last_ts,
                    },
                )
            )

    def add_exposure_counts(self, rows: list[tuple[str, str, str, int, float]]) -> None:
        """(experiment, tenant, user, extra exposures, last ts) for rows that exist."""
        if not rows:
            return
        x = experiment_exposures
        statement = (
            update(x)
            .where(
                x.c.experiment == bindparam("e"),
                x.c.tenant == bindparam("t"),
                x.c.user_id == bindparam("u"),
            )
            .values(
                count=x.c.count + bindparam("n", type_=Integer),
                last_ts=greatest(x.c.last_ts, bindparam("ts", type_=x.c.last_ts.type)),
            )
        )
        with write_transaction(self.engine) as conn:
            conn.execute(
                statement,
                [{"e": e, "t": t, "u": u, "n": n, "ts": ts} for e, t, u, n, ts in rows],
            )

    def exposures_of(self, tenant: str, user: str) -> list[Exposure]:
        """The user's exposures, by experiment key."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    experiment_exposures.c.experiment,
                    experiment_exposures.c.variant,
                    experiment_exposures.c.first_ts,
                )
                .where(
                    experiment_exposures.c.tenant == tenant, experiment_exposures.c.user_id == user
                )
                .order_by(experiment_exposures.c.experiment)
            ).all()
        return [Exposure(r.experiment, r.variant, r.first_ts) for r in rows]

    def add_outcomes(self, rows: list[tuple[str, str, str, str, int, float]]) -> None:
        """(experiment, tenant, user, type, events, earliest ts) added to per-user counts."""
        if not rows:
            return
        with write_transaction(self.engine) as conn:
            for experiment, tenant, user, kind, count, ts in rows:
                stmt = conflict_insert(conn, experiment_outcomes).values(
                    experiment=experiment,
                    tenant=tenant,
                    user_id=user,
                    type=kind,
                    count=count,
                    first_ts=ts,
                )
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=[
                            experiment_outcomes.c.experiment,
                            experiment_outcomes.c.tenant,
                            experiment_outcomes.c.user_id,
                            experiment_outcomes.c.type,
                        ],
                        set_={
                            "count": experiment_outcomes.c.count + stmt.excluded.count,
                            "first_ts": least(experiment_outcomes.c.first_ts, ts),
                        },
                    )
                )

    def variant_counts(self, experiment: str) -> dict[str, VariantCounts]:
        """Exposed users and exposures per variant."""
        e = experiment_exposures
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(e.c.variant, func.count(), func.coalesce(func.sum(e.c.count), 0))
                .where(e.c.experiment == experiment)
                .group_by(e.c.variant)
            ).all()
        return {r[0]: VariantCounts(int(r[1]), int(r[2])) for r in rows}

    def outcome_counts(self, experiment: str) -> dict[tuple[str, str], OutcomeCounts]:
        """Per (variant, outcome type): users with at least one, and events.

        Also (variant, "any"): users with at least one outcome of any type. Joined on
        the exposure row so an outcome counts for the variant the user was exposed to.
        """
        e, o = experiment_exposures, experiment_outcomes
        joined = o.join(
            e,
            and_(
                e.c.experiment == o.c.experiment,
                e.c.tenant == o.c.tenant,
                e.c.user_id == o.c.user_id,
            ),
        )
        with self.engine.connect() as conn:
            per_type = conn.execute(
                select(e.c.variant, o.c.type, func.count(), func.sum(o.c.count))
                .select_from(joined)
                .where(o.c.experiment == experiment)
                .group_by(e.c.variant, o.c.type)
            ).all()
            any_type = conn.execute(
                select(
                    e.c.variant,
                    func.count(func.distinct(o.c.tenant + "\x1f" + o.c.user_id)),
                    func.sum(o.c.count),
                )
                .select_from(joined)
                .where(o.c.experiment == experiment)
                .group_by(e.c.variant)
            ).all()
        out = {(r[0], r[1]): OutcomeCounts(int(r[2]), int(r[3])) for r in per_type}
        out.update({(r[0], "any"): OutcomeCounts(int(r[1]), int(r[2])) for r in any_type})
        return out

    def forget_user(self, tenant: str, user: str) -> None:
        """Erasure: no exposure or outcome of the user is kept."""
        with write_transaction(self.engine) as conn:
            for table in (experiment_exposures, experiment_outcomes):
                conn.execute(delete(table).where(table.c.tenant == tenant, table.c.user_id == user))

    def forget_experiment(self, experiment: str) -> None:
        with write_transaction(self.engine) as conn:
            for table in (experiment_exposures, experiment_outcomes):
                conn.execute(delete(table).where(table.c.experiment == experiment))

    # -- user traits for targeting -----------------------------------------------

    def user_traits(self, tenant: str, user: str) -> tuple[bool, str | None]:
        """(returning, region): returning once any interaction is stored; the region
        from the user's saved preferences. One query; only run when a rule needs it."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(
                    users.c.preferences,
                    select(interactions.c.pk)
                    .where(interactions.c.user_pk == users.c.pk)
                    .limit(1)
                    .exists(),
                ).where(users.c.tenant == tenant, users.c.external_id == user)
            ).first()
        if row is None:
            return False, None
        try:
            prefs = json.loads(row[0] or "{}")
        except ValueError:
            prefs = {}
        region = prefs.get("region") if isinstance(prefs, dict) else None
        return bool(row[1]), region if isinstance(region, str) else None


def _bump(conn: Connection) -> None:
    stmt = conflict_insert(conn, meta).values(key=VERSION_KEY, value="1")
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[meta.c.key],
            set_={"value": cast(cast(meta.c.value, Integer) + 1, Text)},
        )
    )


def _dump(body: dict[str, Any]) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def _definition(row: Any) -> DefinitionRow:
    return DefinitionRow(
        key=row["key"],
        kind=row["kind"],
        body=json.loads(row["body"]),
        source=row["source"],
        config_hash=row["config_hash"],
        updated_at=row["updated_at"],
        updated_by=row["updated_by"],
    )


def _upsert(
    conn: Connection, values: dict[str, Any], now: float, actor: str, keep: tuple[str, ...] = ()
) -> None:
    """Insert a definition or overwrite every column of the stored one except `keep`."""
    row = {"config_hash": None, **values, "updated_at": now, "updated_by": actor}
    stmt = conflict_insert(conn, feature_definitions).values(**row)
    changed = [c for c in row if c not in ("key", *keep)]
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[feature_definitions.c.key],
            set_={c: stmt.excluded[c] for c in changed},
        )
    )
