"""Property-based fuzzing of the live server: no input is a server error (issue 11).

Schemathesis reads the live `/openapi.json` and generates valid and invalid
requests for every operation; a GraphQL pass does the same from introspection.
Requests carry an admin key, so authorised paths (writes, admin) are exercised
too. Every case is counted; failures are collected (not shrunk) so one run
lists every 5xx it met. Bounded in cases (a fixed number per operation) and in
time (`pytest-timeout`), and derandomised so CI is repeatable.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from pydantic import SecretStr
from schemathesis import GenerationMode
from schemathesis.core.result import Ok

from tests.conftest import ADMIN_HEADERS
from tests.live_server import ServeThread

REST_CASES_PER_MODE = 16  # per operation, for valid and for invalid requests
GRAPHQL_CASES = 40  # per root field
MIN_REST_CASES = 1000
MIN_GRAPHQL_CASES = 300


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, demo_data_dir: Path, embedder: Any
) -> Iterator[ServeThread]:
    from metamedia.config import Settings
    from metamedia.services.runtime import Runtime
    from tests.conftest import ADMIN_KEY

    copy = tmp_path_factory.mktemp("fuzz") / "data"
    shutil.copytree(demo_data_dir, copy)
    runtime = Runtime.open(
        Settings(
            data_dir=copy,
            admin_key=SecretStr(ADMIN_KEY),
            rate_limit_per_ip="100000/minute",
            rate_limit_per_key="100000/minute",
            graphql_key_budget_per_minute=100_000_000,
        ),
        embedder=embedder,
    )
    runtime.catalog.put("fuzz-1", {"title": "Fuzz Lighthouse", "description": "keeper"}, "default")
    runtime.users.upsert("default", "fuzz-user", None)
    try:
        with ServeThread(runtime) as serving:
            yield serving
    finally:
        runtime.close()


def _run(strategy: st.SearchStrategy[Any], examples: int, check: Callable[[Any], None]) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        check(case)

    with contextlib.suppress(Unsatisfiable):  # no invalid request exists without inputs
        run()


def _check(
    failures: list[str], counted: list[int], headers: dict[str, str]
) -> Callable[[Any], None]:
    def check(case: Any) -> None:
        counted[0] += 1
        response = case.call(headers=headers, timeout=60)
        if response.status_code >= 500:
            failures.append(
                f"{case.method} {case.formatted_path} -> {response.status_code}: "
                f"{case.as_curl_command()[:400]}"
            )

    return check


@pytest.mark.timeout(900)
def test_openapi_fuzz_finds_no_server_error(server: ServeThread) -> None:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    failures: list[str] = []
    counted = [0]
    check = _check(failures, counted, dict(ADMIN_HEADERS))
    operations = 0
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _run(operation.as_strategy(generation_mode=mode), REST_CASES_PER_MODE, check)
    assert operations >= 40
    assert not failures, "\n".join(failures[:20])
    print(f"openapi fuzz: {counted[0]} cases over {operations} operations, 0 server errors")
    assert counted[0] >= MIN_REST_CASES, counted[0]


@pytest.mark.timeout(600)
def test_graphql_fuzz_finds_no_server_error(server: ServeThread) -> None:
    schema = schemathesis.graphql.from_url(f"{server.url}/graphql")
    failures: list[str] = []
    counted = [0]
    check = _check(failures, counted, dict(ADMIN_HEADERS))
    fields = 0
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        fields += 1
        _run(operation.as_strategy(), GRAPHQL_CASES, check)
    assert fields >= 10
    assert not failures, "\n".join(failures[:20])
    print(f"graphql fuzz: {counted[0]} cases over {fields} root fields, 0 server errors")
    assert counted[0] >= MIN_GRAPHQL_CASES, counted[0]
