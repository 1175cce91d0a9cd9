"""The learned ranker: fitting, scoring, and refusing a model it cannot use."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from metamedia.engine.ranker import FEATURES, LinearRanker, fit_listwise, rank_weight
from metamedia.services.ranker_model import default_model_path, load_ranker


def test_listwise_fit_learns_which_feature_finds_the_gold() -> None:
    rng = np.random.default_rng(0)
    groups = []
    for _ in range(60):
        x = rng.random((20, len(FEATURES))).astype(np.float32)
        gold = int(rng.integers(20))
        x[gold, 5] += 1.0  # feature 5 (dense_sim) marks the answer
        groups.append((x, gold))
    ranker = fit_listwise(groups, epochs=150)
    assert int(np.argmax(ranker.weights)) == 5
    hits = sum(int(np.argmax(ranker.score(x)) == gold) for x, gold in groups)
    assert hits == len(groups)


def test_model_round_trips_and_refuses_other_features() -> None:
    n = len(FEATURES)
    ranker = LinearRanker(np.ones(n, np.float32), np.zeros(n, np.float32), np.ones(n, np.float32))
    again = LinearRanker.from_dict(ranker.as_dict())
    x = np.eye(n, dtype=np.float32)
    assert np.allclose(again.score(x), ranker.score(x))
    data = ranker.as_dict()
    data["features"] = ["something_else"] * n
    with pytest.raises(ValueError, match="retrain"):
        LinearRanker.from_dict(data)
    with pytest.raises(ValueError, match="features must be"):
        ranker.score(np.ones((2, 3), np.float32))


def test_rank_weight_is_zero_for_absent_candidates() -> None:
    weights = rank_weight(np.array([0, 1, 2, 8]))
    assert weights[0] == 0 and weights[1] == 1.0 and weights[2] > weights[3] > 0


def test_an_unusable_model_file_falls_back_instead_of_failing(tmp_path: Path) -> None:
    stale = tmp_path / "old.json"
    stale.write_text(json.dumps({"features": ["x"], "weights": [1], "mean": [0], "scale": [1]}))
    assert load_ranker(stale) is None
    broken = tmp_path / "broken.json"
    broken.write_text("{}")
    assert load_ranker(broken) is None
    assert load_ranker(tmp_path / "missing.json") is None
    assert load_ranker(default_model_path()) is not None  # the shipped model fits this code
