"""Event numbers that are not numbers: NaN or infinite timestamps and values.

Python's JSON reader accepts `NaN`; before the fix a NaN `ts` was stored as NULL,
ignored by the insert, reported as "duplicate" and still counted as recorded.
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient


def _post(client: TestClient, user: str, events: list[dict[str, object]]) -> tuple[int, dict]:
    body = json.dumps({"events": events})  # json.dumps writes NaN / Infinity literally
    response = client.post(
        f"/v1/users/{user}/interactions",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    return response.status_code, response.json()


@pytest.mark.parametrize(
    ("field", "number"),
    [("ts", float("nan")), ("ts", float("inf")), ("value", float("nan"))],
)
def test_a_non_finite_number_is_a_422_naming_the_field(
    client: TestClient, field: str, number: float
) -> None:
    client.put("/v1/users/nan-user")
    event: dict[str, object] = {"item": "mm-0001", "type": "rate", "value": 4.0, "ts": 1.7e9}
    event[field] = number
    status, body = _post(client, "nan-user", [{"item": "mm-0002", "type": "view"}, event])
    assert status == 422, body
    assert body["error"]["details"] == [{"field": f"events[1].{field}"}]
    assert f"events[1].{field}" in body["error"]["message"]
    assert client.get("/v1/users/nan-user/history").json() == []


def test_duplicates_are_counted_apart_from_recorded(client: TestClient) -> None:
    client.put("/v1/users/dup-user")
    event = {"item": "mm-0001", "type": "like", "ts": 1_700_000_000}
    status, body = _post(client, "dup-user", [event, event])
    assert status == 200
    assert [r["status"] for r in body["results"]] == ["recorded", "duplicate"]
    assert (body["recorded"], body["duplicate"], body["rejected"]) == (1, 1, 0)
