"""One small thread pool for the parts of a single request that can use every core.

`serve` gives each model call one thread, so that concurrent requests fill the
cores. A lone long request would then leave cores idle: its query windows are
independent, and onnxruntime releases the GIL, so they run here side by side.
(The passage searches per window were tried here too: 3.2 -> 2.7 ms p50 for
2.5 windows, not worth the hand-off; each window now walks for a share of the
list instead, `IndexManager.passage_search`.) Tasks on this pool never wait for other
tasks on it, so it cannot deadlock; only request threads wait.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor


@functools.cache
def core_pool() -> ThreadPoolExecutor:
    """The process's pool: one thread per core, shared by every service."""
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="core")
