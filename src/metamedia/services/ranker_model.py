"""The shipped ranker model: trained weights kept beside the code that reads them.

The model is a few dozen numbers in JSON, produced by `python -m bench
train-ranker` from training queries only; `METAMEDIA_RANKER_MODEL` points at
another file (for example one trained on a team's own catalog).
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

from metamedia.engine.ranker import LinearRanker

MODEL_FILE = "ranker-model.json"


def default_model_path() -> Path:
    return Path(str(resources.files("metamedia.services").joinpath(MODEL_FILE)))


def load_ranker(path: Path | None = None) -> LinearRanker | None:
    """The configured or shipped model; None when there is none (fusion falls back to RRF)."""
    chosen = path or Path(os.environ.get("METAMEDIA_RANKER_MODEL") or default_model_path())
    if not chosen.exists():
        return None
    data = json.loads(chosen.read_text(encoding="utf-8"))
    return LinearRanker.from_dict(data)


def save_ranker(ranker: LinearRanker, path: Path, provenance: dict[str, object]) -> None:
    payload = {**ranker.as_dict(), "provenance": provenance}
    path.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
