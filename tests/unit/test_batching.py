"""Concurrent query embeddings are encoded together, each caller gets its own row."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pytest

from metamedia.engine.embed import Embedder
from metamedia.services.batching import QueryBatcher


def test_waiting_queries_are_encoded_as_one_batch_and_each_gets_its_row() -> None:
    gate = threading.Event()
    calls: list[list[str]] = []

    def encode(texts: Sequence[str]) -> np.ndarray:
        calls.append(list(texts))
        if len(calls) == 1:
            gate.wait(5)  # the first (leader's) encode is slow: the others pile up
        return np.array([[float(len(t)), float(ord(t[0]))] for t in texts], dtype=np.float32)

    batcher = QueryBatcher(encode)
    texts = ["a", "bb", "ccc", "dddd", "bb"]
    results: dict[int, np.ndarray] = {}

    def ask(i: int) -> None:
        results[i] = batcher.encode_one(texts[i])

    first = threading.Thread(target=ask, args=(0,))
    first.start()
    while not calls:
        threading.Event().wait(0.001)
    others = [threading.Thread(target=ask, args=(i,)) for i in range(1, len(texts))]
    for t in others:
        t.start()
    while len(batcher._pending) < len(others):
        threading.Event().wait(0.001)
    gate.set()
    for t in [first, *others]:
        t.join(5)
    assert calls == [["a"], ["bb", "ccc", "dddd"]]  # duplicates encoded once
    for i, text in enumerate(texts):
        assert results[i].tolist() == [len(text), ord(text[0])]
    assert batcher.batches == 2


def test_a_failed_encode_reaches_every_waiter_and_the_next_call_works() -> None:
    def broken(texts: Sequence[str]) -> np.ndarray:
        raise RuntimeError("model unavailable")

    batcher = QueryBatcher(broken)
    with pytest.raises(RuntimeError, match="model unavailable"):
        batcher.encode_one("q")
    batcher._encode = lambda texts: np.ones((len(texts), 2), dtype=np.float32)
    assert batcher.encode_one("q").tolist() == [1.0, 1.0]


def test_batched_vectors_equal_one_by_one_vectors_of_the_real_model(embedder: Embedder) -> None:
    batcher = QueryBatcher(embedder.encode)
    queries = [f"a film about {topic}" for topic in ("heists", "ghosts", "space", "cooking")]
    out: dict[str, np.ndarray] = {}
    threads = [
        threading.Thread(target=lambda q=q: out.__setitem__(q, batcher.encode_one(q)))
        for q in queries
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for q in queries:
        alone = embedder.encode([q])[0]
        assert float(np.dot(alone, out[q])) > 0.9999
