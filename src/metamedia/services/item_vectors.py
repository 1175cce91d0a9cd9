"""Item and passage vectors: what ingest stores and what the index loads.

Each item is embedded passage by passage (see `engine.passages`), plus one
short text of its title and genres. Its item vector, used by recommendations,
"more like this" and preference profiles, is the normalised sum of the story
(the mean of the passages) and the title text, so it costs no second pass of
the model over the description.
Every vector is stored content-addressed under `space`, a name that
changes whenever the recipe changes, so an old data directory re-derives its
vectors instead of mixing two recipes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from metamedia.engine.embed import Embedder, weights_tag
from metamedia.engine.passages import text_hash
from metamedia.engine.vectors import FloatArray, normalize
from metamedia.services.caching import Caches
from metamedia.storage.roles import CatalogStore

RECIPE = "passages-v1"


def vector_space(embedder: Embedder) -> str:
    """The name vectors are stored under: the model, the version of its fine-tuned
    weights, and the recipe that combined it."""
    return f"{embedder.name}{weights_tag(embedder.name)}+{RECIPE}"


@dataclass(frozen=True)
class ItemText:
    """One item as the encoder sees it: its content hash, its passages and its title
    text (title and genres), which joins the passages in the item vector."""

    content_hash: str
    passages: tuple[str, ...]
    title_text: str

    @property
    def texts(self) -> tuple[str, ...]:
        if self.title_text in self.passages:
            return self.passages
        return (*self.passages, self.title_text)


@dataclass
class EncodedItems:
    """Vectors by content hash: item vectors and passage vectors (new ones in `fresh`)."""

    items: dict[str, FloatArray]
    passages: dict[str, FloatArray]
    fresh: dict[str, FloatArray]
    embedded: int = 0  # items that needed at least one text run through the model


# Encodes of at most this many texts (an API write, a small batch) keep their vectors
# in the in-process cache; larger ones (bulk ingest) do not.
CACHE_MAX_TEXTS = 64


def _item_vector(passages: FloatArray, title: FloatArray) -> FloatArray:
    """Story and title/genres weigh the same, however many passages the story has
    (the mean of many sentences alone drifts towards a generic "film" direction)."""
    story = normalize(passages.mean(axis=0, keepdims=True))[0]
    combined: FloatArray = normalize((story + title).reshape(1, -1))[0]
    return combined


class ItemEncoder:
    def __init__(self, repo: CatalogStore, embedder: Embedder, caches: Caches) -> None:
        self.repo = repo
        self.embedder = embedder
        self.caches = caches

    @property
    def space(self) -> str:
        """Storage key of this model + recipe (the `model` column of stored vectors)."""
        return vector_space(self.embedder)

    def encode(
        self, items: Sequence[ItemText], known_items: set[str] | None = None
    ) -> EncodedItems:
        """Passage vectors (stored, cached or embedded now) and item vectors for `items`.

        `known_items` are item hashes whose item vector is already stored: their
        passages are not needed unless another item shares them.
        """
        known_items = known_items or set()
        wanted = [it for it in items if it.content_hash not in known_items]
        texts = {text_hash(p): p for it in wanted for p in it.texts}
        passages = self.repo.stored_embeddings(self.space, list(texts))
        fresh: dict[str, FloatArray] = {}
        todo: list[str] = []
        for h in texts:
            if h in passages:
                continue
            cached = self.caches.item_embedding.get((self.space, h))
            if cached is None:
                todo.append(h)
            else:
                passages[h] = fresh[h] = cached
        if todo:
            encoded = self.embedder.encode([texts[h] for h in todo])
            # The cache spares a retried write (say, after a database outage) the model
            # run; a bulk ingest stores every vector in the same batch, and caching them
            # all held ~200 MB of the full catalog's ingest for the cache's hour.
            remember = len(todo) <= CACHE_MAX_TEXTS
            for i, h in enumerate(todo):
                passages[h] = fresh[h] = encoded[i]
                if remember:
                    self.caches.item_embedding.set((self.space, h), encoded[i])
        item_vectors: dict[str, FloatArray] = {}
        for it in wanted:
            item_vectors[it.content_hash] = _item_vector(
                np.vstack([passages[text_hash(p)] for p in it.passages]),
                passages[text_hash(it.title_text)],
            )
        fresh.update(item_vectors)
        new = set(todo)
        embedded = sum(1 for it in wanted if any(text_hash(p) in new for p in it.texts))
        return EncodedItems(item_vectors, passages, fresh, embedded)

    def passage_vectors(self, passages: Sequence[str]) -> dict[str, FloatArray]:
        """Stored vectors of passages by text hash, embedding (and storing) any missing."""
        hashes = {text_hash(p): p for p in passages}
        if not hashes:
            return {}
        found = self.repo.stored_embeddings(self.space, list(hashes))
        missing = [h for h in hashes if h not in found]
        if missing:
            encoded = self.embedder.encode([hashes[h] for h in missing])
            new = {h: encoded[i] for i, h in enumerate(missing)}
            self.repo.store_embeddings(self.space, new)
            found.update(new)
        return found
