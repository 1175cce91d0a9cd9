"""The catalog role on both backends: every method, the same answers.

SQLite (the embedded default) and PostgreSQL are written the same items in the
same order, then asked the same questions. Filter listings must be identical;
the two full-text engines rank differently, so keyword top-10s must overlap by
at least 0.8 on average.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from metamedia.domain import MediaItem
from metamedia.engine.payload import AttributeFilter, attributes_match
from metamedia.storage.open import Stores, open_stores
from metamedia.storage.sqlite import attributes_of

DEMO = Path(__file__).resolve().parents[2] / "src" / "metamedia" / "demo" / "catalog.jsonl"
KEYWORD_QUERIES = (
    "heist vault",
    "a detective hunts a killer in the rain",
    "space station crew",
    "love story in paris",
    "ninth vault",
    "robots",
    "family comedy holiday",
    "war drama soldiers",
    "haunted house",
    "ocean adventure",
)


def demo_items() -> list[MediaItem]:
    items = [MediaItem.model_validate(json.loads(line)) for line in DEMO.read_text().splitlines()]
    rng = random.Random(7)
    out = []
    for item in items:  # some private items, so visibility is part of the contract
        if rng.random() < 0.1:
            item = item.model_copy(
                update={"visibility": "private", "owner": "ana", "allowed_users": ["bo"]}
            )
        out.append(item)
    return out


@pytest.fixture(params=["sqlite", "postgresql"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
    opened = open_stores(url)
    yield opened
    opened.close()


def test_every_catalog_method(stores: Stores) -> None:
    catalog = stores.catalog
    items = demo_items()
    assert catalog.write_batch(items[:100], {}, "none") == ["inserted"] * 100
    statuses = catalog.write_batch(
        [items[0], items[1].model_copy(update={"title": "Renamed"}), *items[100:]], {}, "none"
    )
    assert statuses == ["unchanged", "updated", *["inserted"] * (len(items) - 100)]
    assert catalog.count() == len(items)
    assert catalog.count("default") == len(items)
    assert catalog.count("nobody") == 0
    catalog.ping()

    hashes = catalog.hashes("default", [items[0].id, "missing"])
    assert set(hashes) == {items[0].id}
    assert hashes[items[0].id].content_hash == items[0].content_hash()

    vectors = {items[0].content_hash(): np.arange(4, dtype=np.float32)}
    catalog.store_embeddings("m", vectors)
    catalog.store_embeddings("m", vectors)  # a second write of the same key is ignored
    assert catalog.known_embeddings("m", [items[0].content_hash(), "x"]) == {
        items[0].content_hash()
    }
    stored = catalog.stored_embeddings("m", [items[0].content_hash()])
    assert np.array_equal(stored[items[0].content_hash()], np.arange(4, dtype=np.float32))

    got = catalog.get("default", items[1].id)
    assert got is not None and got.item.title == "Renamed"
    assert catalog.get("default", "missing") is None
    assert catalog.get_many([got.pk])[got.pk].id == items[1].id

    rows = catalog.index_rows([got.pk], "m")
    assert rows[0].pk == got.pk and rows[0].attributes == attributes_of(got.item)
    streamed = [row.pk for batch in catalog.iter_index_rows("none", batch=50) for row in batch]
    assert len(streamed) == len(items) and streamed == sorted(streamed)

    before = catalog.last_change()
    assert catalog.delete("default", items[2].id)
    assert not catalog.delete("default", items[2].id)
    assert catalog.get("default", items[2].id) is None
    changes = catalog.changes_since(before)
    assert [(c.op) for c in changes] == ["delete"] and catalog.last_change() == changes[-1].seq

    titles = catalog.catalog_titles("default")
    public = [i for i in items if i.visibility == "public" and i.id != items[2].id]
    assert len(titles) == len(public)

    report = catalog.check_keyword_index()
    assert (report.missing, report.orphaned, report.stale) == ([], [], [])
    assert catalog.rebuild_keyword_index() == len(items) - 1
    assert catalog.keyword_search(AttributeFilter("default"), "Renamed", 5)[0][0] == got.pk


def test_embedding_spaces_are_listed_and_dropped_one_at_a_time(stores: Stores) -> None:
    """`metamedia index prune-vectors` rests on these two: a dropped space's vectors
    are gone, every other space's stay byte for byte."""
    catalog = stores.catalog
    old = {f"h{i}": np.full(4, i, dtype=np.float32) for i in range(3)}
    new = {f"h{i}": np.full(4, -i, dtype=np.float32) for i in range(5)}
    catalog.store_embeddings("model@old+recipe", old)
    catalog.store_embeddings("model@new+recipe", new)
    assert catalog.embedding_spaces() == {"model@old+recipe": 3, "model@new+recipe": 5}
    assert catalog.drop_embeddings("model@old+recipe") == 3
    assert catalog.drop_embeddings("never-stored") == 0
    assert catalog.embedding_spaces() == {"model@new+recipe": 5}
    assert catalog.stored_embeddings("model@old+recipe", list(old)) == {}
    kept = catalog.stored_embeddings("model@new+recipe", list(new))
    assert all(np.array_equal(kept[h], v) for h, v in new.items())


