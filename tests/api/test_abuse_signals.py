"""Signals that cannot be bought by one script (issue 11): trending counts users,
untrusted batches are capped, each user's events are rate limited, experiment
outcomes count once per user, and variants are named only to keys."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from metamedia.api.app import create_app
from metamedia.services.recommend import TRENDING_WINDOW_S
from metamedia.services.runtime import Runtime
from tests.api.test_experiments import FEATURES_TOML
from tests.conftest import ADMIN_HEADERS

POPULAR = ("mm-0001", "mm-0002")
OBSCURE = "mm-0042"


def _views(item: str, count: int, start: float) -> list[dict[str, Any]]:
    return [{"item": item, "type": "view", "ts": start - n} for n in range(count)]


def _token(client: TestClient, user: str) -> dict[str, str]:
    assert client.put(f"/v1/users/{user}", headers=dict(ADMIN_HEADERS)).status_code == 200
    issued = client.post(f"/v1/users/{user}/token", headers=dict(ADMIN_HEADERS))
    assert issued.status_code == 200, issued.text
    return {"Authorization": f"Bearer {issued.json()['token']}"}


def _trending(runtime: Runtime) -> list[tuple[str, int]]:
    since = time.time() - TRENDING_WINDOW_S
    ranked = runtime.users.users.trending("default", since, 10)
    items = runtime.repo.get_many([pk for pk, _ in ranked])
    return [(items[pk].id, n) for pk, n in ranked]


@pytest.fixture()
def bare_client(demo_runtime: Runtime) -> Iterator[TestClient]:
    """No default headers: each request says who it is."""
    with TestClient(create_app(runtime=demo_runtime)) as client:
        yield client


def test_one_user_with_5000_views_does_not_make_an_obscure_item_trend(
    bare_client: TestClient, demo_runtime: Runtime
) -> None:
    client = bare_client
    now = time.time()
    for n, item in enumerate(["mm-0001"] * 3 + ["mm-0002"] * 2):
        user = f"fan-{n}"
        headers = _token(client, user)
        ok = client.post(
            f"/v1/users/{user}/interactions",
            json={"events": [{"item": item, "type": "view", "ts": now - 60}]},
            headers=headers,
        )
        assert ok.status_code == 200 and ok.json()["recorded"] == 1, ok.text
    bot = _token(client, "bot")

    # One request of 5,000 views: refused as a whole, naming the cap.
    flood = client.post(
        "/v1/users/bot/interactions", json={"events": _views(OBSCURE, 5000, now)}, headers=bot
    )
    assert flood.status_code == 422, flood.text
    error = flood.json()["error"]
    assert error["details"] == [{"field": "events"}]
    assert "at most 100 events" in error["message"]

    # The capped equivalent: 100 at a time until the per-user rate limit answers.
    sent, refused = 0, None
    for batch in range(50):
        events = _views(OBSCURE, 100, now - 1000 * (batch + 1))
        response = client.post("/v1/users/bot/interactions", json={"events": events}, headers=bot)
        if response.status_code == 429:
            refused = response
            break
        assert response.status_code == 200, response.text
        sent += response.json()["recorded"]
    assert refused is not None and sent == 300  # user_event_rate = 300/minute
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["error"]["type"] == "RateLimitedError"

    ranking = _trending(demo_runtime)
    assert ranking[0] == ("mm-0001", 3)
    assert dict(ranking)[OBSCURE] == 1  # 300 views, one voice


def test_a_key_may_import_large_batches_but_trending_still_counts_users(
    client: TestClient, demo_runtime: Runtime
) -> None:
    now = time.time()
    for n in range(2):
        client.put(f"/v1/users/fan-{n}")
        client.post(
            f"/v1/users/fan-{n}/interactions",
            json={"events": [{"item": "mm-0001", "type": "like", "ts": now}]},
        )
    client.put("/v1/users/importer")
    imported = client.post(
        "/v1/users/importer/interactions", json={"events": _views(OBSCURE, 5000, now)}
    )
    assert imported.status_code == 200 and imported.json()["recorded"] == 5000
    ranking = _trending(demo_runtime)
    assert ranking[0] == ("mm-0001", 2) and dict(ranking)[OBSCURE] == 1


def test_outcomes_count_once_per_user_whatever_the_event_count(demo_runtime: Runtime) -> None:
    repo = demo_runtime.experiments.repo
    now = time.time()
    repo.record_exposure("exp", "default", "pumper", "bold", now)
    repo.record_exposure("exp", "default", "honest", "control", now)
    repo.add_outcomes([("exp", "default", "pumper", "like", 1000, now)])
    repo.add_outcomes([("exp", "default", "pumper", "like", 1000, now)])
    repo.add_outcomes([("exp", "default", "honest", "like", 1, now)])
    counts = repo.outcome_counts("exp")
    assert counts[("bold", "like")].users == 1
    assert counts[("control", "like")].users == 1
    report_users = {v: c.users for v, c in repo.variant_counts("exp").items()}
    assert report_users == {"bold": 1, "control": 1}


@pytest.fixture()
def exp_app_client(make_runtime: Any, demo_data_dir: Path, tmp_path: Path) -> Iterator[TestClient]:
    features = tmp_path / "features.toml"
    features.write_text(FEATURES_TOML, encoding="utf-8")
    copy = tmp_path / "variants-demo"
    shutil.copytree(demo_data_dir, copy)
    runtime = make_runtime(copy, experiments_file=features, experiments_refresh_s=0)
    with TestClient(create_app(runtime=runtime)) as client:
        yield client


def test_the_variant_is_named_to_keys_only(exp_app_client: TestClient) -> None:
    client = exp_app_client
    user = "member-1"
    as_user = _token(client, user)
    key_feed = client.get(
        f"/v1/users/{user}/feed", headers={**ADMIN_HEADERS, "X-User": user}
    ).json()
    assert set(key_feed["experiments"]) == {"ranking"}
    own_feed = client.get(f"/v1/users/{user}/feed", headers=as_user)
    assert own_feed.status_code == 200, own_feed.text
    assert own_feed.json()["experiments"] == {}
    assert [i["id"] for i in own_feed.json()["items"]] == [i["id"] for i in key_feed["items"]]

    body = {"query": "a heist that goes wrong", "limit": 5}
    key_search = client.post(
        "/v1/search", json=body, headers={**ADMIN_HEADERS, "X-User": user}
    ).json()
    assert set(key_search["experiments"]) == {"ranking"}
    own_search = client.post("/v1/search", json=body, headers=as_user).json()
    assert own_search["experiments"] == {}


def test_graphql_record_interaction_applies_the_same_cap(bare_client: TestClient) -> None:
    client = bare_client
    headers = _token(client, "gql-bot")
    mutation = """mutation($user: String!, $events: [InteractionInput!]!) {
      recordInteraction(user: $user, events: $events) { recorded }
    }"""
    events = [{"item": OBSCURE, "type": "view", "ts": time.time() - n} for n in range(101)]
    body = client.post(
        "/graphql",
        json={"query": mutation, "variables": {"user": "gql-bot", "events": events}},
        headers=headers,
    ).json()
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "InvalidRequestError"
    assert error["extensions"]["status"] == 422 and error["extensions"]["field"] == "events"
    assert "at most 100 events" in error["message"]
    ok = client.post(
        "/graphql",
        json={"query": mutation, "variables": {"user": "gql-bot", "events": events[:100]}},
        headers=headers,
    ).json()
    assert ok["data"]["recordInteraction"]["recorded"] == 100
