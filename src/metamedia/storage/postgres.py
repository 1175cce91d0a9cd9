"""Opening a PostgreSQL database: the engine every PostgreSQL-backed store shares.

Only the engine lives here (driver, pool, schema, a clear error when the server
cannot be reached); the stores take it like they take a SQLite engine.
"""

from __future__ import annotations

from sqlalchemy import create_engine
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from metamedia.errors import InvalidRequestError, StoreUnavailableError
from metamedia.storage.sql_migrate import upgrade_database
from metamedia.storage.urls import redact_url

DRIVER = "postgresql+psycopg"
DEFAULT_PORT = 5432
# Per process. A request thread may hold two connections at once (a write transaction
# plus a read the service makes inside it), and anyio runs 40 request threads; a pool
# that ran dry there would stall writers for the pool timeout. 16 + 48 stays well
# under the server's max_connections for a few replicas; a server shared by many
# should sit behind PgBouncer.
POOL_SIZE = 16
MAX_OVERFLOW = 48
POOL_TIMEOUT_S = 30
CONNECT_TIMEOUT_S = 10


def postgres_url(url: str) -> URL:
    """`url` as a psycopg 3 URL: `postgresql://` and `postgres://` (what most hosting
    services print) take the psycopg driver; any other driver is refused, because
    only psycopg 3 is installed and tested."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise InvalidRequestError(f"not a database URL: {redact_url(url)}")
    dialect, _, driver = scheme.lower().partition("+")
    if dialect not in ("postgresql", "postgres") or driver not in ("", "psycopg"):
        raise InvalidRequestError(
            f"unsupported PostgreSQL URL scheme {scheme!r}: use postgresql://USER@HOST:PORT/DB"
        )
    try:
        return make_url(f"{DRIVER}://{rest}")
    except ArgumentError as exc:
        raise InvalidRequestError(f"not a database URL: {redact_url(url)}") from exc


def open_postgres(
    url: str, *, pool_size: int = POOL_SIZE, max_overflow: int = MAX_OVERFLOW
) -> Engine:
    """Engine for a PostgreSQL URL, schema created if missing.

    Connects once before returning, so a wrong host, port or password fails here,
    at start-up, with a message naming host and port (never the password), instead
    of on the first request.
    """
    target = postgres_url(url)
    engine = create_engine(
        target,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=POOL_TIMEOUT_S,
        # A server restart or failover leaves dead pooled connections: test on checkout.
        pool_pre_ping=True,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "metamedia"},
    )
    try:
        upgrade_database(engine)
    except DBAPIError as exc:
        engine.dispose()
        raise _unreachable(target, exc) from None
    return engine


def _unreachable(target: URL, exc: DBAPIError) -> StoreUnavailableError:
    """The error for a server that refused or could not be reached, password removed.

    Raised without its cause: the driver's message is kept (first line only, the
    password scrubbed should it ever appear), the exception chain is not.
    """
    lines = str(exc.orig or exc).strip().splitlines()
    reason = lines[0] if lines else ""
    if target.password:
        reason = reason.replace(str(target.password), "***")
    where = f"{target.host or 'localhost'}:{target.port or DEFAULT_PORT}"
    database = f" database {target.database!r}" if target.database else ""
    user = f" as {target.username!r}" if target.username else ""
    return StoreUnavailableError(
        f"cannot open PostgreSQL at {where}{database}{user}: {reason}"
        if reason
        else f"cannot open PostgreSQL at {where}{database}{user}"
    )
