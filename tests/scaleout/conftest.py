"""Two runtimes (as two replicas) over one data directory and one Redis."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from metamedia.services.runtime import Runtime


@pytest.fixture()
def replica_pair(
    demo_data_dir: Path, tmp_path: Path, make_runtime: Any, redis_url: str
) -> tuple[Runtime, Runtime]:
    """Replicas A and B: one copy of the demo catalog, one Redis, separate processes'
    worth of in-memory state (caches, indexes, hubs)."""
    copy = tmp_path / "shared-data"
    shutil.copytree(demo_data_dir, copy)
    a: Runtime = make_runtime(copy, redis_url=redis_url)
    b: Runtime = make_runtime(copy, redis_url=redis_url)
    return a, b
