"""Out-of-range input is a 422 naming the parameter, never a 500 (issue 11).

The cases the review and Schemathesis found, plus their neighbours: integers
past SQLite's 64 bits, ids longer than any column, an unbounded session id.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

HUGE = "130072086240653089964032"


@pytest.mark.parametrize(
    ("method", "url", "field"),
    [
        ("GET", "/v1/users/{user}/history?offset=1e20", "offset"),
        ("GET", f"/v1/users/{{user}}/history?offset={HUGE}", "offset"),
        ("DELETE", f"/v1/admin/keys/{HUGE}", "key_id"),
        ("GET", "/v1/users/" + "u" * 5000, "user_id"),
        ("DELETE", "/v1/users/" + "u" * 5000, "user_id"),
        ("GET", "/v1/users/{user}/sessions/" + "s" * 5000, "session_id"),
        ("GET", "/v1/media/" + "m" * 5000, "media_id"),
        ("GET", f"/v1/themes/{HUGE}", "theme_id"),
        ("GET", f"/v1/search?q=heist&offset={HUGE}", "offset"),
        ("GET", f"/v1/search?q=heist&year_min={HUGE}", "year_min"),
    ],
)
def test_out_of_range_input_is_a_422_naming_the_parameter(
    client: TestClient, method: str, url: str, field: str
) -> None:
    client.put("/v1/users/bounded")
    response = client.request(method, url.replace("{user}", "bounded"))
    assert response.status_code == 422, response.text
    assert field in response.text
