"""Which freshly encoded passages stay in the in-process embedding cache."""

from __future__ import annotations

from typing import Any

from metamedia.engine.passages import text_hash
from metamedia.services.item_vectors import CACHE_MAX_TEXTS, ItemText


def _items(n: int, tag: str) -> list[ItemText]:
    return [
        ItemText(
            f"{tag}-{i}", (f"{tag} story number {i} about a lighthouse.",), f"{tag} {i}. Drama"
        )
        for i in range(n)
    ]


def _cached(runtime: Any, items: list[ItemText]) -> int:
    encoder = runtime.indexes.encoder
    cache = runtime.caches.item_embedding
    return sum(
        1 for it in items for t in it.texts if cache.get((encoder.space, text_hash(t))) is not None
    )


def test_a_small_write_keeps_its_vectors_for_a_retry(runtime: Any) -> None:
    items = _items(3, "small")
    encoded = runtime.indexes.encoder.encode(items)
    assert len(encoded.fresh) >= 6
    assert _cached(runtime, items) == 6


def test_a_bulk_encode_leaves_the_cache_alone(runtime: Any) -> None:
    items = _items(CACHE_MAX_TEXTS, "bulk")  # two texts each: twice the limit
    encoded = runtime.indexes.encoder.encode(items)
    assert len(encoded.items) == CACHE_MAX_TEXTS
    assert _cached(runtime, items) == 0
