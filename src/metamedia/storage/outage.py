"""Turning "the database server is gone" into one product error, at the engine.

Services must not import the database driver to tell an outage from a bug, so the
engine translates: a lost or refused connection becomes `StoreUnavailableError`
(503 with Retry-After at the API); every other database error passes unchanged.
The pool tests connections on checkout, so once the server is back the next
request reconnects by itself.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from metamedia.errors import StoreUnavailableError

# psycopg's names for "no connection": refused, reset, server shut down, admin kill.
CONNECTION_ERRORS = frozenset({"OperationalError", "InterfaceError", "AdminShutdown"})


def translate_outages(engine: Engine) -> None:
    """Install the translation on `engine` (a server database; SQLite has no server)."""
    host = engine.url.host or "localhost"
    port = engine.url.port or 5432

    def on_error(context: Any) -> None:
        original = context.original_exception
        if context.is_disconnect or type(original).__name__ in CONNECTION_ERRORS:
            raise StoreUnavailableError(
                f"the database at {host}:{port} is not answering "
                f"({type(original).__name__}); nothing was changed, retry shortly"
            ) from None

    event.listen(engine, "handle_error", on_error)
