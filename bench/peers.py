"""Builders of the optional ANN peers (the `bench` extra), shared by the engine and
compressed sections so both measure the same configuration. None when not installed."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]


def hnswlib_index(data: Vector, m: int, ef_construction: int, threads: int) -> Any | None:
    """hnswlib float32 HNSW over `data` (labels = row numbers)."""
    try:
        import hnswlib
    except ImportError:
        return None
    index = hnswlib.Index(space="ip", dim=data.shape[1])
    index.init_index(max_elements=data.shape[0], M=m, ef_construction=ef_construction)
    index.add_items(data, np.arange(data.shape[0]), num_threads=threads)
    return index


def usearch_index(
    data: Vector, m: int, ef_construction: int, threads: int, dtype: str = "f32"
) -> Any | None:
    """usearch HNSW over `data` (keys = row numbers), vectors stored as `dtype`."""
    try:
        from usearch.index import Index
    except ImportError:
        return None
    index = Index(
        ndim=data.shape[1],
        metric="ip",
        dtype=dtype,
        connectivity=m,
        expansion_add=ef_construction,
    )
    index.add(np.arange(data.shape[0]), data, threads=threads)
    return index


def installed(module: str) -> bool:
    """Whether an optional peer's package is importable."""
    import importlib.util

    return importlib.util.find_spec(module) is not None
