"""Demo users: a few people with different tastes, so the web feed has someone to show.

The users, their explicit preferences and a handful of interactions on demo
catalog items live in `metamedia/demo/users.json`. Every event carries a fixed
timestamp, so loading twice stores nothing new: the interaction table refuses
exact duplicates (same user, item, type and time).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from metamedia.errors import InvalidRequestError
from metamedia.services.users import UserService

EVENT_SPACING_S = 3600.0


@dataclass(frozen=True)
class DemoUser:
    """One demo persona as the web page lists it."""

    id: str
    name: str
    taste: str


@dataclass(frozen=True)
class DemoUsersReport:
    users: int
    recorded: int
    duplicates: int
    rejected: int

    def as_dict(self) -> dict[str, int]:
        return {
            "users": self.users,
            "recorded": self.recorded,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
        }


def _read(path: Path | None) -> dict[str, Any]:
    if path is None:
        text = (resources.files("metamedia.demo") / "users.json").read_text(encoding="utf-8")
    else:
        text = path.read_text(encoding="utf-8")
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("users"), list):
        raise InvalidRequestError("a demo users file holds {'users': [...]}")
    return data


def demo_users(path: Path | None = None) -> list[DemoUser]:
    """The personas in the bundled file (or `path`), in file order."""
    return [
        DemoUser(str(u["id"]), str(u.get("name", u["id"])), str(u.get("taste", "")))
        for u in _read(path)["users"]
    ]


def load_demo_users(users: UserService, path: Path | None = None) -> DemoUsersReport:
    """Create the demo users with their preferences and history; safe to run again."""
    data = _read(path)
    tenant = str(data.get("tenant", "default"))
    base_ts = float(data.get("base_ts", 0.0))
    counts = {"recorded": 0, "duplicate": 0, "rejected": 0}
    for entry in data["users"]:
        user = str(entry["id"])
        users.upsert(tenant, user, entry.get("preferences"))
        events = [
            {**event, "ts": base_ts + i * EVENT_SPACING_S, "context": {"surface": "other"}}
            for i, event in enumerate(entry.get("events", []))
        ]
        for result in users.record(tenant, user, events):
            counts[result.status] += 1
    return DemoUsersReport(
        len(data["users"]), counts["recorded"], counts["duplicate"], counts["rejected"]
    )
