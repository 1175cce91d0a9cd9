from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from metamedia.api.app import create_app
from metamedia.services.runtime import Runtime
from tests.conftest import ADMIN_HEADERS


@pytest.fixture()
def client(demo_runtime: Runtime) -> Iterator[TestClient]:
    """The real app over a copy of the demo catalog, called with the admin key, as a
    back-end service would (writes stay in this test)."""
    with TestClient(create_app(runtime=demo_runtime), headers=dict(ADMIN_HEADERS)) as test_client:
        yield test_client


@pytest.fixture()
def anon_client(demo_runtime: Runtime) -> Iterator[TestClient]:
    """The same app called without any key, as a browser or end-user device would."""
    with TestClient(create_app(runtime=demo_runtime)) as test_client:
        yield test_client


def user_headers(admin: TestClient, user: str, tenant: str | None = None) -> dict[str, str]:
    """Proof of being `user`: a back end (here the admin client) creates the user and
    mints their token; the device sends it as a bearer token."""
    tenant_header = {"X-Tenant": tenant} if tenant else {}
    assert admin.put(f"/v1/users/{user}", headers=tenant_header).status_code == 200
    minted = admin.post(f"/v1/users/{user}/token", headers=tenant_header)
    assert minted.status_code == 200, minted.text
    return {"Authorization": f"Bearer {minted.json()['token']}"}
