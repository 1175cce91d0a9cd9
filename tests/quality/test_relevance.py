"""Search quality on real data: Wikipedia films and real Reddit "tip of my tongue" queries.

The catalog is every film that answers a TOMT validation query plus 1,500
seeded random other films (see `wiki_catalog` in conftest). The paraphrases
below were written for this test from the films' Wikipedia leads.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import numpy as np
import pytest
from bench.datasets import KnownItemQuery

from metamedia.domain import SearchRequest
from metamedia.engine.passages import query_windows
from metamedia.engine.payload import AttributeFilter
from metamedia.engine.ranker import FEATURES
from metamedia.services.runtime import Runtime
from metamedia.services.search_features import build_candidates, mean_vector

pytestmark = pytest.mark.slow

PARAPHRASES = {
    "The_Shining_(film)": "a struggling novelist takes a winter job looking after an empty "
    "mountain resort with his wife and son",
    "We_Bought_a_Zoo": "a grieving widower buys a run-down animal park and tries to reopen it "
    "with his kids",
    "What_About_Bob%3F": "a needy patient tags along on his therapist's family holiday and "
    "drives him crazy",
    "The_Time_Machine_(1960_film)": "a Victorian inventor builds a device that carries him "
    "thousands of years ahead, where humanity has split into two races",
    "Arachnophobia_(film)": "a small town in California is overrun by deadly spiders",
    "Dante%27s_Peak": "townspeople try to escape when a sleeping volcano erupts",
    "Inside_Man": "a police negotiator faces a clever robber holding hostages in a Manhattan bank",
}

# Queries that share no indexed word with the film's title, plot, cast or genres.
NO_SHARED_WORDS = {
    "Arachnophobia_(film)": "eight-legged creatures terrorize a village",
    "Dante%27s_Peak": "lava threatens residents after a mountain blows its top",
}


def _ids(runtime: Runtime, query: str, mode: str = "hybrid", limit: int = 10) -> list[str]:
    response = runtime.search.search(SearchRequest(query=query, mode=mode, limit=limit))  # type: ignore[arg-type]
    return [hit.id for hit in response.results]


def test_exact_title_finds_that_film_first(
    wiki_runtime: Runtime, wiki_catalog: dict[str, Any]
) -> None:
    films = wiki_catalog["films"]
    counts = Counter(f["title"].lower() for f in films)
    unique = [f for f in films if counts[f["title"].lower()] == 1]
    sample = random.Random(7).sample(unique, 30)
    misses = [f["title"] for f in sample if _ids(wiki_runtime, f["title"], limit=1) != [f["href"]]]
    assert not misses, f"titles not ranked first: {misses}"


@pytest.mark.parametrize("gold", sorted(PARAPHRASES))
def test_paraphrased_plot_finds_the_film_in_top_10(wiki_runtime: Runtime, gold: str) -> None:
    assert gold in _ids(wiki_runtime, PARAPHRASES[gold])


@pytest.mark.parametrize("gold", sorted(NO_SHARED_WORDS))
def test_semantic_mode_finds_a_film_sharing_no_keyword(wiki_runtime: Runtime, gold: str) -> None:
    query = NO_SHARED_WORDS[gold]
    assert gold not in _ids(wiki_runtime, query, mode="keyword", limit=100)
    assert gold in _ids(wiki_runtime, query, mode="semantic")


def _metrics(runtime: Runtime, queries: list[KnownItemQuery], mode: str) -> tuple[float, float]:
    reciprocal, recalled = 0.0, 0
    for q in queries:
        ranked = _ids(runtime, q.query, mode=mode, limit=100)
        if q.gold in ranked:
            recalled += 1
            rank = ranked.index(q.gold) + 1
            reciprocal += 1.0 / rank if rank <= 10 else 0.0
    return reciprocal / len(queries), recalled / len(queries)


def test_hybrid_is_at_least_as_good_as_either_mode_on_tomt(
    wiki_runtime: Runtime, wiki_catalog: dict[str, Any], record_property: Any
) -> None:
    queries = wiki_catalog["queries"]
    assert len(queries) >= 200
    scores = {
        mode: _metrics(wiki_runtime, queries, mode) for mode in ("hybrid", "semantic", "keyword")
    }
    for mode, (mrr, recall) in scores.items():
        record_property(f"{mode}_mrr10", round(mrr, 4))
        record_property(f"{mode}_recall100", round(recall, 4))
        print(f"TOMT {mode}: MRR@10={mrr:.4f} recall@100={recall:.4f} (n={len(queries)})")
    hybrid_mrr, hybrid_recall = scores["hybrid"]
    for mode in ("semantic", "keyword"):
        assert hybrid_mrr >= scores[mode][0], scores
        assert hybrid_recall >= scores[mode][1], scores


def test_selective_filter_still_fills_the_page(
    wiki_runtime: Runtime, wiki_catalog: dict[str, Any]
) -> None:
    """A genre holding about 1% of the catalog still returns `limit` results in every mode."""
    films = wiki_catalog["films"]
    genre_counts = Counter(g.lower() for f in films for g in f.get("genres", []))
    target = 0.01 * len(films)
    genre = min(
        (g for g, c in genre_counts.items() if c >= 10), key=lambda g: abs(genre_counts[g] - target)
    )
    for mode in ("semantic", "hybrid"):
        response = wiki_runtime.search.search(
            SearchRequest(
                query="a story about family", mode=mode, limit=10, filters={"genres": [genre]}
            )  # type: ignore[arg-type]
        )
        assert response.matched == genre_counts[genre]
        assert response.matched <= 0.02 * len(films)
        assert len(response.results) == 10, (mode, genre, response.matched)
        assert all(genre in hit.genres for hit in response.results)


def test_item_vector_neighbours_are_candidates_with_their_rank(
    wiki_runtime: Runtime, wiki_catalog: dict[str, Any]
) -> None:
    """Hybrid ranks the item-vector top-k too (a long request often matches a film only
    as a whole), and the ranker sees each one's rank in that list."""
    indexes = wiki_runtime.indexes
    mask = indexes.mask(AttributeFilter(tenant="default"))
    column = FEATURES.index("item_rr")
    for q in wiki_catalog["queries"][:5]:
        vectors = wiki_runtime.search.embed_query(q.query)
        candidates = build_candidates(indexes, q.query, vectors, "default", 50, mask)
        neighbours = indexes.search(mean_vector(vectors), 50, mask).keys
        assert neighbours.shape[0] == 50
        rows = {int(k): i for i, k in enumerate(candidates.keys.tolist())}
        assert all(int(k) in rows for k in neighbours.tolist())
        item_rr = candidates.features[:, column]
        assert item_rr[rows[int(neighbours[0])]] == 1.0
        outside = [i for k, i in rows.items() if k not in set(neighbours.tolist())]
        assert all(item_rr[i] == 0.0 for i in outside)


