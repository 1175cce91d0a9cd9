"""GDPR erasure leaves no row that names the user, in any table (issue 11).

The check does not list tables: it introspects the SQLite file, so a table added
later that stores a user id is covered without anyone remembering to.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from metamedia.api.app import create_app
from metamedia.services.runtime import Runtime
from tests.api.test_experiments import FEATURES_TOML
from tests.conftest import ADMIN_HEADERS

FULL = "erase-me-full"  # a profile, preferences, events, favourites, exposures, outcomes
GHOST = "erase-me-ghost"  # no profile: only exposures, recorded while a key acted for it


def mentions(runtime: Runtime, needle: str, user_pk: int | None) -> dict[str, int]:
    """Rows per table.column whose value contains `needle` (or whose `user_pk` is it)."""
    found: dict[str, int] = {}
    with runtime.stores.engine.connect() as conn:
        tables = conn.execute(
            text("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        ).scalars()
        for table in list(tables):
            columns = [row[1] for row in conn.execute(text(f'PRAGMA table_info("{table}")'))]
            for column in columns:
                count = conn.execute(
                    text(f'SELECT count(*) FROM "{table}" WHERE CAST("{column}" AS TEXT) LIKE :n'),
                    {"n": f"%{needle}%"},
                ).scalar_one()
                if column == "user_pk" and user_pk is not None:
                    count += conn.execute(
                        text(f'SELECT count(*) FROM "{table}" WHERE "{column}" = :pk'),
                        {"pk": user_pk},
                    ).scalar_one()
                if count:
                    found[f"{table}.{column}"] = int(count)
    return found


@pytest.fixture()
def exp_runtime(make_runtime: Any, demo_data_dir: Path, tmp_path: Path) -> Runtime:
    features = tmp_path / "features.toml"
    features.write_text(FEATURES_TOML, encoding="utf-8")
    copy = tmp_path / "erasure-demo"
    shutil.copytree(demo_data_dir, copy)
    runtime: Runtime = make_runtime(copy, experiments_file=features, experiments_refresh_s=0)
    return runtime


@pytest.fixture()
def client(exp_runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime=exp_runtime), headers=dict(ADMIN_HEADERS)) as test_client:
        yield test_client


def test_after_erasure_no_table_holds_a_row_naming_the_user(
    client: TestClient, exp_runtime: Runtime
) -> None:
    prefs = {"liked_genres": ["comedy"], "blocked_owners": ["someone"]}
    assert client.put(f"/v1/users/{FULL}", json={"preferences": prefs}).status_code == 200
    assert client.get(f"/v1/users/{FULL}/feed", params={"limit": 5}).status_code == 200
    events = [
        {"item": "mm-0001", "type": "like", "context": {"session": f"s-{FULL}"}},
        {"item": "mm-0002", "type": "favorite"},
        {"item": "mm-0003", "type": "view"},
    ]
    recorded = client.post(f"/v1/users/{FULL}/interactions", json={"events": events})
    assert recorded.status_code == 200 and recorded.json()["recorded"] == 3
    query = {"query": "a heist that goes wrong", "limit": 3}
    for user in (FULL, GHOST):
        searched = client.post("/v1/search", json=query, headers={"X-User": user})
        assert searched.status_code == 200, searched.text
        assert searched.json()["experiments"], "the test needs an exposure to erase"
    exp_runtime.experiments.flush()
    pk = exp_runtime.users.require("default", FULL).pk
    before = mentions(exp_runtime, FULL, pk)
    assert {"users.external_id", "interactions.user_pk", "favorites.user_pk"} <= set(before)
    assert {"experiment_exposures.user_id", "experiment_outcomes.user_id"} <= set(before)
    assert "experiment_exposures.user_id" in mentions(exp_runtime, GHOST, None)
    assert client.get(f"/v1/users/{GHOST}").status_code == 404  # no profile at all

    assert client.delete(f"/v1/users/{FULL}").status_code == 204
    assert client.delete(f"/v1/users/{GHOST}").status_code == 204
    assert client.delete(f"/v1/users/{GHOST}").status_code == 204  # idempotent
    exp_runtime.experiments.flush()  # nothing pending may write them back

    assert mentions(exp_runtime, FULL, pk) == {}
    assert mentions(exp_runtime, GHOST, None) == {}
    assert mentions(exp_runtime, "erase-me", None) == {}
