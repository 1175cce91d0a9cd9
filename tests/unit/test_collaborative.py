"""EASE and k-means themes on small, checkable inputs."""

from __future__ import annotations

import numpy as np
import pytest

from metamedia.engine.cluster import choose_k, kmeans, label_clusters
from metamedia.engine.collaborative import fit_ease
from metamedia.engine.profile import PreferenceState, apply_event, signal_weight


def test_ease_recommends_what_co_occurs() -> None:
    # users 0-2 watch 10 and 20 together; user 3 watched 10 only
    users = np.array([0, 0, 1, 1, 2, 2, 3, 4, 4], dtype=np.int64)
    items = np.array([10, 20, 10, 20, 10, 20, 10, 30, 40], dtype=np.int64)
    model = fit_ease(users, items, l2=1.0)
    scores = dict(zip(model.keys.tolist(), model.score([10]).tolist(), strict=True))
    assert scores[20] > scores[30] and scores[20] > scores[40]
    assert model.strongest_links([10, 30], [20, 99]) == {20: 10}
    assert np.allclose(np.diag(model.weights), 0.0)


def test_ease_keeps_the_most_supported_items() -> None:
    users = np.array([0, 1, 2, 0, 1, 0], dtype=np.int64)
    items = np.array([1, 1, 1, 2, 2, 3], dtype=np.int64)
    model = fit_ease(users, items, l2=1.0, max_items=2)
    assert sorted(model.keys.tolist()) == [1, 2]
    with pytest.raises(ValueError, match="l2"):
        fit_ease(users, items, l2=0)


def test_kmeans_separates_clear_groups_and_labels_them() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(size=(30, 8)) + np.eye(8)[0] * 6
    b = rng.normal(size=(30, 8)) + np.eye(8)[1] * 6
    centroids, assignment = kmeans(np.vstack([a, b]).astype(np.float32), 2)
    assert centroids.shape == (2, 8)
    assert len(set(assignment[:30].tolist())) == 1 and len(set(assignment[30:].tolist())) == 1
    terms = [["western", "horses"]] * 30 + [["space", "robots"]] * 30
    labels = label_clusters(terms, assignment, 2)
    assert {tuple(sorted(label)) for label in labels} == {
        ("horses", "western"),
        ("robots", "space"),
    }
    assert choose_k(10_000) == 64 and choose_k(200) == 10 and choose_k(1) == 1


def test_preference_vector_learns_and_forgets() -> None:
    state = PreferenceState.empty(2, now=0.0)
    sci_fi, romance = np.array([1, 0], np.float32), np.array([0, 1], np.float32)
    apply_event(state, sci_fi, signal_weight("like", None), ts=10.0, half_life_s=100.0)
    direction = state.direction()
    assert direction is not None and direction[0] > 0.99
    apply_event(state, sci_fi, signal_weight("dislike", None), ts=10.0, half_life_s=100.0)
    assert state.direction() is None  # a like and a dislike of the same item cancel out
    apply_event(state, romance, signal_weight("rate", 5.0), ts=1000.0, half_life_s=100.0)
    later = state.direction()
    assert later is not None and later[1] > 0.99
    assert signal_weight("rate", 1.0) == -1.0 and signal_weight("progress", 100) > 0
    assert signal_weight("progress", 5) < 0 and signal_weight("impression", None) == 0.0
