"""SQLite and PostgreSQL give the same answers to the user store for any event stream.

Hypothesis draws streams rich in the cases where databases tend to differ: equal
timestamps (ordering ties), exact duplicates (insert-or-ignore), favourite then
unfavourite, progress around the training threshold, sessions as strings and
numbers. Pks are mapped to names before comparing, so only the answers count.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metamedia.storage.postgres import open_postgres
from metamedia.storage.records import EventRow
from metamedia.storage.sql_schema import open_sqlite
from tests.contract.conftest import Backend, add_media, open_backend

T0 = 1_764_590_000.5
USERS = ("ann", "bob", "cat")
ITEMS = ("a", "b", "c", "d")
TYPES = ("view", "click", "like", "dislike", "skip", "favorite", "unfavorite", "progress")

events_strategy = st.lists(
    st.tuples(
        st.sampled_from(USERS),
        st.sampled_from(ITEMS),
        st.sampled_from(TYPES),
        st.integers(0, 5),  # few distinct instants: many ties and duplicates
        st.one_of(st.none(), st.sampled_from([10.0, 49.9, 50.0, 80.0])),
        st.sampled_from([None, "s1", "s2", 7]),
    ),
    max_size=25,
)


@pytest.fixture()
def both(postgres_url: str, tmp_path: Path) -> Iterator[tuple[Backend, Backend]]:
    sqlite = open_backend("sqlite", open_sqlite(f"sqlite:///{tmp_path / 'agree.db'}"))
    postgres = open_backend("postgresql", open_postgres(postgres_url))
    yield sqlite, postgres
    sqlite.engine.dispose()
    postgres.engine.dispose()


def _answers(backend: Backend, tenant: str, stream: list[tuple[Any, ...]]) -> dict[str, Any]:
    """Everything the store says about `stream`, pks replaced by names."""
    items = {name: add_media(backend.engine, tenant, name) for name in ITEMS}
    item_name = {pk: name for name, pk in items.items()}
    people = {name: backend.users.ensure(tenant, name).pk for name in USERS}
    person = {pk: name for name, pk in people.items()}
    out: dict[str, Any] = {"inserted": []}
    for user, group in itertools.groupby(stream, key=lambda row: row[0]):
        batch = [
            EventRow(
                items[item],
                kind,
                value,
                T0 + tick,
                None if session is None else {"session": session},
            )
            for _, item, kind, tick, value, session in group
        ]
        out["inserted"].append(backend.users.add_events(people[user], batch))

    def named(row: EventRow) -> tuple[Any, ...]:
        return (item_name[row.media_pk], row.type, row.value, row.ts, row.context)

    for name, pk in people.items():
        out[f"history {name}"] = [(ext, named(e)) for ext, e in backend.users.history(pk, 50, 0)]
        out[f"page {name}"] = [ext for ext, _ in backend.users.history(pk, 3, 2)]
        out[f"s1 {name}"] = [named(e) for _, e in backend.users.history(pk, 50, 0, "s1")]
        out[f"7 {name}"] = backend.users.history(pk, 50, 0, "7")
        out[f"events {name}"] = [named(e) for e in backend.users.events(pk)]
        out[f"favorites {name}"] = backend.users.favorite_ids(pk)
        out[f"rows {name}"] = backend.users.count_rows(pk)
    user_pks, media_pks = backend.users.training_pairs(tenant)
    out["training"] = sorted(
        (person[u], item_name[m])
        for u, m in zip(user_pks.tolist(), media_pks.tolist(), strict=True)
    )
    for tick in (0, 3):
        out[f"trending {tick}"] = [
            (item_name[pk], n) for pk, n in backend.users.trending(tenant, T0 + tick, 3)
        ]
    return out


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(stream=events_strategy)
def test_user_store_answers_agree(both: tuple[Backend, Backend], stream: list[Any]) -> None:
    sqlite, postgres = both
    # Each example writes under a tenant of its own, so examples share the databases
    # without seeing each other.
    tenant = f"t{next(_tenants)}"
    expected = _answers(sqlite, tenant, stream)
    assert _answers(postgres, tenant, stream) == expected
    assert sum(len(batch) for batch in expected["inserted"]) == len(stream)


_tenants = itertools.count()
