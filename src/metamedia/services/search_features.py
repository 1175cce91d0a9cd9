"""Candidates and features for hybrid search: what the learned ranker reads.

Candidate generation takes the union of four cheap lists, so no kind of query
loses its answer before ranking: the BM25 top-k, the passage-vector top-k, the
item-vector top-k (the whole story and the title at once, which finds the films
a long, rambling request describes only as a whole), and every item whose
(alternate) title is the query. Each candidate then gets
the features of `engine.ranker.BASE_FEATURES`, computed for the whole union
(a vector-only candidate still gets its BM25 scores, a keyword-only one its
passage similarity), so the ranker compares like with like.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np

from metamedia.engine.ranker import (
    BASE_FEATURES,
    LONG_QUERY_TERMS,
    FloatArray,
    rank_weight,
    safe_ratio,
    with_length_interactions,
)
from metamedia.engine.titles import TitleQuery, fold, read_title_query
from metamedia.engine.vectors import normalize
from metamedia.services.indexing import IndexManager

_YEAR = re.compile(r"\b(18[89]\d|19\d\d|20[0-4]\d)\b")
_DECADE = re.compile(r"(?<![\w])'?(?:(19|20)(\d)0|(\d)0)'?s\b")
_WORD = re.compile(r"\w+")
UNKNOWN_YEAR = -1


@dataclass(frozen=True)
class QueryAnalysis:
    """What a query says besides its words: title keys, years, genres, its length."""

    title: TitleQuery
    years: tuple[tuple[int, int], ...]
    genres: tuple[str, ...]
    long: bool


def analyse_query(query: str, genre_labels: list[str]) -> QueryAnalysis:
    folded = fold(query)
    years: list[tuple[int, int]] = [(int(y) - 1, int(y) + 1) for y in _YEAR.findall(folded)]
    for century, decade, short in _DECADE.findall(folded):
        # "the 80s" -> 1980s; "the 20s" is ambiguous, read as the 1920s
        start = int(century) * 100 + int(decade) * 10 if century else 1900 + int(short) * 10
        years.append((start, start + 9))
    words = set(_WORD.findall(folded))
    genres = tuple(
        label
        for label in genre_labels
        if (label in folded if " " in label or "-" in label else label in words)
    )
    distinct = len(words)
    return QueryAnalysis(read_title_query(query), tuple(years), genres, distinct > LONG_QUERY_TERMS)


@dataclass
class Candidates:
    """The union of candidate lists for one query, with every feature per candidate."""

    keys: np.ndarray
    features: FloatArray
    keyword_rank: np.ndarray
    keyword_score: FloatArray
    dense_rank: np.ndarray
    dense_sim: FloatArray
    title_exact: np.ndarray
    title_year: np.ndarray
    vector_plan: str | None = None  # how the passage index was searched (None: not at all)


def _rank_of(keys: np.ndarray, ranked: np.ndarray) -> np.ndarray:
    """1-based rank of each key in `ranked` (0 where absent)."""
    where = {int(k): i + 1 for i, k in enumerate(ranked.tolist())}
    return np.asarray([where.get(int(k), 0) for k in keys.tolist()], dtype=np.int64)


def _years_fit(years: np.ndarray, ranges: tuple[tuple[int, int], ...]) -> np.ndarray:
    fit = np.zeros(years.shape[0], dtype=bool)
    known = years != UNKNOWN_YEAR
    for low, high in ranges:
        fit |= np.any(known & (years >= low) & (years <= high), axis=1)
    return fit


def build_candidates(
    indexes: IndexManager,
    query: str,
    query_vectors: FloatArray | None,
    tenant: str,
    pool: int,
    allowed: np.ndarray | None,
) -> Candidates:
    """Candidates from BM25, passages and exact titles, with their ranker features."""
    analysis = analyse_query(query, indexes.genre_labels())
    keyword_keys = indexes.keyword_search(query, tenant, pool, allowed)
    if query_vectors is not None:
        dense_keys, _, plan = indexes.passage_search(query_vectors, pool, allowed)
        item_keys = indexes.search(mean_vector(query_vectors), pool, allowed).keys
    else:
        dense_keys, plan = np.empty(0, dtype=np.int64), None
        item_keys = np.empty(0, dtype=np.int64)
    exact = indexes.title_matches(analysis.title.text, allowed)
    stripped = (
        indexes.title_matches(analysis.title.stripped_text, allowed)
        if analysis.title.stripped_text
        else np.empty(0, dtype=np.int64)
    )
    keys = np.asarray(
        list(
            dict.fromkeys(
                [
                    *exact.tolist(),
                    *stripped.tolist(),
                    *keyword_keys.tolist(),
                    *dense_keys.tolist(),
                    *item_keys.tolist(),
                ]
            )
        ),
        dtype=np.int64,
    )
    found = _featurise(
        indexes,
        query,
        query_vectors,
        tenant,
        analysis,
        keys,
        keyword_keys,
        dense_keys,
        item_keys,
        exact,
        stripped,
    )
    return replace(found, vector_plan=plan)


def mean_vector(query_vectors: FloatArray) -> FloatArray:
    """One unit vector for a query embedded in several windows: what the item vectors
    (themselves means of passages) are compared with."""
    mean: FloatArray = normalize(np.atleast_2d(query_vectors).mean(axis=0, keepdims=True))[0]
    return mean


def _featurise(
    indexes: IndexManager,
    query: str,
    query_vectors: FloatArray | None,
    tenant: str,
    analysis: QueryAnalysis,
    keys: np.ndarray,
    keyword_keys: np.ndarray,
    dense_keys: np.ndarray,
    item_keys: np.ndarray,
    exact: np.ndarray,
    stripped: np.ndarray,
) -> Candidates:
    n = keys.shape[0]
    key_list = keys.tolist()
    title_bm25, body_bm25, coverage = indexes.keyword_features(query, tenant, key_list)
    if query_vectors is not None and n:
        dense_sim, dense_cover = indexes.passage_similarities(query_vectors, key_list)
        item_sim = indexes.item_similarities(mean_vector(query_vectors), key_list)
    else:
        dense_sim = np.zeros(n, dtype=np.float32)
        dense_cover = np.zeros(n, dtype=np.float32)
        item_sim = np.zeros(n, dtype=np.float32)
    years, genre_share, popularity = indexes.ranking_attributes(key_list, analysis.genres)
    keyword_rank = _rank_of(keys, keyword_keys)
    dense_rank = _rank_of(keys, dense_keys)
    title_exact = np.isin(keys, exact)
    title_year = np.zeros(n, dtype=bool)
    if analysis.title.year is not None and stripped.shape[0]:
        year = analysis.title.year
        title_year = np.isin(keys, stripped) & _years_fit(years, ((year - 1, year + 1),))
    named = bool(analysis.years)
    fits = _years_fit(years, analysis.years) if named else np.zeros(n, dtype=bool)
    columns = {
        "keyword_norm": safe_ratio(body_bm25),
        "keyword_rr": rank_weight(keyword_rank),
        "keyword_coverage": coverage,
        "title_norm": safe_ratio(title_bm25),
        "title_exact": title_exact.astype(np.float32),
        "title_year_exact": title_year.astype(np.float32),
        "dense_sim": dense_sim,
        "dense_gap": dense_sim - (float(dense_sim.max()) if n else 0.0),
        "dense_rr": rank_weight(dense_rank),
        "dense_cover": dense_cover,
        "item_sim": item_sim,
        "item_rr": rank_weight(_rank_of(keys, item_keys)),
        "year_match": fits.astype(np.float32),
        "year_mismatch": (named & ~fits).astype(np.float32),
        "genre_match": genre_share.astype(np.float32),
        "popularity": safe_ratio(np.log1p(np.maximum(popularity, 0)).astype(np.float32)),
        "body_length": indexes.body_lengths(tenant, key_list),
    }
    base = np.column_stack([columns[name] for name in BASE_FEATURES]).astype(np.float32)
    if n == 0:
        base = np.empty((0, len(BASE_FEATURES)), dtype=np.float32)
    return Candidates(
        keys=keys,
        features=with_length_interactions(base, analysis.long),
        keyword_rank=keyword_rank,
        keyword_score=body_bm25,
        dense_rank=dense_rank,
        dense_sim=dense_sim,
        title_exact=title_exact,
        title_year=title_year,
    )
