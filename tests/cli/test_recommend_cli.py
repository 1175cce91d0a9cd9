"""Interaction import, feed and batch recommendations from the CLI, on real MovieLens rows."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from metamedia.cli import app

runner = CliRunner()


def _ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_import_ratings_then_feed_and_batch(movielens_subset: Path, tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    _ok("ingest", str(movielens_subset), "--data-dir", data, "--json")
    ratings = movielens_subset / "ratings.csv"
    total = len(ratings.read_text().splitlines()) - 1
    with open(ratings, "a", encoding="utf-8") as handle:
        handle.write("7,1,9.5,964982703\n")  # rating out of range
        handle.write("7,999999,4.0,964982703\n")  # unknown item
        handle.write("x,1,abc,1\n")  # not numbers
    first = json.loads(
        _ok("interactions", "import", str(movielens_subset), "--data-dir", data, "--json")
    )
    assert first["recorded"] == total and first["rejected"] == 3
    reasons = " ".join(r["reason"] for r in first["rejects"])
    assert "between 0.5 and 5" in reasons and "unknown item 'ml:999999'" in reasons
    assert {r["line"] for r in first["rejects"]} == {total + 2, total + 3, total + 4}
    again = json.loads(_ok("interactions", "import", str(ratings), "--data-dir", data, "--json"))
    assert again["recorded"] == 0 and again["duplicates"] == total

    page = json.loads(_ok("feed", "--user", "1", "--limit", "10", "--data-dir", data, "--json"))
    assert len(page["items"]) == 10
    rated = {
        f"ml:{r.split(',')[1]}"
        for r in ratings.read_text().splitlines()[1:]
        if r.split(",")[0] == "1"
    }
    assert not rated & {i["id"] for i in page["items"]}, "rated items count as seen"
    assert all(i["id"].startswith("ml:") and i["reasons"] for i in page["items"])

    users = tmp_path / "users.txt"
    users.write_text("1\n2\nnobody\n", encoding="utf-8")
    lines = [
        json.loads(x)
        for x in _ok(
            "recommend", "--batch", str(users), "--limit", "5", "--data-dir", data
        ).splitlines()
    ]
    assert [x["user"] for x in lines] == ["1", "2", "nobody"]
    assert len(lines[0]["items"]) == 5 and len(lines[1]["items"]) == 5
    assert "not found" in lines[2]["error"]


def test_jsonl_interactions_and_errors(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    catalog = tmp_path / "c.jsonl"
    catalog.write_text(
        "\n".join(
            json.dumps({"id": f"i{n}", "title": f"Item {n}", "description": f"story {n}"})
            for n in range(5)
        )
        + "\n",
        encoding="utf-8",
    )
    _ok("ingest", str(catalog), "--data-dir", data, "--json")
    events = tmp_path / "events.jsonl"
    events.write_text(
        '{"user": "u1", "item": "i1", "type": "like", "ts": 1700000000}\n'
        '{"user": "u1", "item": "i2", "type": "fly"}\n'
        '{"item": "i3", "type": "like"}\n'
        "{broken\n",
        encoding="utf-8",
    )
    report = json.loads(_ok("interactions", "import", str(events), "--data-dir", data, "--json"))
    assert (report["recorded"], report["rejected"]) == (1, 3)
    assert [r["line"] for r in report["rejects"]] == [3, 4, 2] or sorted(
        r["line"] for r in report["rejects"]
    ) == [2, 3, 4]
    missing = runner.invoke(app, ["feed", "--user", "ghost", "--data-dir", data])
    assert missing.exit_code == 2 and "not found" in missing.output
