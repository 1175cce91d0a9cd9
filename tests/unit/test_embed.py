"""Both embedding backends run the real model and agree."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from onnx import load as load_onnx

from metamedia.engine.embed import (
    ATTENTION_BUDGET,
    OnnxEmbedder,
    SentenceTransformerEmbedder,
    token_batches,
)

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
    (graph,) = tmp_path.glob("*.onnx")  # the export is cached for the next process
    # The weights sit in a file of their own, which onnxruntime maps (pages a run never
    # reads stay out of the process) instead of copying the whole model onto its heap.
    (weights,) = tmp_path.glob(f"{graph.stem}.*.weights")
    assert graph.stat().st_size < 1_000_000 < 80_000_000 < weights.stat().st_size
    # Each of the six layers runs as fused kernels (attention, residual layer norms,
    # GELU): a transformers upgrade that breaks the fuser's pattern shows here.
    nodes = load_onnx(str(graph), load_external_data=False).graph.node
    ops = Counter(node.op_type for node in nodes)
    assert ops["Attention"] == 6 and ops["SkipLayerNormalization"] == 12, ops
    assert ops["Softmax"] == 0, ops


def test_similar_texts_are_closer_than_unrelated_ones(tmp_path: Path) -> None:
    a, b, c = OnnxEmbedder(cache_dir=tmp_path).encode(
        ["a bank robbery goes wrong", "thieves plan a heist on a vault", "a cooking show for kids"]
    )
    assert float(a @ b) > float(a @ c) + 0.2


def test_batches_bound_the_attention_memory_and_cover_every_text() -> None:
    """Long texts go in small batches, short ones up to the configured size, and the
    batches tile the (longest-first) list exactly once."""
    lengths = np.array([256] * 40 + [128] * 100 + [20] * 300)
    batches = token_batches(lengths, 64)
    covered = np.concatenate([np.arange(len(lengths))[b] for b in batches])
    assert covered.tolist() == list(range(len(lengths)))
    for b in batches:
        size, longest = b.stop - b.start, int(lengths[b.start])
        assert size <= 64 and (size == 1 or size * longest * longest <= ATTENTION_BUDGET)
    assert batches[0] == slice(0, 16)  # 16 x 256^2 is the whole budget
    assert max(b.stop - b.start for b in batches) == 64  # short texts fill the batch
    assert token_batches(np.array([4000]), 64) == [slice(0, 1)]  # never an empty batch


def test_a_text_encodes_the_same_alone_and_in_a_mixed_batch(tmp_path: Path) -> None:
    """Batches are cut by token length and padded to their longest member; a text's
    vector must not depend on which batch it landed in."""
    texts = [f"a story of {i} sailors lost at sea " * (1 + 7 * (i % 5)) for i in range(40)]
    texts.append("a very long plot summary about a detective. " * 80)  # truncated
    embedder = OnnxEmbedder(cache_dir=tmp_path)
    together = embedder.encode(texts)
    alone = np.vstack([embedder.encode([t]) for t in texts[::7]])
    assert ((together[::7] * alone).sum(axis=1) > 0.99999).all()


def test_a_released_model_loads_again_on_the_next_encode(tmp_path: Path) -> None:
    embedder = OnnxEmbedder(cache_dir=tmp_path)
    before = embedder.encode(["a lighthouse keeper alone on an island"])
    embedder.release()
    assert embedder._session is None  # the arena went with it
    after = embedder.encode(["a lighthouse keeper alone on an island"])
    assert np.allclose(before, after, atol=1e-6)


def test_calls_from_several_threads_run_at_once_and_agree(tmp_path: Path) -> None:
    """A long request's windows are encoded side by side on one session (one core
    each in `serve`); every thread must get exactly its own texts' vectors."""
    embedder = OnnxEmbedder(cache_dir=tmp_path, threads=1)
    texts = [f"window {i}: a sailor {'lost at sea ' * (3 + i)}" for i in range(12)]
    alone = np.vstack([embedder.encode([t]) for t in texts])
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(3):
            together = np.vstack(list(pool.map(lambda t: embedder.encode([t]), texts)))
            assert np.allclose(together, alone, atol=1e-6)
