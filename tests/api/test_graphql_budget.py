"""GraphQL cost counts work, and every caller has a budget per minute (issue 11).

"No resolver ran" is proven by counters on the services the resolvers call and
on the thread-pool hop every resolver takes (`context.call`), never by timing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from metamedia.api import app as app_module
from metamedia.api.graphql import context as graphql_context
from metamedia.services.runtime import Runtime
from tests.conftest import ADMIN_HEADERS

ATTACK = (
    "{ "
    + " ".join(
        f'a{n}: search(query: "heist", limit: 100) '
        "{ results { media { similar(limit: 1) { id } } } }"
        for n in range(12)
    )
    + " }"
)
# 50 + 10 x (results 1 + id 1 + title 1) = 80
CHEAP = '{ search(query: "heist", limit: 10) { results { id title } } }'


class Calls:
    """Counts service calls and resolver thread-pool hops while installed."""

    def __init__(self, runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
        self.counts: Counter[str] = Counter()
        for name, owner, attr in (
            ("search", runtime.discovery, "search"),
            ("feed", runtime.discovery, "feed"),
            ("similar", runtime.recommend, "similar"),
        ):
            monkeypatch.setattr(owner, attr, self._counted(name, getattr(owner, attr)))
        hop = getattr(graphql_context, "run_in_threadpool")  # noqa: B009 (not re-exported)
        monkeypatch.setattr(graphql_context, "run_in_threadpool", self._counted("resolver", hop))

    def _counted(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self.counts[name] += 1
            return fn(*args, **kwargs)

        return wrapper


@pytest.fixture()
def calls(demo_runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Calls:
    return Calls(demo_runtime, monkeypatch)


def _budget_client(make_runtime: Any, demo_data_dir: Any, tmp_path: Any, **settings: Any) -> Any:
    import shutil

    copy = tmp_path / "budget-copy"
    shutil.copytree(demo_data_dir, copy)
    runtime = make_runtime(copy, **settings)
    return runtime, TestClient(app_module.create_app(runtime=runtime))


def test_the_aliased_search_similar_attack_is_refused_before_any_resolver_runs(
    client: TestClient, calls: Calls
) -> None:
    response = client.post("/graphql", json={"query": ATTACK})
    body = response.json()
    assert body["data"] is None
    (error,) = body["errors"]
    extensions = error["extensions"]
    assert extensions["code"] == "QueryTooCostly"
    # 12 x (search 50 + 100 hits x (result 1 + media 1 + similar 25 + 1 id)) = 34,200
    assert extensions["cost"] == 34_200 and extensions["maxCost"] == 5000
    assert calls.counts == Counter()  # no search, no similar, no resolver hop at all


def test_one_alias_prices_the_similar_calls_it_would_make(client: TestClient) -> None:
    one = (
        '{ search(query: "heist", limit: 100) { results { media { similar(limit: 1) { id } } } } }'
    )
    body = client.post("/graphql", json={"query": one + " "}).json()
    assert "errors" not in body, body  # 2,850: dear but allowed once, charged to the budget
    cheap_field = '{ search(query: "heist", limit: 100) { results { id } } }'
    ok = client.post("/graphql", json={"query": cheap_field}).json()
    assert len(ok["data"]["search"]["results"]) > 0


@pytest.fixture()
def budgeted(
    make_runtime: Any, demo_data_dir: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[TestClient, Calls]]:
    runtime, client = _budget_client(
        make_runtime,
        demo_data_dir,
        tmp_path,
        graphql_budget_per_minute=300,
        graphql_key_budget_per_minute=1000,
    )
    counted = Calls(runtime, monkeypatch)
    with client:
        yield client, counted


def test_each_caller_has_a_budget_per_minute_then_429_before_any_resolver(
    budgeted: tuple[TestClient, Calls],
) -> None:
    client, calls = budgeted
    for _ in range(3):  # 3 x 80 = 240 of 300
        ok = client.post("/graphql", json={"query": CHEAP})
        assert ok.status_code == 200 and "errors" not in ok.json(), ok.json()
    assert calls.counts["search"] == 3
    before = Counter(calls.counts)

    refused = client.post("/graphql", json={"query": CHEAP})
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    (error,) = refused.json()["errors"]
    assert error["extensions"]["code"] == "CostBudgetExceeded"
    assert error["extensions"]["status"] == 429
    assert error["extensions"]["budgetPerMinute"] == 300
    assert "retry after" in error["message"]
    assert calls.counts == before  # refused before any resolver ran

    # A made-up key does not buy a fresh budget: it is still this IP's bucket (or a 401).
    fake = client.post("/graphql", json={"query": CHEAP}, headers={"X-API-Key": "made-up"})
    assert fake.status_code in (401, 429)
    assert calls.counts == before

    # A key is its own bucket, with its own (larger) budget.
    as_key = client.post("/graphql", json={"query": CHEAP}, headers=dict(ADMIN_HEADERS))
    assert as_key.status_code == 200 and "errors" not in as_key.json()
