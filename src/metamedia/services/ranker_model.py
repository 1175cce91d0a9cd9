"""The shipped ranker model: trained weights kept beside the code that reads them.

The model is a few dozen numbers in JSON, produced by `python -m bench
train-ranker` from training queries only; `METAMEDIA_RANKER_MODEL` points at
another file (for example one trained on a team's own catalog).
"""

from __future__ import annotations

import json
import logging
import os
from importlib import resources
from pathlib import Path

from metamedia.engine.ranker import LinearRanker

MODEL_FILE = "ranker-model.json"
log = logging.getLogger(__name__)


def default_model_path() -> Path:
    return Path(str(resources.files("metamedia.services").joinpath(MODEL_FILE)))


def load_ranker(path: Path | None = None) -> LinearRanker | None:
    """The configured or shipped model; None when there is none or it cannot be used
    (hybrid search then falls back to reciprocal-rank fusion, and says so in the log
    and in every result's `explanation.method`)."""
    chosen = path or Path(os.environ.get("METAMEDIA_RANKER_MODEL") or default_model_path())
    if not chosen.exists():
        return None
    try:
        return LinearRanker.from_dict(json.loads(chosen.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as exc:
        log.error("ranker model %s is unusable (%s): hybrid search uses RRF instead", chosen, exc)
        return None


def save_ranker(ranker: LinearRanker, path: Path, provenance: dict[str, object]) -> None:
    payload = {**ranker.as_dict(), "provenance": provenance}
    path.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
