"""`python -m bench.embed_recipe_bench`: what the passage recipe costs at ingest.

Ingest time is dominated by the model. The old recipe embedded each film's
whole text once ("Title. genres. lead paragraph"); the passage recipe embeds
every sentence of the lead separately plus a short "Title. genres" text. Both
run here on the same seeded sample of real Wikipedia films, with the same
ONNX model and thread count, in the same process, so the ratio is fair even
on a shared machine. Writes bench/results/embed-recipe.md and .json.
"""

from __future__ import annotations

import json
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.datasets import load_wikipedia_films
from bench.report import header_lines, machine_info, write_json
from metamedia.domain import MediaItem
from metamedia.engine.embed import OnnxEmbedder
from metamedia.engine.passages import item_passages, item_title_text

OUT = Path(__file__).resolve().parent / "results"


def _items(n: int, seed: int) -> list[MediaItem]:
    films = random.Random(seed).sample(load_wikipedia_films(), n)
    return [
        MediaItem(
            id=f["href"],
            title=f["title"],
            year=f.get("year"),
            genres=f.get("genres") or [],
            description=f.get("extract") or "",
        )
        for f in films
    ]


def _time(embedder: OnnxEmbedder, texts: list[str]) -> float:
    started = time.perf_counter()
    embedder.encode(texts)
    return time.perf_counter() - started


def run(n: int = 1500, seed: int = 7, threads: int = 2) -> dict[str, object]:
    items = _items(n, seed)
    whole = [item.embedding_text() for item in items]
    passages = [p for item in items for p in item_passages(item)]
    titles = [item_title_text(item) for item in items]
    embedder = OnnxEmbedder(threads=threads)
    embedder.encode(["warm up"])
    rounds = []
    for _ in range(2):  # alternate the order so drift in machine load hits both
        old = _time(embedder, whole)
        new = _time(embedder, passages) + _time(embedder, titles)
        rounds.append((old, new))
    old_s = min(r[0] for r in rounds)
    new_s = min(r[1] for r in rounds)
    return {
        "films": n,
        "seed": seed,
        "threads": threads,
        "whole_texts": len(whole),
        "passages": len(passages),
        "title_texts": len(titles),
        "old_recipe_s": round(old_s, 2),
        "passage_recipe_s": round(new_s, 2),
        "old_films_per_s": round(n / old_s, 1),
        "passage_films_per_s": round(n / new_s, 1),
        "ratio": round(new_s / old_s, 3),
    }


def render(raw: dict[str, object], command: str, started: str, seconds: float) -> str:
    lines = [
        *header_lines(
            "Embedding cost per film: whole text vs passages",
            command,
            False,
            started,
            seconds,
            machine_info(),
        ),
        "",
        "| recipe | texts | seconds | films/s |",
        "|---|---|---|---|",
        f"| whole text (main before issue 10) | {raw['whole_texts']} | {raw['old_recipe_s']} | "
        f"{raw['old_films_per_s']} |",
        f"| passages + title text (now) | {raw['passages']} + {raw['title_texts']} | "
        f"{raw['passage_recipe_s']} | {raw['passage_films_per_s']} |",
        "",
        f"Passage recipe / whole text: {raw['ratio']}x the model time "
        f"({raw['films']} seeded real films, ONNX, {raw['threads']} threads, best of 2).",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    started = datetime.now(UTC).isoformat(timespec="seconds")
    clock = time.perf_counter()
    raw = run()
    command = "python -m bench.embed_recipe_bench"
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "embed-recipe.md").write_text(render(raw, command, started, time.perf_counter() - clock))
    write_json(OUT / "embed-recipe.json", raw)
    print(json.dumps(raw, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
