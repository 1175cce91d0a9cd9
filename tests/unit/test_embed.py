"""Both embedding backends run the real model and agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from metamedia.engine.embed import OnnxEmbedder, SentenceTransformerEmbedder

TEXTS = [
    "heist movie with a twist ending",
    "Astronauts fight to keep a failing space station alive after a debris storm. " * 8,
    "",
    "Une comédie romantique à Paris",
]


def test_onnx_matches_sentence_transformers(tmp_path: Path) -> None:
    onnx = OnnxEmbedder(batch_size=2, cache_dir=tmp_path)
    reference = SentenceTransformerEmbedder().encode(TEXTS)
    vectors = onnx.encode(TEXTS)
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = (vectors * reference).sum(axis=1)
    assert cosines.min() > 0.9999, cosines
    assert list(tmp_path.glob("*.onnx")), "the export is cached for the next process"


def test_similar_texts_are_closer_than_unrelated_ones(tmp_path: Path) -> None:
    a, b, c = OnnxEmbedder(cache_dir=tmp_path).encode(
        ["a bank robbery goes wrong", "thieves plan a heist on a vault", "a cooking show for kids"]
    )
    assert float(a @ b) > float(a @ c) + 0.2
