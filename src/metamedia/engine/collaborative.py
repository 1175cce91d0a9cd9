"""EASE: a closed-form item-item collaborative model (Steck, 2019).

B = I - P / diag(P) with P = (XᵀX + λI)⁻¹ and a zero diagonal, where X is
the binary user-item matrix. Scoring a user is a sum of the rows of B for the
items in their history. Training cost is one n_items² inverse, so the model
keeps only the `max_items` items with the most interactions.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from metamedia.engine.vectors import FloatArray

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class EaseModel:
    """Item keys (column order) and the learned item-item weight matrix."""

    keys: IntArray
    weights: FloatArray

    def __post_init__(self) -> None:
        object.__setattr__(self, "_column", {int(k): i for i, k in enumerate(self.keys.tolist())})
        ascending = bool(np.all(self.keys[1:] > self.keys[:-1]))
        object.__setattr__(self, "_ascending", ascending)

    def columns(self, keys: list[int]) -> list[int]:
        found: list[int] = self.column_array(keys).tolist()
        return found

    def column_array(self, keys: list[int]) -> IntArray:
        """The columns of `keys` in the order given, unknown keys left out."""
        if not self._ascending:  # type: ignore[attr-defined]
            column: dict[int, int] = self._column  # type: ignore[attr-defined]
            return np.array([column[k] for k in keys if k in column], dtype=np.int64)
        # Keys are stored ascending (fit_ease): a binary search per key, not a dict
        # lookup per key in Python (a thousand-item history is scored on every feed).
        wanted = np.asarray(keys, dtype=np.int64)
        if wanted.shape[0] == 0 or self.keys.shape[0] == 0:
            return np.empty(0, dtype=np.int64)
        at = np.minimum(np.searchsorted(self.keys, wanted), self.keys.shape[0] - 1)
        found: IntArray = at[self.keys[at] == wanted].astype(np.int64)
        return found

    def score(self, history: list[int]) -> FloatArray:
        """Scores for every model item given the user's history keys (unknown keys ignored)."""
        cols = self.column_array(history)
        if cols.shape[0] == 0:
            return np.zeros(self.keys.shape[0], dtype=np.float32)
        return np.asarray(self.weights[cols].sum(axis=0), dtype=np.float32)

    def strongest_links(self, history: list[int], keys: list[int]) -> dict[int, int]:
        """For each key, the history item contributing most to its score (explanations);
        of equally strong ones, the one with the lower key."""
        # Distinct history rows and target columns, both ascending (columns follow the
        # sorted keys): a repeated item adds the same row, and a gather in memory order
        # costs half as much.
        cols = np.unique(self.column_array(history))
        column: dict[int, int] = self._column  # type: ignore[attr-defined]
        targets = sorted({k for k in keys if k in column})
        if cols.shape[0] == 0 or not targets:
            return {}
        target_cols = np.array([column[k] for k in targets], dtype=np.int64)
        block = self.weights[np.ix_(cols, target_cols)]
        best = np.argmax(block, axis=0)
        strength = block[best, np.arange(len(targets))]
        anchors = self.keys[cols[best]].tolist()
        return {
            key: int(anchor)
            for key, anchor, s in zip(targets, anchors, strength.tolist(), strict=True)
            if s > 0
        }


def fit_ease(
    user_index: IntArray, item_keys: IntArray, l2: float = 500.0, max_items: int = 15_000
) -> EaseModel:
    """Fit on (user, item) pairs; duplicates count once (the matrix is binary)."""
    if user_index.shape != item_keys.shape:
        raise ValueError("user_index and item_keys must have the same length")
    if l2 <= 0:
        raise ValueError(f"l2 must be positive, got {l2}")
    keys, item_index, support = np.unique(item_keys, return_inverse=True, return_counts=True)
    if keys.shape[0] > max_items:
        kept = np.sort(np.argsort(-support, kind="stable")[:max_items])
        remap = np.full(keys.shape[0], -1, dtype=np.int64)
        remap[kept] = np.arange(kept.shape[0])
        item_index = remap[item_index]
        valid = item_index >= 0
        user_index, item_index, keys = user_index[valid], item_index[valid], keys[kept]
    gram = _gram(user_index, item_index, keys.shape[0])
    gram[np.diag_indices_from(gram)] += l2
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)[np.newaxis, :]
    np.fill_diagonal(b, 0.0)
    return EaseModel(keys.astype(np.int64), b.astype(np.float32))


def _gram(
    user_index: IntArray, item_index: IntArray, n_items: int, chunk: int = 2048
) -> npt.NDArray[np.float64]:
    """XᵀX of the binary user-item matrix, built a block of users at a time.

    A dense users x items matrix would not fit for large catalogs; a block of
    `chunk` users bounds memory at chunk x n_items floats.
    """
    users, user_rows = np.unique(user_index, return_inverse=True)
    gram = np.zeros((n_items, n_items), dtype=np.float64)
    order = np.argsort(user_rows, kind="stable")
    rows, cols = user_rows[order], item_index[order]
    bounds = np.searchsorted(rows, np.arange(0, users.shape[0] + chunk, chunk))
    for start, stop in itertools.pairwise(bounds.tolist()):
        if start == stop:
            continue
        block_rows = rows[start:stop] - rows[start]
        block = np.zeros((int(block_rows.max()) + 1, n_items), dtype=np.float32)
        block[block_rows, cols[start:stop]] = 1.0
        gram += (block.T @ block).astype(np.float64)
    return gram
