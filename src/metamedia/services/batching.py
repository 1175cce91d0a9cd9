"""Micro-batching of concurrent query embeddings.

The model runs one call at a time, so N requests arriving together used to
queue N encodes (N x ~20 ms on a cold burst). Here the first caller becomes the
leader and encodes whatever is waiting as one batch, again and again until the
queue is empty; callers that arrive meanwhile just wait for their row. A lone
query pays nothing extra: there is no collection window.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future

from metamedia.engine.vectors import FloatArray

MAX_BATCH = 64


class QueryBatcher:
    def __init__(
        self, encode: Callable[[Sequence[str]], FloatArray], max_batch: int = MAX_BATCH
    ) -> None:
        self._encode = encode
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._pending: list[tuple[str, Future[FloatArray]]] = []
        self._leading = False
        self.batches = 0
        self.encoded = 0

    def encode_one(self, text: str) -> FloatArray:
        future: Future[FloatArray] = Future()
        with self._lock:
            self._pending.append((text, future))
            lead = not self._leading
            self._leading = True
        if lead:
            self._drain()
        return future.result()

    def _drain(self) -> None:
        while True:
            with self._lock:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                if not batch:
                    self._leading = False
                    return
            texts = list(dict.fromkeys(text for text, _ in batch))
            try:
                vectors = self._encode(texts)
            except BaseException as exc:  # every waiter must learn of the failure
                for _, future in batch:
                    future.set_exception(exc)
                continue
            row = {text: i for i, text in enumerate(texts)}
            self.batches += 1
            self.encoded += len(texts)
            for text, future in batch:
                future.set_result(vectors[row[text]])
