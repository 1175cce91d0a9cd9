"""The web UI's reactions are paced per user like the API's (issue 11): a script
posting `/feed/react` in a loop gets a 429 page, not a trending item."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from metamedia.api.app import create_app

CARD_ID = re.compile(r'<li class="card" data-id="([^"]+)"')
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def test_reactions_past_the_user_event_rate_get_a_429_page(
    web_demo_dir: Path, tmp_path: Path, make_runtime: Any
) -> None:
    copy = tmp_path / "paced"
    shutil.copytree(web_demo_dir, copy)
    runtime = make_runtime(copy, anonymous="open", user_event_rate="3/minute")
    with TestClient(create_app(runtime=runtime)) as client:
        found = CSRF.search(client.get("/feed").text)
        assert found
        token = found.group(1)
        client.post("/feed/user", data={"user": "newcomer", "csrf": token})
        items = CARD_ID.findall(client.get("/feed").text)
        assert len(items) >= 4
        statuses = [
            client.post(
                "/feed/react",
                data={"item": item, "action": "like", "csrf": token},
                follow_redirects=False,
            ).status_code
            for item in items[:4]
        ]
        assert statuses == [303, 303, 303, 429]
        assert len(runtime.users.history("default", "newcomer", 10, 0)) == 3
