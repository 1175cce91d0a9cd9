"""Opening PostgreSQL: URL forms, the schema, and an unreachable server's message."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from metamedia.errors import InvalidRequestError, StoreUnavailableError
from metamedia.storage.postgres import open_postgres
from metamedia.storage.postgres import postgres_url as parse_url
from metamedia.storage.sql_schema import metadata
from metamedia.testing.postgres import free_port


def test_url_forms_take_the_psycopg_driver() -> None:
    for given in (
        "postgresql://u:pw@db.example:5433/app",
        "postgres://u:pw@db.example:5433/app",
        "postgresql+psycopg://u:pw@db.example:5433/app",
    ):
        url = parse_url(given)
        assert url.drivername == "postgresql+psycopg"
        assert (url.username, url.password, url.host, url.port, url.database) == (
            "u",
            "pw",
            "db.example",
            5433,
            "app",
        )
    for refused in ("postgresql+psycopg2://u:pw@h/db", "mysql://u@h/db", "no-scheme"):
        with pytest.raises(InvalidRequestError) as caught:
            parse_url(refused)
        assert "pw" not in str(caught.value)


def test_open_creates_the_schema_and_reopens(postgres_url: str) -> None:
    plain = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    engine = open_postgres(plain)
    try:
        assert engine.dialect.name == "postgresql"
        assert engine.dialect.driver == "psycopg"
        assert engine.pool._pre_ping
        assert set(metadata.tables) <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    again = open_postgres(postgres_url.replace("postgresql+psycopg://", "postgres://"))
    again.dispose()  # an existing schema is left as it is


def test_unreachable_server_names_host_and_port_not_the_password() -> None:
    port = free_port()  # nothing listens there
    secret = "s3cret-Pa55word"
    with pytest.raises(StoreUnavailableError) as caught:
        open_postgres(f"postgresql://metamedia:{secret}@127.0.0.1:{port}/catalog")
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "catalog" in message
    assert secret not in message
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    assert caught.value.status_code == 503
