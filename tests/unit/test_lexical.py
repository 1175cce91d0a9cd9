"""The in-memory BM25 index: scoring, exact titles, removal, tenants, persistence."""

from __future__ import annotations

import numpy as np
import pytest

from metamedia.engine.lexical import LexicalDoc, LexicalIndex


def _doc(title: str, body: str, tenant: str = "t", public: bool = True) -> LexicalDoc:
    return LexicalDoc(tenant=tenant, public=public, titles=(title,), body=body)


def _index(docs: list[LexicalDoc]) -> LexicalIndex:
    index = LexicalIndex()
    index.append(docs)
    return index


def test_every_query_word_counts_even_frequent_ones() -> None:
    # "star" is in most documents ("it stars ..."): it must still separate the title.
    docs = [_doc(f"Film {i}", f"It stars actor {i} in a drama about war.") for i in range(30)]
    docs.append(_doc("Star Wars", "A space opera about rebels fighting an empire."))
    docs.append(_doc("The Boer War", "A war film."))
    index = _index(docs)
    ranked = index.search("star wars", "t", 40).positions.tolist()
    assert ranked.index(30) < ranked.index(31)  # "star" still counts against The Boer War
    assert index.title_positions("Star Wars").tolist() == [30]


def test_stemming_and_folding_match_variants() -> None:
    index = _index([_doc("Amélie", "She runs a café and helps strangers."), _doc("X", "nothing")])
    assert index.search("amelie running cafe", "t", 2).positions.tolist() == [0]


def test_removed_positions_are_neither_found_nor_counted() -> None:
    index = _index([_doc("Lighthouse", "keeper on an island"), _doc("Other", "keeper story")])
    index.remove([0])
    assert index.search("lighthouse keeper", "t", 5).positions.tolist() == [1]
    assert index.title_positions("Lighthouse").shape[0] == 0


def test_allowed_mask_restricts_results() -> None:
    index = _index([_doc("A", "harbour"), _doc("B", "harbour"), _doc("C", "harbour")])
    allowed = np.array([False, True, False])
    assert index.search("harbour", "t", 5, allowed).positions.tolist() == [1]


def test_statistics_are_per_tenant_and_public_only() -> None:
    """Another tenant's words, or a private item's, never change a tenant's scores."""
    base = [_doc("A", "quiet harbour town"), _doc("B", "busy city streets")]
    alone = _index(base)
    crowded = _index(
        [
            *base,
            *[_doc("Z", "harbour harbour", tenant="other") for _ in range(20)],
            *[_doc("P", "harbour secret", public=False) for _ in range(5)],
        ]
    )
    a = alone.search("harbour", "t", 1)
    b = crowded.search("harbour", "t", 1, np.array([True, True] + [False] * 25))
    assert a.positions.tolist() == b.positions.tolist() == [0]
    assert np.allclose(a.body_scores, b.body_scores)


def test_private_items_are_scored_with_their_tenant_statistics() -> None:
    index = _index([_doc("A", "harbour"), _doc("P", "harbour secret", public=False)])
    assert set(index.search("secret harbour", "t", 5).positions.tolist()) == {0, 1}


def test_state_round_trip_answers_the_same() -> None:
    docs = [_doc(f"T{i}", f"story number {i} of a harbour") for i in range(50)]
    index = _index(docs)
    index.remove([3, 7])
    again = LexicalIndex.from_state(index.state())
    for query in ("harbour story", "T10", "number 42"):
        a, b = index.search(query, "t", 10), again.search(query, "t", 10)
        assert a.positions.tolist() == b.positions.tolist()
        assert np.allclose(a.body_scores, b.body_scores)
    assert again.title_positions("T3").shape[0] == 0


def test_incremental_appends_match_a_bulk_build() -> None:
    docs = [_doc(f"T{i}", f"words {i % 7} and more {i % 3}") for i in range(60)]
    bulk = _index(docs)
    step = LexicalIndex()
    for doc in docs:
        step.append([doc])
    a, b = bulk.search("words 3 more 1", "t", 20), step.search("words 3 more 1", "t", 20)
    assert a.positions.tolist() == b.positions.tolist()


def test_a_title_as_written_beats_one_that_differs_by_its_article() -> None:
    index = _index([_doc("The Oscar", "a"), _doc("Oscar", "b"), _doc("Matrix, The", "c")])
    assert index.title_positions("Oscar").tolist() == [1]
    assert index.title_positions("the oscar").tolist() == [0]
    assert index.title_positions("The Matrix").tolist() == [2]
    assert index.title_positions("Matrix").tolist() == [2]  # no exact one: article ignored


def test_a_state_in_an_older_format_is_refused_so_the_index_is_rebuilt() -> None:
    state = _index([_doc("A", "b")]).state()
    del state["format"]
    with pytest.raises(ValueError, match="rebuild"):
        LexicalIndex.from_state(state)


def test_body_length_prior_is_relative_to_the_tenants_mean() -> None:
    """A longer write-up scores above the tenant's mean, a shorter one below, another
    tenant's documents do not move the mean, and unknown positions or tenants get 0."""
    index = _index(
        [
            _doc("Long", " ".join(f"word{i}" for i in range(60))),
            _doc("Mid", " ".join(f"word{i}" for i in range(20))),
            _doc("Short", "one two"),
            _doc("Other", " ".join(f"x{i}" for i in range(500)), tenant="other"),
        ]
    )
    prior = index.body_length_at("t", np.array([0, 1, 2, 99, -1]))
    assert prior[0] > prior[1] > prior[2]
    assert prior[0] > 0 > prior[2]
    assert prior[3] == prior[4] == 0.0
    assert index.body_length_at("nobody", np.array([0, 1])).tolist() == [0.0, 0.0]
