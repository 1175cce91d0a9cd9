"""Training the collaborative model and themes, and what they change, on real MovieLens rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from metamedia.api.app import create_app
from metamedia.cli import app
from metamedia.config import Settings
from metamedia.engine.embed import Embedder
from metamedia.services.runtime import Runtime

runner = CliRunner()


def _ok(*args: str) -> Any:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_train_fits_ease_and_themes_used_by_feed_and_api(
    movielens_subset: Path, tmp_path: Path, embedder: Embedder
) -> None:
    data = tmp_path / "data"
    _ok("ingest", str(movielens_subset), "--data-dir", str(data))
    _ok("interactions", "import", str(movielens_subset / "ratings.csv"), "--data-dir", str(data))
    report = _ok("train", "--data-dir", str(data))
    collab, themes = report["collaborative"], report["themes"]
    assert collab["trained"] and collab["model"] == "ease" and collab["users"] > 100
    assert themes["trained"] and 4 <= themes["themes"] <= 64 and themes["items"] == 300

    page = _ok("feed", "--user", "1", "--limit", "20", "--data-dir", str(data))
    reasons = [r for item in page["items"] for r in item["reasons"]]
    assert any(r.startswith("people who watched") for r in reasons), reasons

    runtime = Runtime.open(Settings(data_dir=data), embedder=embedder)
    with TestClient(create_app(runtime=runtime)) as client:
        listed = client.get("/v1/themes").json()
        assert len(listed) == themes["themes"]
        assert sum(t["size"] for t in listed) == 300
        assert all(t["label"] and t["terms"] for t in listed)
        biggest = max(listed, key=lambda t: t["size"])
        detail = client.get(f"/v1/themes/{biggest['id']}", params={"limit": 5}).json()
        assert len(detail["items"]) == 5 and detail["label"] == biggest["label"]
        assert all(i["id"].startswith("ml:") for i in detail["items"])
        assert client.get("/v1/themes/999").status_code == 404
        # Only a platform key may name another tenant; that tenant has no themes yet.
        claimed = client.get("/v1/themes", headers={"X-Tenant": "nobody"})
        assert claimed.status_code == 403
        platform = {"X-API-Key": runtime.keys.create("ops", ["read"], tenant=None).secret}
        other = client.get("/v1/themes", headers={"X-Tenant": "nobody"} | platform)
        assert other.status_code == 404 and "metamedia train" in other.json()["error"]["message"]
    runtime.close()


def test_train_without_interactions_says_why(tmp_path: Path) -> None:
    data = tmp_path / "data"
    catalog = tmp_path / "c.jsonl"
    rows = [{"id": f"i{n}", "title": f"Item {n}", "genres": ["drama"]} for n in range(12)]
    catalog.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    _ok("ingest", str(catalog), "--data-dir", str(data))
    report = _ok("train", "--data-dir", str(data))
    assert report["collaborative"]["trained"] is False
    assert "users" in report["collaborative"]["reason"]
    assert report["themes"]["trained"] is True
