"""MovieLens split and top-N metrics for the offline recommendation evaluation.

Every model is judged on one split and one candidate rule, so the rows of the
table differ only by the model. The split is per user and time ordered (the
last 20% of each user's ratings, at least one, are held out) because a random
split lets a model "predict" the past from the future, which flatters
collaborative models relative to what a live feed can do.
"""

from __future__ import annotations

import csv
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

HOLDOUT_FRACTION = 0.2
POSITIVE_RATING = 3.5
NDCG_K = 10
RECALL_K = 20
HR_K = 10

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Rating:
    user: int
    movie: int
    rating: float
    ts: int


@dataclass
class Split:
    """Train/held-out partition with dense user and item indices.

    Items are every movie of movies.csv (the catalog the product can
    recommend), so baselines also rank items that no one rated in training.
    """

    movies: list[int]  # item index -> movieId
    users: list[int]  # user index -> userId
    train: list[Rating]
    heldout: list[Rating]
    matrix: sp.csr_matrix  # users x items, 1.0 per training interaction
    positives: dict[int, set[int]] = field(default_factory=dict)  # user idx -> item idxs
    digest: str = ""

    @property
    def item_of(self) -> dict[int, int]:
        return {m: i for i, m in enumerate(self.movies)}

    def seen(self, user_index: int) -> IntArray:
        """Item indices of the user's training interactions (excluded from candidates)."""
        start, end = self.matrix.indptr[user_index], self.matrix.indptr[user_index + 1]
        return np.asarray(self.matrix.indices[start:end], dtype=np.int64)

    def train_counts(self) -> npt.NDArray[np.float64]:
        return np.asarray(self.matrix.sum(axis=0), dtype=np.float64).ravel()


def load_ratings(directory: Path) -> list[Rating]:
    with open(directory / "ratings.csv", newline="", encoding="utf-8") as handle:
        return [
            Rating(int(r["userId"]), int(r["movieId"]), float(r["rating"]), int(r["timestamp"]))
            for r in csv.DictReader(handle)
        ]


def load_movie_ids(directory: Path) -> list[int]:
    with open(directory / "movies.csv", newline="", encoding="utf-8") as handle:
        return [int(r["movieId"]) for r in csv.DictReader(handle)]


def time_split(directory: Path) -> Split:
    """Hold out the latest floor(20%) (>= 1) of each user's ratings.

    Ties in timestamp (MovieLens users often rate in bulk) are broken by
    movieId so the split is deterministic.
    """
    ratings = load_ratings(directory)
    movies = load_movie_ids(directory)
    by_user: dict[int, list[Rating]] = {}
    for r in ratings:
        by_user.setdefault(r.user, []).append(r)
    train: list[Rating] = []
    heldout: list[Rating] = []
    for user in sorted(by_user):
        rows = sorted(by_user[user], key=lambda r: (r.ts, r.movie))
        n_test = max(1, int(HOLDOUT_FRACTION * len(rows)))
        train.extend(rows[:-n_test])
        heldout.extend(rows[-n_test:])
    users = sorted(by_user)
    user_of = {u: i for i, u in enumerate(users)}
    item_of = {m: i for i, m in enumerate(movies)}
    rows_idx = np.array([user_of[r.user] for r in train], dtype=np.int64)
    cols_idx = np.array([item_of[r.movie] for r in train], dtype=np.int64)
    matrix = sp.csr_matrix(
        (np.ones(len(train), dtype=np.float32), (rows_idx, cols_idx)),
        shape=(len(users), len(movies)),
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    positives: dict[int, set[int]] = {}
    for r in heldout:
        if r.rating >= POSITIVE_RATING:
            positives.setdefault(user_of[r.user], set()).add(item_of[r.movie])
    digest = hashlib.sha256(
        "\n".join(f"{r.user},{r.movie},{r.rating},{r.ts}" for r in train).encode()
    ).hexdigest()
    return Split(movies, users, train, heldout, matrix, positives, digest)


def top_n(scores: npt.NDArray[np.floating], exclude: IntArray, n: int) -> IntArray:
    """Best n item indices, training items excluded; ties go to the lower index."""
    work = np.asarray(scores, dtype=np.float64).copy()
    work[exclude] = -np.inf
    part = np.argpartition(-work, n)[:n]
    order = np.lexsort((part, -work[part]))
    return np.asarray(part[order], dtype=np.int64)


@dataclass
class Metrics:
    """Means over evaluated users, plus catalog-level coverage and novelty."""

    users: int
    ndcg_at_10: float
    recall_at_20: float
    hr_at_10: float
    coverage: float
    novelty: float
    per_user_ndcg: dict[int, float] = field(default_factory=dict)  # for paired comparisons


def evaluate(
    recs: dict[int, IntArray], positives: dict[int, set[int]], train_counts: npt.NDArray[np.float64]
) -> Metrics:
    """Binary-relevance metrics of top-20 lists (user idx -> item idxs, best first).

    Recall@20 divides by min(20, |positives|) so users with many held-out
    positives can still reach 1.0. Novelty is the mean of -log2(share) over
    every recommended top-10 slot, share = (count + 1) / (interactions + items)
    from training counts (add-one so never-rated items stay finite).
    """
    n_items = train_counts.shape[0]
    share = (train_counts + 1.0) / (train_counts.sum() + n_items)
    self_info = -np.log2(share)
    discounts = 1.0 / np.log2(np.arange(2, NDCG_K + 2))
    ndcg, recall, hits, novelty = [], [], [], []
    shown: set[int] = set()
    per_user: dict[int, float] = {}
    for user, items in recs.items():
        relevant = positives[user]
        top10 = items[:NDCG_K].tolist()
        gains = np.array([1.0 if i in relevant else 0.0 for i in top10])
        ideal = discounts[: min(len(relevant), NDCG_K)].sum()
        ndcg.append(float(gains @ discounts[: len(top10)]) / ideal)
        per_user[user] = ndcg[-1]
        found = sum(1 for i in items[:RECALL_K].tolist() if i in relevant)
        recall.append(found / min(len(relevant), RECALL_K))
        hits.append(1.0 if any(i in relevant for i in items[:HR_K].tolist()) else 0.0)
        novelty.extend(self_info[top10].tolist())
        shown.update(top10)
    return Metrics(
        users=len(recs),
        ndcg_at_10=_mean(ndcg),
        recall_at_20=_mean(recall),
        hr_at_10=_mean(hits),
        coverage=len(shown) / n_items,
        novelty=_mean(novelty),
        per_user_ndcg=per_user,
    )


def paired_difference(
    a: dict[int, float], b: dict[int, float], resamples: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of a - b over shared users with a 95% bootstrap interval (users resampled).

    A gap between two models' NDCG@10 means little if the interval spans 0:
    with a few hundred users the per-user variance is large.
    """
    users = sorted(set(a) & set(b))
    if not users:
        return math.nan, math.nan, math.nan
    diff = np.array([a[u] - b[u] for u in users])
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, diff.shape[0], (resamples, diff.shape[0]))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(diff.mean()), float(low), float(high)


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan
