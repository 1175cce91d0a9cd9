"""The index file: faiss graphs streamed into the npz, readable as numpy wrote them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from metamedia.engine.index import IndexParams, VectorIndex
from metamedia.engine.vectors import normalize
from metamedia.storage.model_files import StreamedBytes, load_npz, save_npz_atomic
from metamedia.storage.vector_files import VectorFileStore


def _index(kind: str, n: int = 1500, seed: int = 0) -> tuple[VectorIndex, np.ndarray]:
    vectors = normalize(np.random.default_rng(seed).normal(size=(n, 24)))
    index = VectorIndex(24, IndexParams(kind=kind))  # type: ignore[arg-type]
    index.upsert(np.arange(100, 100 + n), vectors)
    return index, vectors


@pytest.mark.parametrize("kind", ["hnsw", "hnsw_fp16", "flat"])
def test_a_streamed_graph_loads_back_to_the_same_answers(tmp_path: Path, kind: str) -> None:
    index, vectors = _index(kind)
    companion, _ = _index("hnsw", n=300, seed=1)
    store = VectorFileStore(tmp_path)
    store.save(index, 7, "model-x", {"owner": np.arange(3)}, {"pas": companion})
    raw = load_npz(tmp_path / "vectors.npz")
    assert raw is not None
    # The graph bytes are what faiss's in-memory serialisation gives.
    assert bytes(raw["faiss"]) == bytes(index.state()["faiss"])
    loaded = store.load(0.05, companions=("pas",))
    assert loaded is not None and loaded.watermark == 7 and loaded.model == "model-x"
    for q in vectors[:5]:
        assert loaded.index.search(q, 10).keys.tolist() == index.search(q, 10).keys.tolist()
    assert loaded.companions["pas"].search(vectors[0], 5).keys.tolist() == (
        companion.search(vectors[0], 5).keys.tolist()
    )


def test_a_short_stream_fails_and_keeps_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "model.npz"
    save_npz_atomic(path, {"a": np.arange(4)})

    def short(sink: object) -> None:
        sink(b"abc")  # type: ignore[operator]

    with pytest.raises(OSError, match="streamed 3 bytes where 10"):
        save_npz_atomic(path, {"a": np.arange(5), "g": StreamedBytes(10, short)})
    kept = load_npz(path)
    assert kept is not None and kept["a"].tolist() == [0, 1, 2, 3]
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]  # no temporary left
