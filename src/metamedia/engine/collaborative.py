"""EASE: a closed-form item-item collaborative model (Steck, 2019).

B = I - P / diag(P) with P = (XᵀX + λI)⁻¹ and a zero diagonal, where X is
the binary user-item matrix. Scoring a user is a sum of the rows of B for the
items in their history. Training cost is one n_items² inverse, so the model
keeps only the `max_items` items with the most interactions.
"""

from __future__ import annotations

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

    def columns(self, keys: list[int]) -> list[int]:
        column: dict[int, int] = self._column  # type: ignore[attr-defined]
        return [column[k] for k in keys if k in column]

    def score(self, history: list[int]) -> FloatArray:
        """Scores for every model item given the user's history keys (unknown keys ignored)."""
        cols = self.columns(history)
        if not cols:
            return np.zeros(self.keys.shape[0], dtype=np.float32)
        return np.asarray(self.weights[cols].sum(axis=0), dtype=np.float32)

    def strongest_link(self, history: list[int], key: int) -> int | None:
        """The history item that contributes most to `key`'s score (for explanations)."""
        target = self.columns([key])
        cols = self.columns(history)
        if not target or not cols:
            return None
        contributions = self.weights[cols, target[0]]
        best = int(np.argmax(contributions))
        return int(self.keys[cols[best]]) if contributions[best] > 0 else None


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
    users, user_rows = np.unique(user_index, return_inverse=True)
    x = np.zeros((users.shape[0], keys.shape[0]), dtype=np.float64)
    x[user_rows, item_index] = 1.0
    gram = x.T @ x
    gram[np.diag_indices_from(gram)] += l2
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)[np.newaxis, :]
    np.fill_diagonal(b, 0.0)
    return EaseModel(keys.astype(np.int64), b.astype(np.float32))