def test_filter_listings_are_identical_and_match_the_reference(
    stores: Stores,
) -> None:
    catalog = stores.catalog
    items = demo_items()
    catalog.write_batch(items, {}, "none")
    rng = random.Random(11)
    genres = sorted({g for i in items for g in i.genres})
    languages = sorted({i.language for i in items if i.language})
    attributes_by_pk = {
        row.pk: row.attributes for batch in catalog.iter_index_rows("none") for row in batch
    }
    for _ in range(60):
        flt = AttributeFilter(
            tenant="default",
            viewer=rng.choice([None, "ana", "bo", "cy"]),
            types=tuple(rng.sample(["movie", "series"], rng.randint(0, 1))),
            genres=tuple(rng.sample(genres, rng.randint(0, 2))),
            languages=tuple(rng.sample(languages, rng.randint(0, 1))),
            year_min=rng.choice([None, 1970, 1990, 2005]),
            min_rating=rng.choice([None, 3.0, 4.0]),
            max_maturity=rng.choice([None, 1, 3]),
            blocked_owners=tuple(rng.sample(["ana", "bo"], rng.randint(0, 1))),
        )
        listed = catalog.filter_pks(flt)
        expected = sorted(
            pk for pk, attrs in attributes_by_pk.items() if attributes_match(flt, attrs)
        )
        assert listed == expected, flt


def test_keyword_search_agrees_across_backends(postgres_url: str, tmp_path: Path) -> None:
    items = demo_items()
    embedded = open_stores(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    server = open_stores(postgres_url)
    try:
        for stores in (embedded, server):
            stores.catalog.write_batch(items, {}, "none")
        overlaps = []
        for query in KEYWORD_QUERIES:
            flt = AttributeFilter("default")
            a = [pk for pk, _ in embedded.catalog.keyword_search(flt, query, 10)]
            b = [pk for pk, _ in server.catalog.keyword_search(flt, query, 10)]
            assert a and b, query
            overlaps.append(len(set(a) & set(b)) / max(len(a), len(b)))
        assert sum(overlaps) / len(overlaps) >= 0.8, overlaps
        with server.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM media_text")).scalar_one() == len(items)
    finally:
        embedded.close()
        server.close()


def test_feed_rankings_are_identical_across_backends(postgres_url: str, tmp_path: Path) -> None:
    """The feed's ordered sources read these; both stores must rank the same way."""
    items = demo_items()
    embedded = open_stores(f"sqlite:///{tmp_path / 'r.sqlite3'}")
    server = open_stores(postgres_url)
    try:
        for stores in (embedded, server):
            stores.catalog.write_batch(items, {}, "none")
        ids = {
            name: {
                row.pk: row.attributes
                for batch in stores.catalog.iter_index_rows("none")
                for row in batch
            }
            for name, stores in (("sqlite", embedded), ("postgresql", server))
        }
        assert list(ids["sqlite"]) == list(ids["postgresql"])  # same pks, same order
        for flt in (
            AttributeFilter("default"),
            AttributeFilter("default", viewer="ana", max_maturity=2),
            AttributeFilter("default", genres=("drama",), year_min=1990),
        ):
            for method in ("most_popular", "newest"):
                a = getattr(embedded.catalog, method)(flt, 40)
                b = getattr(server.catalog, method)(flt, 40)
                assert a == b, (method, flt)
                assert all(attributes_match(flt, ids["sqlite"][pk]) for pk in a)
            some = list(ids["sqlite"])[::3]
            assert embedded.catalog.visible_pks(flt, some) == server.catalog.visible_pks(flt, some)
        pks = list(ids["sqlite"])[:50]
        assert embedded.catalog.ranking_rows(pks).keys() == server.catalog.ranking_rows(pks).keys()
        stored = embedded.catalog.get_many(pks)
        for pk, row in embedded.catalog.ranking_rows(pks).items():
            other = server.catalog.ranking_rows([pk])[pk]
            assert (row.popularity, row.released, row.language) == (
                other.popularity,
                other.released,
                other.language,
            )
            # A feed page shows these two without parsing the document.
            assert (row.external_id, row.title) == (other.external_id, other.title)
            assert (row.external_id, row.title) == (stored[pk].id, stored[pk].title)
    finally:
        embedded.close()
        server.close()
