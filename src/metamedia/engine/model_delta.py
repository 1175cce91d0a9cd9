"""Fine-tuned encoders shipped as a small low-rank delta over the packaged weights.

A contrastively fine-tuned MiniLM (`python -m bench.finetune_bench`) differs from
the packaged one in every weight, by ~0.1% of its norm. Shipping it whole would
put 90 MB of weights in the repository; instead each weight matrix's change is
cut to its top singular directions (`u @ v`, rank 16) and each bias and norm
scale keeps its full change. The word-piece table is left as packaged: its
change is spread thinly over thousands of rows and moved no validation number
(MRR@10 0.694 / 0.147 without it, 0.696 / 0.147 with it, 24 MB more). Rank 16
keeps the tuned model's gain: descriptive-dev / TOMT validation dense MRR@10
0.697 / 0.143 for the full model, 0.694 / 0.147 from the delta.

File layout (npz): `<parameter>.u` (out x r) and `<parameter>.v` (r x in) for a
matrix, `<parameter>.full` for a vector, float16 / float32. Applied where torch
already runs (the ONNX export child process, the sentence-transformers backend);
writing one needs only numpy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

DELTA_RANK = 16
# Parameters a delta never touches: the embedding tables (see the module docstring).
FROZEN = frozenset(
    {
        "embeddings.word_embeddings.weight",
        "embeddings.position_embeddings.weight",
        "embeddings.token_type_embeddings.weight",
    }
)


def low_rank_delta(
    base: Mapping[str, npt.NDArray[np.float32]],
    tuned: Mapping[str, npt.NDArray[np.float32]],
    rank: int = DELTA_RANK,
) -> dict[str, npt.NDArray[np.generic]]:
    """The arrays of a delta file turning `base` into (nearly) `tuned`, by name."""
    if set(base) != set(tuned):
        raise ValueError("base and tuned models name different parameters")
    out: dict[str, npt.NDArray[np.generic]] = {}
    for name in sorted(base):
        if name in FROZEN:
            continue
        change = np.asarray(tuned[name], dtype=np.float64) - np.asarray(base[name], np.float64)
        if not np.any(change):
            continue
        if change.ndim == 2:
            u, s, vh = np.linalg.svd(change, full_matrices=False)
            keep = min(rank, s.shape[0])
            out[f"{name}.u"] = (u[:, :keep] * s[:keep]).astype(np.float16)
            out[f"{name}.v"] = vh[:keep].astype(np.float16)
        else:
            out[f"{name}.full"] = change.astype(np.float32)
    return out


def write_delta(path: Path, arrays: Mapping[str, npt.NDArray[np.generic]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    named: dict[str, Any] = dict(arrays)
    with open(path, "wb") as handle:
        np.savez_compressed(handle, allow_pickle=False, **named)


def read_delta(path: Path) -> dict[str, npt.NDArray[np.float32]]:
    """Each changed parameter's full change (float32), by parameter name."""
    with np.load(path) as data:
        names = sorted({key.rsplit(".", 1)[0] for key in data.files})
        changes = {}
        for name in names:
            if f"{name}.full" in data.files:
                changes[name] = np.asarray(data[f"{name}.full"], dtype=np.float32)
            elif f"{name}.u" in data.files and f"{name}.v" in data.files:
                u = np.asarray(data[f"{name}.u"], dtype=np.float32)
                v = np.asarray(data[f"{name}.v"], dtype=np.float32)
                changes[name] = u @ v
            else:
                raise ValueError(f"{path}: parameter {name!r} has neither .full nor .u/.v")
    return changes


def apply_delta(module: Any, path: Path) -> int:
    """Add the delta at `path` to a torch module's parameters in place (the module is
    the transformer itself, e.g. sentence-transformers' `model[0].auto_model`).
    Returns how many parameters changed; a name or shape the module lacks is an error
    (the delta was made for another model)."""
    import torch

    params = dict(module.named_parameters())
    changes = read_delta(path)
    with torch.no_grad():
        for name, change in changes.items():
            if name not in params:
                raise ValueError(f"{path}: the model has no parameter {name!r}")
            param = params[name]
            if tuple(param.shape) != change.shape:
                raise ValueError(
                    f"{path}: {name} has shape {tuple(param.shape)}, the delta {change.shape}"
                )
            param.add_(torch.from_numpy(change).to(param.dtype))
    return len(changes)


def delta_digest(path: Path) -> str:
    """Content hash of a delta file: part of the exported model's fingerprint."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
