"""Clustering catalog vectors into themes (faiss k-means) and naming them."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import faiss as _faiss
import numpy as np
import numpy.typing as npt

from metamedia.engine.vectors import FloatArray, as_matrix, normalize

faiss: Any = _faiss  # its SWIG stubs lack Kmeans
IntArray = npt.NDArray[np.int64]


def choose_k(n: int, minimum: int = 4, maximum: int = 64) -> int:
    """About sqrt(n / 2) themes: enough to separate tastes, few enough to browse."""
    if n <= 1:
        return n
    return int(min(max(minimum, round(math.sqrt(n / 2))), maximum, n))


def kmeans(
    vectors: FloatArray, k: int, seed: int = 7, iterations: int = 25
) -> tuple[FloatArray, IntArray]:
    """Spherical k-means: unit centroids and each row's cluster."""
    data = as_matrix(vectors)
    if k <= 0 or data.shape[0] < k:
        raise ValueError(f"cannot make {k} clusters from {data.shape[0]} vectors")
    km = faiss.Kmeans(
        data.shape[1],
        k,
        niter=iterations,
        seed=seed,
        spherical=True,
        verbose=False,
        # Small catalogs are clustered whole; faiss would warn about too few points.
        min_points_per_centroid=1,
    )
    km.train(data)
    centroids = normalize(km.centroids)
    assignment = np.argmax(data @ centroids.T, axis=1).astype(np.int64)
    return centroids, assignment


def label_clusters(
    terms: Sequence[Sequence[str]], assignment: IntArray, k: int, top: int = 3
) -> list[list[str]]:
    """Top terms per cluster: share within the cluster times inverse share overall."""
    overall: Counter[str] = Counter()
    per_cluster: list[Counter[str]] = [Counter() for _ in range(k)]
    for item_terms, cluster in zip(terms, assignment.tolist(), strict=True):
        unique = set(item_terms)
        overall.update(unique)
        per_cluster[cluster].update(unique)
    n = max(len(terms), 1)
    sizes = np.bincount(assignment, minlength=k)
    labels = []
    for cluster, counts in enumerate(per_cluster):
        size = max(int(sizes[cluster]), 1)

        def weight(term: str, count: int, size: int = size) -> float:
            return (count / size) * math.log((1 + n) / (1 + overall[term]))

        ranked = sorted(counts.items(), key=lambda kv: (-weight(*kv), kv[0]))
        chosen = [term for term, count in ranked[:top] if count > 1]
        labels.append(chosen or [term for term, _ in ranked[:1]])
    return labels
