"""A filter mask made before a concurrent write still answers (issue 11, bug 8a).

Search makes its filter mask, then embeds the query without holding the index
lock; a write landing in between grew the index, and the search (a saved-search
push among them) failed with "filter mask is out of date with the index". The
write is injected at exactly that point, so the test needs no timing.
"""

from __future__ import annotations

from typing import Any

import pytest

from metamedia.domain import SearchRequest
from metamedia.engine.payload import AttributeFilter
from metamedia.errors import StaleMaskError
from metamedia.services.runtime import Runtime


def _put(runtime: Runtime, media_id: str, title: str) -> None:
    runtime.catalog.put(media_id, {"title": title, "description": title}, "default")


def test_a_write_between_mask_and_vector_search_does_not_fail_the_search(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(5):
        _put(runtime, f"m{n}", f"harbour lighthouse keeper story {n}")
    search = runtime.search
    real_embed = search.embed_query
    written: list[str] = []

    def embed_while_someone_writes(text: str) -> Any:
        if not written:  # the write lands after the mask was made
            written.append("late")
            _put(runtime, "late", "a lighthouse keeper's late arrival")
            runtime.indexes.sync()
        return real_embed(text)

    monkeypatch.setattr(search, "embed_query", embed_while_someone_writes)
    request = SearchRequest(query="lighthouse keeper", mode="semantic", limit=10)
    response = runtime.discovery.search(request)
    assert written == ["late"]
    assert {hit.id for hit in response.results} >= {f"m{n}" for n in range(5)}
    again = runtime.discovery.search(request.model_copy(update={"limit": 20}))
    assert "late" in {hit.id for hit in again.results}


def test_a_mask_from_before_a_rebuild_is_refused_by_name(runtime: Runtime) -> None:
    _put(runtime, "a", "first")
    mask = runtime.indexes.mask(AttributeFilter(tenant="default"))
    runtime.indexes.rebuild()
    query = runtime.search.embed_query("first")
    with pytest.raises(StaleMaskError):
        runtime.indexes.search(query, 5, mask)
    derived = mask & mask  # numpy results keep the generation
    with pytest.raises(StaleMaskError):
        runtime.indexes.search(query, 5, derived)


def test_a_write_while_the_feed_ranks_does_not_fail_the_feed(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(6):
        runtime.catalog.put(f"f{n}", {"title": f"sea story {n}", "genres": ["drama"]}, "default")
    runtime.users.upsert("default", "reader", {"liked_genres": ["drama"]})
    # A like gives the reader a preference vector: the content source searches the index.
    runtime.users.record("default", "reader", [{"item": "f0", "type": "like"}])
    indexes = runtime.indexes
    real_mask = indexes.mask
    written: list[str] = []

    def mask_then_a_write(flt: AttributeFilter) -> Any:
        mask = real_mask(flt)
        if not written:  # the write lands after the feed made its filter mask
            written.append("late")
            runtime.catalog.put("f-late", {"title": "late", "genres": ["drama"]}, "default")
            indexes.sync()
        return mask

    monkeypatch.setattr(indexes, "mask", mask_then_a_write)
    page = runtime.discovery.feed("default", "reader", 10)
    assert written == ["late"]
    assert {item.id for item in page.items} >= {f"f{n}" for n in range(1, 6)}
