"""A learned linear ranker over per-candidate features (the second phase of hybrid search).

Reciprocal-rank fusion treats a keyword list and a vector list as equals for
every query. They are not: for a short title-like query the keyword side and
an exact title match are nearly always right, for a long vague description the
dense side carries more, and when the keyword side matches nothing useful its
ranks are noise. A linear model over features that say so (scores normalised
within the query, ranks, title matches, a year or genre the query names), each
also multiplied by a "long query" flag, learns those weights from queries with
known answers; `bench/train_ranker.py` fits it with a listwise softmax loss.

Numbers in, numbers out: the service builds the feature matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]

BASE_FEATURES: tuple[str, ...] = (
    "keyword_norm",  # body BM25 / best body BM25 among the candidates
    "keyword_rr",  # 1 / (1 + log2 rank) in the keyword list, 0 when absent
    "keyword_coverage",  # share of the query's IDF-weighted words the item holds
    "title_norm",  # title-field BM25 / best among the candidates
    "title_exact",  # the whole query is the item's (alternate) title
    "title_year_exact",  # "Title (year)": title and one of its years match
    "dense_sim",  # best passage cosine similarity
    "dense_gap",  # dense_sim minus the best dense_sim among the candidates
    "dense_rr",  # 1 / (1 + log2 rank) in the passage list, 0 when absent
    "dense_cover",  # mean over the query's windows of the best passage for each
    "item_sim",  # cosine of the item vector (mean of passages) and the query
    "item_rr",  # 1 / (1 + log2 rank) in the item-vector list, 0 when absent
    "year_match",  # the query names a year or decade that fits the item
    "year_mismatch",  # the query names one, and it does not fit
    "genre_match",  # share of the item's genres that the query names
    "popularity",  # log1p(popularity) / best among the candidates
    "body_length",  # log(body length / the tenant's mean): how much the catalog says
)
LONG_QUERY_TERMS = 30  # queries with more distinct words use the "long" weights too
FEATURES: tuple[str, ...] = BASE_FEATURES + tuple(f"long_{name}" for name in BASE_FEATURES)


def with_length_interactions(base: FloatArray, long_query: bool) -> FloatArray:
    """Append each feature multiplied by the long-query flag (one weight set per kind)."""
    factor = np.float32(1.0 if long_query else 0.0)
    return np.hstack([base, base * factor]).astype(np.float32)


def rank_weight(ranks: npt.NDArray[np.int64]) -> FloatArray:
    """1 / (1 + log2 rank) for 1-based ranks; 0 for rank 0 (absent)."""
    out = np.zeros(ranks.shape[0], dtype=np.float32)
    present = ranks > 0
    out[present] = 1.0 / (1.0 + np.log2(ranks[present].astype(np.float32)))
    return out


def safe_ratio(values: FloatArray) -> FloatArray:
    """Values divided by their maximum (zeros stay zeros; no division by zero)."""
    top = float(values.max()) if values.shape[0] else 0.0
    if top <= 0.0:
        return np.zeros_like(values, dtype=np.float32)
    return (values / top).astype(np.float32)


@dataclass(frozen=True)
class LinearRanker:
    """score = weights · features (features standardised with the training statistics)."""

    weights: FloatArray
    mean: FloatArray
    scale: FloatArray
    names: tuple[str, ...] = FEATURES

    def __post_init__(self) -> None:
        n = len(self.names)
        if not (self.weights.shape == self.mean.shape == self.scale.shape == (n,)):
            raise ValueError(f"ranker expects {n} weights, means and scales")
        if not (np.isfinite(self.weights).all() and np.isfinite(self.scale).all()):
            raise ValueError("ranker weights must be finite numbers")

    def score(self, features: FloatArray) -> FloatArray:
        if features.ndim != 2 or features.shape[1] != len(self.names):
            raise ValueError(f"features must be (n, {len(self.names)}), got {features.shape}")
        standard = (features - self.mean) / self.scale
        return np.asarray(standard @ self.weights, dtype=np.float32)

    def as_dict(self) -> dict[str, object]:
        return {
            "features": list(self.names),
            "weights": self.weights.tolist(),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> LinearRanker:
        names = tuple(str(n) for n in data["features"])  # type: ignore[attr-defined]
        if names != FEATURES:
            raise ValueError("ranker model was trained on other features; retrain it")
        return cls(
            np.asarray(data["weights"], dtype=np.float32),
            np.asarray(data["mean"], dtype=np.float32),
            np.asarray(data["scale"], dtype=np.float32),
            names,
        )


def fit_listwise(
    groups: list[tuple[FloatArray, int]],
    *,
    weights: list[float] | None = None,
    l2: float = 1e-3,
    epochs: int = 300,
    learning_rate: float = 0.1,
) -> LinearRanker:
    """Fit weights by minimising the softmax cross-entropy of the gold candidate in
    each query's candidate list (full-batch gradient descent with Adam steps).

    `groups` holds one (features, gold row) pair per training query; `weights`
    (one per query, default equal) let each kind of query count the same in
    total however many of it there are.
    """
    if not groups:
        raise ValueError("no training queries with the gold answer among the candidates")
    stacked = np.vstack([x for x, _ in groups]).astype(np.float64)
    mean = stacked.mean(axis=0)
    scale = stacked.std(axis=0)
    scale[scale < 1e-6] = 1.0
    standard = [((x - mean) / scale, gold) for x, gold in groups]
    share = np.asarray(weights if weights is not None else [1.0] * len(groups), dtype=np.float64)
    share = share / share.sum()
    w = np.zeros(stacked.shape[1])
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for step in range(1, epochs + 1):
        grad = l2 * w
        for (x, gold), part in zip(standard, share, strict=True):
            logits = x @ w
            p = np.exp(logits - logits.max())
            p /= p.sum()
            grad += part * (p @ x - x[gold])
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad**2
        w -= learning_rate * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
    return LinearRanker(
        w.astype(np.float32), mean.astype(np.float32), scale.astype(np.float32), FEATURES
    )