def test_a_long_requests_passage_list_keeps_the_best_items_of_all_windows(
    wiki_runtime: Runtime, wiki_catalog: dict[str, Any]
) -> None:
    """Each window of a long request searches a share of the passage list; the top
    of the merged list is still the top of every window's own full list, merged by
    each item's best window."""
    indexes = wiki_runtime.indexes
    long_query = max((q.query for q in wiki_catalog["queries"]), key=len)
    windows = wiki_runtime.search.embed_query(long_query)
    assert windows.shape[0] >= 2
    keys, sims, _ = indexes.passage_search(windows, 50, None)
    best: dict[int, float] = {}
    for window in windows:
        alone_keys, alone_sims, _ = indexes.passage_search(window[None, :], 50, None)
        for key, sim in zip(alone_keys.tolist(), alone_sims.tolist(), strict=True):
            best[key] = max(best.get(key, -2.0), sim)
    expected = sorted(best, key=lambda k: -best[k])[:10]
    assert set(keys[:10].tolist()) == set(expected)
    assert np.allclose(sims[:10], [best[k] for k in keys[:10].tolist()], atol=1e-6)


def test_window_coverage_is_the_mean_of_each_windows_best_passage(
    wiki_runtime: Runtime, wiki_catalog: dict[str, Any]
) -> None:
    """A long request is embedded in windows: each item's coverage is the mean over the
    windows of its best passage for each, so it never exceeds its best passage, and for
    a one-window query the two are the same number."""
    indexes = wiki_runtime.indexes
    long_query = max((q.query for q in wiki_catalog["queries"]), key=len)
    windows = wiki_runtime.search.embed_query(long_query)
    assert windows.shape[0] >= 2
    # The windows are encoded side by side; each row is still its own window's vector.
    one_by_one = [wiki_runtime.embedder.encode([w]) for w in query_windows(long_query)]
    assert np.allclose(windows, np.vstack(one_by_one), atol=1e-6)
    keys = indexes.search(mean_vector(windows), 30, None).keys.tolist()
    best, cover = indexes.passage_similarities(windows, keys)
    per_window = np.stack([indexes.passage_similarities(w[None, :], keys)[0] for w in windows])
    assert np.allclose(best, per_window.max(axis=0), atol=1e-5)
    assert np.allclose(cover, per_window.mean(axis=0), atol=1e-5)
    assert np.all(cover <= best + 1e-6)
    one = wiki_runtime.search.embed_query("a volcano erupts near a small town")
    best_one, cover_one = indexes.passage_similarities(one, keys)
    assert np.allclose(best_one, cover_one)
