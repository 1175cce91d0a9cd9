"""With METAMEDIA_VECTOR_STORE=pgvector, item-level nearest neighbours (feed content
candidates, "more like this") run in PostgreSQL and give the embedded answers."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from metamedia.errors import InvalidRequestError
from metamedia.services.runtime import Runtime
from metamedia.services.store_transfer import migrate_store
from tests.conftest import DEMO_CATALOG


def _vector_rows(rt: Runtime) -> int:
    with rt.stores.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM media_vectors")).scalar_one())


def test_pgvector_answers_like_the_embedded_index(
    demo_data_dir: Path, tmp_path: Path, make_runtime: Any, postgres_url: str
) -> None:
    embedded_dir = tmp_path / "embedded"
    shutil.copytree(demo_data_dir, embedded_dir)
    embedded: Runtime = make_runtime(embedded_dir)
    server: Runtime = make_runtime(
        tmp_path / "server", database_url=postgres_url, vector_store="pgvector"
    )
    assert server.ingest.ingest_path(DEMO_CATALOG, "jsonl").rejected == 0
    assert server.stores.vectors is not None
    assert _vector_rows(server) == server.repo.count() == 170  # written with their items

    for anchor in ("mm-0063", "mm-0001", "mm-0120"):
        want = [hit.id for hit in embedded.recommend.similar("default", anchor, limit=8)]
        got = [hit.id for hit in server.recommend.similar("default", anchor, limit=8)]
        assert got == want, anchor

    for rt in (embedded, server):
        results = rt.users.record(
            "default",
            "ada",
            [{"item": i, "type": "like"} for i in ("mm-0063", "mm-0064", "mm-0065")],
            create_user=True,
        )
        assert {r.status for r in results} == {"recorded"}
    feeds = [rt.recommend.feed("default", "ada", limit=10) for rt in (embedded, server)]
    for page in feeds:
        ids = [item.id for item in page.items]
        assert ids and not {"mm-0063", "mm-0064", "mm-0065"} & set(ids)
    assert [i.id for i in feeds[0].items] == [i.id for i in feeds[1].items]

    server.catalog.delete("mm-0063", "default")
    assert _vector_rows(server) == 169  # the vector went with its item


def test_switching_pgvector_on_fills_the_table_from_stored_vectors(
    demo_data_dir: Path, tmp_path: Path, make_runtime: Any, postgres_url: str
) -> None:
    data_dir = tmp_path / "moved"
    shutil.copytree(demo_data_dir, data_dir)
    assert migrate_store(f"sqlite:///{data_dir / 'catalog.sqlite3'}", postgres_url).ok
    rt: Runtime = make_runtime(data_dir, database_url=postgres_url, vector_store="pgvector")
    assert _vector_rows(rt) == 170
    assert rt.recommend.similar("default", "mm-0063", limit=3)


def test_pgvector_needs_a_server_database(tmp_path: Path, make_runtime: Any) -> None:
    with pytest.raises(InvalidRequestError, match="needs a postgresql"):
        make_runtime(tmp_path / "d", vector_store="pgvector")
