"""Ingest fixtures: a runtime with a small deterministic embedder.

Merging, ids, keyword search and year filters do not depend on what the vectors
mean, and the real model costs minutes on the ~14k real Wikipedia rows these
tests ingest, so they inject this stand-in through `Runtime.open(embedder=...)`.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from metamedia.config import Settings
from metamedia.domain import MediaItem
from metamedia.engine.vectors import FloatArray
from metamedia.services.runtime import Runtime
from tests.conftest import ADMIN_KEY

_WORD = re.compile(r"\w+")


class HashingEmbedder:
    """Bag of hashed words in 64 dimensions: same text, same unit vector, on any machine."""

    name = "test-hashing-64"
    dim = 64

    def encode(self, texts: Sequence[str]) -> FloatArray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                out[row, hashlib.blake2b(word.encode(), digest_size=2).digest()[0] % self.dim] += 1
            out[row, 0] += 1e-3  # never the zero vector
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        result: FloatArray = out / norms
        return result

    def release(self) -> None:
        """Nothing loaded, nothing to drop."""


@pytest.fixture()
def fast_runtime(tmp_path: Path) -> Iterator[Any]:
    """`make(name)`: a fresh runtime on its own data dir, with the hashing embedder."""
    opened: list[Runtime] = []

    def _make(name: str = "data") -> Runtime:
        settings = Settings(data_dir=tmp_path / name, admin_key=ADMIN_KEY)
        runtime = Runtime.open(settings, embedder=HashingEmbedder())
        opened.append(runtime)
        return runtime

    yield _make
    for runtime in opened:
        runtime.close()


def stored_items(runtime: Runtime) -> list[MediaItem]:
    """Every item in the runtime's database, read straight from its documents."""
    path = runtime.settings.resolved_database_url.removeprefix("sqlite:///")
    with closing(sqlite3.connect(path)) as conn:
        docs = [row[0] for row in conn.execute("SELECT doc FROM media ORDER BY pk")]
    return [MediaItem.model_validate_json(doc) for doc in docs]
