"""A fine-tuned encoder ships as a low-rank delta: it round-trips, applies to the
model it was made for, refuses any other, and both backends run the tuned weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from metamedia.engine.embed import MODELS, create_embedder, model_delta
from metamedia.engine.model_delta import apply_delta, low_rank_delta, read_delta, write_delta


def _params(module: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in module.named_parameters()}


def _pair(seed: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(seed)
    base = torch.nn.Sequential(torch.nn.Linear(24, 40), torch.nn.LayerNorm(40))
    tuned = torch.nn.Sequential(torch.nn.Linear(24, 40), torch.nn.LayerNorm(40))
    tuned.load_state_dict(base.state_dict())
    with torch.no_grad():
        # A rank-3 change of the matrix and a full change of every vector.
        tuned[0].weight.add_(torch.randn(40, 3) @ torch.randn(3, 24) * 0.01)
        tuned[0].bias.add_(torch.randn(40) * 0.01)
        tuned[1].weight.add_(torch.randn(40) * 0.01)
    return base, tuned


def test_a_delta_turns_the_base_into_the_tuned_model(tmp_path: Path) -> None:
    base, tuned = _pair(0)
    path = tmp_path / "delta.npz"
    write_delta(path, low_rank_delta(_params(base), _params(tuned), rank=3))
    assert set(read_delta(path)) == {"0.weight", "0.bias", "1.weight"}  # 1.bias unchanged
    assert apply_delta(base, path) == 3
    for name, value in _params(tuned).items():
        # float16 factors: close, not bit-equal
        assert np.allclose(_params(base)[name], value, atol=2e-4), name


def test_a_delta_keeps_only_the_top_directions_of_a_matrix(tmp_path: Path) -> None:
    base, tuned = _pair(1)
    arrays = low_rank_delta(_params(base), _params(tuned), rank=1)
    assert arrays["0.weight.u"].shape == (40, 1) and arrays["0.weight.v"].shape == (1, 24)
    assert arrays["0.weight.u"].dtype == np.float16


def test_a_delta_for_another_model_is_refused(tmp_path: Path) -> None:
    base, tuned = _pair(2)
    path = tmp_path / "delta.npz"
    write_delta(path, low_rank_delta(_params(base), _params(tuned)))
    other = torch.nn.Sequential(torch.nn.Linear(24, 41), torch.nn.LayerNorm(41))
    with pytest.raises(ValueError, match="shape"):
        apply_delta(other, path)
    with pytest.raises(ValueError, match="no parameter"):
        apply_delta(torch.nn.Sequential(torch.nn.Linear(24, 40)), path)


def test_an_unknown_model_name_fails_when_the_embedder_is_made() -> None:
    with pytest.raises(ValueError, match="unknown embedding model 'mini-lm-v9'"):
        create_embedder("onnx", "mini-lm-v9", 8)
    assert all(model_delta(name) is None or model_delta(name).exists() for name in MODELS)


def test_both_backends_run_the_tuned_weights(tmp_path: Path) -> None:
    texts = ["a reporter chases the meaning of a dying tycoon's last word", "a heist goes wrong"]
    tuned = "all-MiniLM-L6-v2-tot"
    onnx = create_embedder("onnx", tuned, 8, cache_dir=tmp_path).encode(texts)
    reference = create_embedder("torch", tuned, 8).encode(texts)
    base = create_embedder("onnx", "all-MiniLM-L6-v2", 8, cache_dir=tmp_path).encode(texts)
    assert (onnx * reference).sum(axis=1).min() > 0.9999
    # The delta moves the vectors (by a few percent of a unit vector), both backends alike.
    assert (onnx * base).sum(axis=1).max() < 0.999


def test_vectors_of_a_retrained_delta_are_stored_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new delta shipped under the same model name gets a new vector space, so a
    data directory re-embeds instead of comparing queries with the old model's vectors."""
    from metamedia.engine import embed
    from metamedia.services.item_vectors import vector_space

    class Named:
        def __init__(self, name: str) -> None:
            self.name = name

    base, tuned = _pair(1)
    monkeypatch.setattr(embed, "MODELS_DIR", tmp_path)
    monkeypatch.setattr(embed, "MODELS", {"base": None, "tuned": "tuned.npz"})
    write_delta(tmp_path / "tuned.npz", low_rank_delta(_params(base), _params(tuned), rank=3))
    embed.weights_tag.cache_clear()
    first = vector_space(Named("tuned"))  # type: ignore[arg-type]
    assert vector_space(Named("base")) == "base+passages-v1"  # type: ignore[arg-type]
    assert first.startswith("tuned@") and first != vector_space(Named("base"))  # type: ignore[arg-type]
    _, retrained = _pair(2)
    write_delta(tmp_path / "tuned.npz", low_rank_delta(_params(base), _params(retrained), rank=3))
    embed.weights_tag.cache_clear()
    assert vector_space(Named("tuned")) != first  # type: ignore[arg-type]
    embed.weights_tag.cache_clear()
