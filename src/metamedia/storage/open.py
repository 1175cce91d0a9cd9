"""Picks the storage backends for a database URL: the one module that names them.

Everything else sees the role protocols of `storage/roles.py`; an import-linter
contract forbids importing a backend module from anywhere but here. The server
backends (PostgreSQL, Redis) are imported when a URL names them, so the embedded
default never loads psycopg or redis: ~16 MB of resident memory it has no use for.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from limits.storage import Storage as RateStorage
from sqlalchemy.engine import Engine

from metamedia.errors import InvalidRequestError
from metamedia.storage.outage import translate_outages
from metamedia.storage.roles import (
    ActivityCounters,
    AuditLog,
    CacheStore,
    CatalogStore,
    DatabaseBackup,
    EventStream,
    ExperimentStore,
    KeyStore,
    MessageBus,
    UserStore,
    VectorStore,
)
from metamedia.storage.sql_experiments import SQLExperimentStore
from metamedia.storage.sql_security import SQLAuditLog, SQLKeyStore
from metamedia.storage.sql_users import SQLUserStore
from metamedia.storage.sqlite import SQLiteRepository
from metamedia.storage.sqlite_backup import SQLiteBackup
from metamedia.storage.urls import redact_url

__all__ = [
    "SharedServices",
    "Stores",
    "open_backup",
    "open_rate_storage",
    "open_shared",
    "open_stores",
    "redact_url",
    "shared_namespace",
]


@dataclass(frozen=True)
class Stores:
    """One backend per relational role, all on one database."""

    catalog: CatalogStore
    users: UserStore
    experiments: ExperimentStore
    keys: KeyStore
    audit: AuditLog
    engine: Engine  # what statement timing (observability.sql) listens on
    # The vector role when it lives in the database (pgvector); None: each process
    # searches its own in-memory index, derived from the catalog.
    vectors: VectorStore | None = None

    def close(self) -> None:
        self.catalog.close()


def _scheme(url: str) -> str:
    return url.split(":", 1)[0].split("+", 1)[0].lower()


def open_backup(url: str) -> DatabaseBackup:
    """The backup role for the database at `url` (`metamedia backup` / `restore`).

    Opens no engine and runs no migration: backing up never changes the source.
    """
    scheme = _scheme(url)
    if scheme == "sqlite":
        return SQLiteBackup(url)
    if scheme in ("postgresql", "postgres"):
        from metamedia.storage.pg_backup import PostgresBackup

        return PostgresBackup(url)
    raise _unsupported(scheme)


def open_stores(
    url: str, *, vector_store: str = "memory", vector_model: str = "", dim: int = 0
) -> Stores:
    """Backends for `url` by its scheme: `sqlite:` (the embedded default) or
    `postgresql:` (a server shared by many replicas)."""
    scheme = _scheme(url)
    if scheme == "sqlite":
        if vector_store != "memory":
            raise InvalidRequestError(
                f"vector store {vector_store!r} needs a postgresql:// database URL; "
                "the embedded store keeps vectors in memory"
            )
        return _embedded(url)
    if scheme in ("postgresql", "postgres"):
        return _server(url, vector_store == "pgvector", vector_model, dim)
    raise _unsupported(scheme)


def _embedded(url: str) -> Stores:
    catalog = SQLiteRepository(url)
    return _on_one_engine(catalog, catalog.engine, None)


def _server(url: str, pgvector: bool, vector_model: str, dim: int) -> Stores:
    from metamedia.storage.pg_vectors import PgVectorStore
    from metamedia.storage.postgres import open_postgres
    from metamedia.storage.postgres_catalog import PostgresCatalog

    engine = open_postgres(url)
    translate_outages(engine)
    vectors = None
    if pgvector:
        vectors = PgVectorStore(engine, dim)
        vectors.ensure_schema()
    catalog = PostgresCatalog(engine, vectors, vector_model)
    catalog.backfill_vectors()
    return _on_one_engine(catalog, engine, vectors)


def _unsupported(scheme: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"database URL scheme {scheme!r} is not supported: use sqlite:///PATH "
        "or postgresql://USER@HOST:PORT/DB"
    )


def _on_one_engine(catalog: CatalogStore, engine: Engine, vectors: VectorStore | None) -> Stores:
    """The relational roles besides the catalog are one SQL code path on either database."""
    return Stores(
        catalog=catalog,
        users=SQLUserStore(engine),
        experiments=SQLExperimentStore(engine),
        keys=SQLKeyStore(engine),
        audit=SQLAuditLog(engine),
        engine=engine,
        vectors=vectors,
    )


@dataclass(frozen=True)
class SharedServices:
    """What replicas share beside the database (Redis): the caches' shared tier, the
    message bus that tells every replica what changed, and the user-event stream
    with the activity counters its consumers keep.

    Every part is best-effort: while Redis is down each answers as if it were
    empty (`status()` says 'degraded'), and each recovers on its own.
    """

    url: str  # redacted: safe to log and show
    namespace: str  # every key and channel of this deployment starts with it
    cache: CacheStore
    bus: MessageBus
    events: EventStream
    counters: ActivityCounters
    status: Callable[[], str]
    close: Callable[[], None]


def open_shared(url: str, database_url: str) -> SharedServices:
    """The shared services for a `redis://` URL. Connects lazily: a Redis that is down
    at start-up degrades the service instead of stopping it.

    Keys, channels and the stream are namespaced by the database they serve, so two
    deployments that share one Redis (staging and production, two data directories
    on one machine) never read each other's cached answers or events. Replicas of
    one deployment must therefore name the database by the same URL.
    """
    from metamedia.storage.redis_bus import RedisBus
    from metamedia.storage.redis_cache import RedisCache
    from metamedia.storage.redis_link import RedisLink
    from metamedia.storage.redis_stream import RedisActivityCounters, RedisEventStream

    link = RedisLink(url, namespace=shared_namespace(database_url))
    bus = RedisBus(link)
    events = RedisEventStream(link)

    def close() -> None:
        bus.close()
        events.close()
        link.close()

    return SharedServices(
        url=link.shown_url,
        namespace=link.namespace,
        cache=RedisCache(link),
        bus=bus,
        events=events,
        counters=RedisActivityCounters(link),
        status=link.status,
        close=close,
    )


def shared_namespace(database_url: str) -> str:
    """The Redis key prefix of the deployment that serves `database_url`."""
    return "mm:" + hashlib.sha256(redact_url(database_url).encode()).hexdigest()[:12]


def open_rate_storage(url: str, database_url: str) -> RateStorage:
    """Rate-limit counters shared by every replica, on the Redis at `url`."""
    from metamedia.storage.redis_limits import redis_rate_storage

    return redis_rate_storage(url, shared_namespace(database_url))
