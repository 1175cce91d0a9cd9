"""The in-memory BM25 index: scoring, exact titles, removal, tenants, persistence."""

from __future__ import annotations

import numpy as np
import pytest

from metamedia.engine import lexical
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


# -- the compact layout of a loaded index (base arrays plus an appended tail) ----------

_WORDS = "harbour keeper island storm robot heist ghost ship winter train detective".split()


def _varied_docs(start: int, count: int) -> list[LexicalDoc]:
    """Documents with shared and new words, alternate titles, two tenants, private ones."""
    docs = []
    for i in range(start, start + count):
        words = " ".join(_WORDS[(i * k) % len(_WORDS)] for k in (1, 3, 7))
        titles: tuple[str, ...] = (f"The {_WORDS[i % len(_WORDS)].title()} {i % 5}",)
        if i % 4 == 0:
            titles = (*titles, f"Alt{i}", "Shared Title")
        docs.append(
            LexicalDoc(
                tenant="t" if i % 3 else "u",
                public=i % 7 != 0,
                titles=titles,
                body=f"{words} {words.split()[0]} word{i} story",
            )
        )
    return docs


def _assert_same(a: LexicalIndex, b: LexicalIndex) -> None:
    """Every read answers the same, to the bit, and both save the same arrays."""
    assert len(a) == len(b)
    probe = np.arange(-2, len(a) + 2, dtype=np.int64)
    for tenant in ("t", "u", "nobody"):
        for query in ("harbour keeper story", "ghost ship word12", "Shared Title", "zzz", ""):
            x, y = a.search(query, tenant, 50), b.search(query, tenant, 50)
            assert x.positions.tolist() == y.positions.tolist()
            assert x.title_scores.tobytes() == y.title_scores.tobytes()
            assert x.body_scores.tobytes() == y.body_scores.tobytes()
            features = zip(
                a.scores_at(query, tenant, probe), b.scores_at(query, tenant, probe), strict=True
            )
            assert all(u.tobytes() == v.tobytes() for u, v in features)
        assert (
            a.body_length_at(tenant, probe).tobytes() == b.body_length_at(tenant, probe).tobytes()
        )
    for title in ("Shared Title", "the harbour 1", "Harbour 1", "Alt8", "alt40", "Ghost 3", "x"):
        assert a.title_positions(title).tolist() == b.title_positions(title).tolist()
    _assert_same_state(a.state(), b.state())


def _assert_same_state(sa: dict[str, np.ndarray], sb: dict[str, np.ndarray]) -> None:
    """The same arrays, but for the order of terms within a document's forward row
    (it means nothing, and a loaded index lists them by term id)."""
    sa, sb = _rows_by_term(sa), _rows_by_term(sb)
    assert sa.keys() == sb.keys()
    for key in sa:
        assert sa[key].dtype == sb[key].dtype, key
        assert np.array_equal(sa[key], sb[key]), key


def _rows_by_term(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = dict(state)
    for name in ("title", "body"):
        indptr = state[f"{name}_indptr"]
        rows = np.repeat(np.arange(indptr.shape[0] - 1), np.diff(indptr))
        order = np.lexsort((state[f"{name}_terms"], rows))
        out[f"{name}_terms"] = state[f"{name}_terms"][order]
        out[f"{name}_tf"] = state[f"{name}_tf"][order]
    return out


def test_a_loaded_index_saves_exactly_what_it_loaded() -> None:
    index = _index(_varied_docs(0, 40))
    index.remove([2, 9])
    state = index.state()
    loaded = LexicalIndex.from_state({k: v.copy() for k, v in state.items()})
    _assert_same_state(state, loaded.state())
    _assert_same(loaded, index)
    again = loaded.state()  # saved by a loaded index: exactly what it loads
    for key, value in LexicalIndex.from_state(again).state().items():
        assert value.dtype == again[key].dtype and np.array_equal(value, again[key]), key


def test_a_loaded_index_appended_and_removed_matches_one_built_directly() -> None:
    first, later = _varied_docs(0, 40), _varied_docs(40, 25)
    loaded = LexicalIndex.from_state(_index(first).state())
    direct = _index(first)
    _assert_same(loaded, direct)
    for index in (loaded, direct):
        index.append(later[:10])
        index.remove([0, 4, 41, 12])  # base and appended positions, public and private
        index.append(later[10:])
        index.remove([8, 60, 999, -1])
    _assert_same(loaded, direct)
    _assert_same(LexicalIndex.from_state(loaded.state()), direct)
    assert 8 not in loaded.title_positions("Shared Title").tolist()
    assert loaded.title_positions("Shared Title").tolist() == [*range(16, 60, 4), 64]


def test_appends_past_the_delta_limit_fold_into_the_base_and_round_trip(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import metamedia.engine.lexical as lexical

    monkeypatch.setattr(lexical, "DELTA_LIMIT", 6)
    docs = _varied_docs(0, 60)
    direct = _index(docs[:30])  # over the limit: one bulk build
    loaded = LexicalIndex.from_state(direct.state())
    direct.append(docs[30:])
    for i, doc in enumerate(docs[30:]):
        loaded.append([doc])  # one at a time: rebuilt every few appends
        if i % 9 == 0:
            loaded.remove([i, 30 + i])
            direct.remove([i, 30 + i])
    assert loaded._body.base_n > 30  # some appends were folded into the base
    _assert_same(loaded, direct)
    again = LexicalIndex.from_state(loaded.state())
    _assert_same(again, direct)
    again.append(_varied_docs(60, 3))
    direct.append(_varied_docs(60, 3))
    _assert_same(again, direct)


def test_a_title_shared_by_loaded_and_appended_positions_lists_live_ones_in_order() -> None:
    loaded = LexicalIndex.from_state(_index([_doc("Heat", "a"), _doc("Other", "b")]).state())
    loaded.append([_doc("Heat", "c"), _doc("heat", "d")])
    assert loaded.title_positions("Heat").tolist() == [0, 2, 3]
    loaded.remove([2])
    assert loaded.title_positions("HEAT").tolist() == [0, 3]
    loaded.remove([0])
    assert loaded.title_positions("heat").tolist() == [3]


def test_the_stem_memo_starts_over_without_losing_the_words_of_the_text_at_hand(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A full catalog fills the memo past its limit mid-ingest; the text being analysed
    when it starts over must still get every word's stem (it once raised KeyError)."""
    monkeypatch.setattr(lexical, "STEM_CACHE_LIMIT", 3)
    analyzer = lexical.Analyzer()
    assert analyzer.terms("running horses jumped fences") == ["run", "hors", "jump", "fenc"]
    # The memo holds 4 > 3 words: this text reuses two of them and adds two.
    assert analyzer.terms("horses running over bridges quickly") == [
        "hors",
        "run",
        "bridg",
        "quick",
    ]
