from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from metamedia.api.app import create_app
from metamedia.services.runtime import Runtime


@pytest.fixture()
def client(demo_runtime: Runtime) -> Iterator[TestClient]:
    """The real app over a copy of the demo catalog (writes stay in this test)."""
    with TestClient(create_app(runtime=demo_runtime)) as test_client:
        yield test_client
