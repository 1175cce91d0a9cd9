"""The copy of the filter attributes on PostgreSQL's vector rows (`media_vectors`).

`PgVectorStore` evaluates filters over columns of its own table
(`storage.filters.vector_filter_sql`), copied from the catalog's tables when an item
is written. Three things must hold: that evaluator agrees with the reference
predicate (the same property test as the other evaluators, on the same random
catalogs and filters), the copy follows every later write of the item, and a
database whose vector table predates the copy gets it filled by migration 0005.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest
from alembic import command
from hypothesis import HealthCheck, example, given, settings
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from metamedia.domain import MediaItem
from metamedia.engine.payload import AttributeFilter, attributes_match
from metamedia.storage.filters import vector_filter_sql
from metamedia.storage.pg_vectors import ATTRIBUTE_INDEXES, INDEX, PgVectorStore
from metamedia.storage.postgres import open_postgres
from metamedia.storage.postgres_catalog import PostgresCatalog
from metamedia.storage.sql_migrate import alembic_config, current_revision, head_revision
from metamedia.storage.sqlite import attributes_of
from metamedia.testing.postgres import PostgresServer
from tests.storage.test_filter_model import filters, random_item

DIM = 8
MODEL = "test-space"
Vector = npt.NDArray[np.float32]


def unit_vectors(n: int, seed: int) -> Vector:
    rng = np.random.default_rng(seed)
    matrix = rng.normal(size=(n, DIM)).astype(np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


@dataclass
class Served:
    engine: Engine
    catalog: PostgresCatalog
    store: PgVectorStore

    def pks(self, tenant: str, ids: list[str]) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT external_id, pk FROM media WHERE tenant = :t "
                    "AND external_id = ANY(CAST(:ids AS text[]))"
                ),
                {"t": tenant, "ids": ids},
            )
            return {str(e): int(pk) for e, pk in rows}


def serve(url: str) -> Served:
    """The catalog with the pgvector store attached, as `open_stores` builds it."""
    engine = open_postgres(url)
    store = PgVectorStore(engine, DIM)
    store.ensure_schema()
    return Served(engine, PostgresCatalog(engine, store, MODEL), store)


def write(served: Served, items: list[MediaItem], seed: int) -> dict[str, Vector]:
    """Items with one random vector per content hash; the vectors by item id."""
    vectors = unit_vectors(len(items), seed)
    by_hash = {item.content_hash(): vectors[i] for i, item in enumerate(items)}
    served.catalog.write_batch(items, by_hash, MODEL)
    return {item.id: by_hash[item.content_hash()] for item in items}


# -- the evaluator ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def random_catalog(postgres_server: PostgresServer) -> Iterator[tuple[Served, list[MediaItem]]]:
    """The 300 seeded random items of the SQLite property test, with vectors."""
    rng = random.Random(20261201)
    items = [random_item(rng, n) for n in range(300)]
    served = serve(postgres_server.create_database("vector_filter_property"))
    write(served, items, seed=1)
    yield served, items
    served.engine.dispose()


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(flt=filters())
@example(flt=AttributeFilter("default", min_rating=1e-81))
@example(flt=AttributeFilter("default", year_min=1950, year_max=1940))  # inverted: nothing
@example(flt=AttributeFilter("default", year_min=-(2**40), year_max=2**40))  # past int4
def test_the_vector_table_evaluator_agrees_with_the_reference(
    random_catalog: tuple[Served, list[MediaItem]], flt: AttributeFilter
) -> None:
    served, items = random_catalog
    expected = {item.id for item in items if attributes_match(flt, attributes_of(item))}
    where, params = vector_filter_sql(flt, alias="v")
    with served.engine.connect() as conn:
        statement = text(
            f"SELECT m.external_id FROM media_vectors v JOIN media m ON m.pk = v.pk WHERE {where}"
        )
        got = {r[0] for r in conn.execute(statement, params)}
    assert got == expected
    # And what a search returns (the exact plan here: 300 rows) is exactly that set.
    found = served.store.search(unit_vectors(1, 2)[0], len(items), flt)
    pk_of = served.pks(flt.tenant, [item.id for item in items])
    assert {pk for pk, _ in found} == {pk_of[i] for i in expected}


# -- the copy follows writes -------------------------------------------------------------


def film(ident: str, **fields: object) -> MediaItem:
    values: dict[str, object] = {"id": ident, "title": f"Film {ident}", "type": "movie"}
    values.update(fields)
    return MediaItem.model_validate(values)


@pytest.mark.parametrize("plan", ["exact", "hnsw"])
def test_the_copy_follows_an_update_of_the_item(postgres_url: str, plan: str) -> None:
    """A year change moves the item into and out of a decade's results; genre,
    visibility and viewer changes likewise, with the vector unchanged or not stored
    again. Both plans read the copy: "hnsw" never takes the exact one up front."""
    served = serve(postgres_url)
    if plan == "hnsw":
        served.store = PgVectorStore(served.engine, DIM, exact_max_rows=0)
    others = [film(f"o{n}", year=1990 + n % 20, genres=["drama"]) for n in range(40)]
    write(served, others, seed=3)
    item = film("target", year=1995, genres=["drama"])
    vector = write(served, [item], seed=4)["target"]
    pk = served.pks("default", ["target"])["target"]
    noughties = AttributeFilter("default", year_min=2000, year_max=2009)
    noir = AttributeFilter("default", genres=("noir",))
    store = served.store

    def found(flt: AttributeFilter, k: int = 3) -> set[int]:
        return {p for p, _ in store.search(vector, k, flt)}

    assert pk not in found(noughties)
    assert pk in found(AttributeFilter("default", year_min=1990, year_max=1999))

    # The year changes; the text (and so the vector) may too: written with its vector.
    moved = film("target", year=2004, genres=["drama"])
    write(served, [moved], seed=4)
    assert pk in found(noughties)
    assert pk not in found(AttributeFilter("default", year_min=1990, year_max=1999))

    # Another release year counts too.
    served.catalog.write_batch(
        [film("target", year=2004, release_years=[1971], genres=["drama"])], {}, MODEL
    )
    assert pk in found(AttributeFilter("default", year_min=1970, year_max=1979))

    # A change written with no vector for the new text: the old vector stays, and its
    # attributes still follow the item.
    served.catalog.write_batch([film("target", year=2004, genres=["noir"])], {}, MODEL)
    assert pk in found(noir) and pk not in found(AttributeFilter("default", genres=("drama",)))
    assert pk not in found(AttributeFilter("default", year_min=1970, year_max=1979))

    # Written in another embedding space: no vector kept here, the attributes still follow.
    private = film("target", year=2004, genres=["noir"], visibility="private", owner="ana")
    served.catalog.write_batch([private], {private.content_hash(): vector}, "another-space")
    assert pk not in found(noir)
    assert pk in found(AttributeFilter("default", genres=("noir",), viewer="ana"))
    assert pk not in found(AttributeFilter("default", genres=("noir",), viewer="bo"))

    shared = private.model_copy(update={"allowed_users": ["bo"]})
    served.catalog.write_batch([shared], {}, MODEL)
    assert pk in found(AttributeFilter("default", genres=("noir",), viewer="bo"))

    served.catalog.delete("default", "target")
    assert pk not in found(AttributeFilter("default", viewer="ana"))
    assert store.plans[plan] > 0
    served.engine.dispose()


# -- an older vector table is upgraded ---------------------------------------------------


def test_an_upgraded_database_backfills_the_copy(postgres_url: str) -> None:
    """A database at 0004 with the vector table as the store made it before the copy
    (pk and embedding only, HNSW index): opening it migrates it in place."""
    items = [
        film("a", year=2001, genres=["noir", "drama"], platforms=[{"name": "hulu"}]),
        film("b", year=1999, release_years=[2003], language="fr", rating=4.5),
        film("c", year=1980, visibility="private", owner="ana", allowed_users=["bo"]),
        film("d", type="series", maturity_rating="PG"),
    ]
    vectors = unit_vectors(len(items), 5)
    by_hash = {item.content_hash(): vectors[i] for i, item in enumerate(items)}
    engine = create_engine(postgres_url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0004_feed_order_indexes")
    PostgresCatalog(engine).write_batch(items, by_hash, MODEL)  # media rows, no vectors
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE media_vectors (pk BIGINT PRIMARY KEY REFERENCES media(pk) "
            f"ON DELETE CASCADE, embedding vector({DIM}) NOT NULL)"
        )
        conn.exec_driver_sql(
            "CREATE INDEX ix_media_vectors_hnsw ON media_vectors "
            "USING hnsw (embedding vector_ip_ops) WITH (m = 16, ef_construction = 64)"
        )
        for i, item in enumerate(items):
            conn.execute(
                text(
                    "INSERT INTO media_vectors (pk, embedding) SELECT pk, CAST(:v AS vector) "
                    "FROM media WHERE external_id = :e"
                ),
                {"v": str(vectors[i].tolist()), "e": item.id},
            )
    assert current_revision(engine) == "0004_feed_order_indexes"
    engine.dispose()

    served = serve(postgres_url)  # open_postgres migrates; the store opens as the app does
    try:
        assert current_revision(served.engine) == head_revision()
        with served.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT m.external_id, v.tenant, v.type, v.public, v.owner, v.viewers, "
                    "v.language, CAST(v.years AS text), v.rating, v.maturity_level, v.genres, "
                    "v.platforms, v.embedding <#> CAST(:q AS vector) "
                    "FROM media_vectors v JOIN media m ON m.pk = v.pk ORDER BY 1"
                ),
                {"q": str(vectors[0].tolist())},
            ).all()
            indexes = set(
                conn.execute(
                    text("SELECT indexname FROM pg_indexes WHERE tablename = 'media_vectors'")
                ).scalars()
            )
            constraints = set(
                conn.execute(
                    text(
                        "SELECT conname FROM pg_constraint "
                        "WHERE conrelid = CAST('media_vectors' AS regclass)"
                    )
                ).scalars()
            )
        by_id = {row[0]: row[1:] for row in rows}
        assert set(by_id) == {"a", "b", "c", "d"}
        assert by_id["a"][:11] == (
            "default", "movie", True, None, [], None, "{[2001,2002)}", None, -1,
            ["drama", "noir"], ["hulu"],
        )  # fmt: skip
        assert by_id["a"][11] == pytest.approx(-1.0, abs=1e-5)  # the vector came along
        assert by_id["b"][5:8] == ("fr", "{[1999,2000),[2003,2004)}", 4.5)
        assert by_id["c"][2:5] == (False, "ana", ["bo"])
        assert by_id["d"][1] == "series" and by_id["d"][6] == "{}" and by_id["d"][8] >= 0
        assert indexes >= {INDEX, "media_vectors_pkey", *(name for name, _ in ATTRIBUTE_INDEXES)}
        assert {"media_vectors_pkey", "media_vectors_pk_fkey"} <= constraints
        assert not [name for name in constraints if "rebuilt" in name]

        pk_of = served.pks("default", ["a", "b", "c", "d"])
        noughties = AttributeFilter("default", year_min=2000, year_max=2009)
        assert {pk for pk, _ in served.store.search(vectors[0], 10, noughties)} == {
            pk_of["a"],
            pk_of["b"],
        }
        # Still cascades from media after the rebuild.
        served.catalog.delete("default", "a")
        assert pk_of["a"] not in {pk for pk, _ in served.store.search(vectors[0], 10, noughties)}
    finally:
        served.engine.dispose()
