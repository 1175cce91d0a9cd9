"""Preference vectors learned online from interactions, in O(d) per event.

The state is an unnormalised sum of item vectors, each scaled by the event's
signal weight, with exponential recency decay: before adding an event at time
t, the sum is multiplied by 2^-(t - t_last)/half_life. An event older than the
state is added with its own decay instead, so order of arrival does not matter
much. Positive signals pull the direction toward an item, negative ones push
it away; the normalised sum is the query for content candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metamedia.engine.vectors import FloatArray

# Signal weights per interaction type (rate and progress depend on the value).
SIGNAL_WEIGHTS: dict[str, float] = {
    "like": 1.0,
    "favorite": 1.0,
    "complete": 0.8,
    "share": 0.6,
    "view": 0.3,
    "click": 0.15,
    "impression": 0.0,
    "skip": -0.4,
    "unfavorite": -0.5,
    "dislike": -1.0,
}
NEUTRAL_RATING = 3.0
DAY_S = 86_400.0


def signal_weight(kind: str, value: float | None) -> float:
    """How strongly an event says 'more like this' (+) or 'less like this' (-)."""
    if kind == "rate":
        if value is None:
            return 0.0
        return float(np.clip((value - NEUTRAL_RATING) / 2.0, -1.0, 1.0))
    if kind == "progress":
        fraction = 0.0 if value is None else float(np.clip(value, 0.0, 100.0)) / 100.0
        return 0.6 * fraction - 0.1  # abandoning early is a mild negative
    return SIGNAL_WEIGHTS.get(kind, 0.0)


@dataclass
class PreferenceState:
    vector: FloatArray
    updated_at: float
    events: int = 0

    @classmethod
    def empty(cls, dim: int, now: float) -> PreferenceState:
        return cls(np.zeros(dim, dtype=np.float32), now, 0)

    def direction(self) -> FloatArray | None:
        """The unit query vector, or None while there is no signal (cold start)."""
        norm = float(np.linalg.norm(self.vector))
        if norm < 1e-6:
            return None
        return (self.vector / norm).astype(np.float32)


def apply_event(
    state: PreferenceState, item_vector: FloatArray, weight: float, ts: float, half_life_s: float
) -> PreferenceState:
    """Fold one event into the state in place (O(d)) and return it."""
    if weight == 0.0:
        return state
    if ts >= state.updated_at:
        state.vector *= np.float32(np.exp2(-(ts - state.updated_at) / half_life_s))
        state.updated_at = ts
        scale = weight
    else:
        scale = weight * float(np.exp2(-(state.updated_at - ts) / half_life_s))
    state.vector += np.float32(scale) * item_vector
    state.events += 1
    return state
