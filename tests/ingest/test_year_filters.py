"""The SQL filter (keyword side) and the numpy payload mask (vector side) must select
the same items, release years included, or hybrid results depend on which side
found an item."""

from __future__ import annotations

import random
from pathlib import Path

from sqlalchemy import text

from metamedia.domain import MediaItem, SearchFilters
from metamedia.engine.payload import AttributeFilter, PayloadColumns
from metamedia.storage.filters import filter_sql
from metamedia.storage.sqlite import SQLiteRepository, attributes_of

GENRES = ("drama", "comedy", "noir")


def _random_item(rng: random.Random, n: int) -> MediaItem:
    year = rng.choice([None, *range(1930, 1950)])
    others = rng.sample(range(1925, 1955), rng.choice([0, 0, 1, 2, 5]))
    return MediaItem(
        id=f"i{n}",
        title=f"Item {n}",
        type=rng.choice(["movie", "series"]),
        year=year,
        release_years=others,
        genres=rng.sample(GENRES, rng.randint(0, 2)),
        tenant=rng.choice(["default", "other"]),
    )


def _random_filters(rng: random.Random) -> SearchFilters:
    low = rng.choice([None, *range(1920, 1960)])
    high = rng.choice([None, *range(low or 1920, 1960)])
    return SearchFilters(
        year_min=low,
        year_max=high,
        types=rng.choice([[], ["movie"], ["series"]]),
        genres=rng.choice([[], [rng.choice(GENRES)]]),
    )


def test_sql_and_mask_filters_agree_on_random_items(tmp_path: Path) -> None:
    rng = random.Random(20261201)
    repo = SQLiteRepository(f"sqlite:///{tmp_path / 'f.sqlite3'}")
    items = [_random_item(rng, n) for n in range(300)]
    repo.write_batch(items, {}, "none")
    with repo.engine.connect() as conn:
        pk_of = dict(conn.execute(text("SELECT external_id, pk FROM media")).all())
    payload = PayloadColumns(capacity=4)  # grows while appending
    payload.append([attributes_of(item) for item in items])
    position_ids = [item.id for item in items]
    checked_release_year_only = 0
    for _ in range(400):
        filters = _random_filters(rng)
        tenant = rng.choice(["default", "other"])
        where, params = filter_sql(tenant, None, filters)
        query = text(f"SELECT m.pk FROM media m WHERE {where}")
        with repo.engine.connect() as conn:
            sql_pks = {row[0] for row in conn.execute(query, params)}
        mask = payload.mask(
            AttributeFilter(
                tenant=tenant,
                types=tuple(filters.types),
                genres=tuple(filters.genres),
                year_min=filters.year_min,
                year_max=filters.year_max,
            )
        )
        mask_pks = {pk_of[position_ids[pos]] for pos in mask.nonzero()[0]}
        assert sql_pks == mask_pks, filters
        for item in items:
            low, high = filters.year_min or 0, filters.year_max or 9999
            if item.year is not None and low <= item.year <= high:
                continue
            if pk_of[item.id] in sql_pks:
                checked_release_year_only += 1
    assert checked_release_year_only > 0, "no item matched through a release year alone"
    repo.close()
