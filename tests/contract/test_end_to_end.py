"""The same product on both backends: one ingest, then search, filters, feeds,
interactions and a GDPR erasure give the same answers on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import text

from metamedia.domain import SearchRequest
from metamedia.services.runtime import Runtime
from tests.conftest import DEMO_CATALOG

QUERIES = ("a heist inside a bank vault", "haunted house", "space crew stranded", "love in paris")
USER_TABLES = {
    "users": "SELECT count(*) FROM users WHERE external_id = :u",
    "interactions": "SELECT count(*) FROM interactions i JOIN users u ON u.pk = i.user_pk "
    "WHERE u.external_id = :u",
    "exposures": "SELECT count(*) FROM experiment_exposures WHERE user_id = :u",
    "outcomes": "SELECT count(*) FROM experiment_outcomes WHERE user_id = :u",
}


def _ids(rt: Runtime, **request: Any) -> list[str]:
    return [hit.id for hit in rt.search.search(SearchRequest(**request)).results]


def test_both_backends_answer_alike(tmp_path: Path, make_runtime: Any, postgres_url: str) -> None:
    embedded: Runtime = make_runtime(tmp_path / "embedded")
    server: Runtime = make_runtime(tmp_path / "server", database_url=postgres_url)
    for rt in (embedded, server):
        assert rt.ingest.ingest_path(DEMO_CATALOG, "jsonl").rejected == 0

    titles = [json.loads(line)["title"] for line in DEMO_CATALOG.read_text().splitlines()][:25]
    for title in titles:  # exact-title lookups
        assert _ids(embedded, query=title, limit=3) == _ids(server, query=title, limit=3), title
    for query in QUERIES:
        for filters in ({}, {"year_min": 1990, "year_max": 2005}, {"genres": ["drama"]}):
            a = _ids(embedded, query=query, limit=10, filters=filters)
            b = _ids(server, query=query, limit=10, filters=filters)
            assert a == b, (query, filters)

    events = [{"item": i, "type": "like"} for i in ("mm-0010", "mm-0011", "mm-0012")]
    for rt in (embedded, server):
        assert {r.status for r in rt.users.record("default", "eve", events, create_user=True)} == {
            "recorded"
        }
        rt.discovery.feed("default", "eve", limit=10)  # may expose eve to experiments
    feeds = [rt.recommend.feed("default", "eve", limit=10) for rt in (embedded, server)]
    assert [i.id for i in feeds[0].items] == [i.id for i in feeds[1].items]
    exports = [rt.users.export("default", "eve") for rt in (embedded, server)]
    assert [e["item"] for e in exports[0]["interactions"]] == [
        e["item"] for e in exports[1]["interactions"]
    ]

    for rt in (embedded, server):
        rt.users.delete("default", "eve")
        with rt.stores.engine.connect() as conn:
            left = {
                table: int(conn.execute(text(sql), {"u": "eve"}).scalar_one())
                for table, sql in USER_TABLES.items()
            }
        assert left == dict.fromkeys(USER_TABLES, 0), left
