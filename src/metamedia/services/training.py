"""Offline learning: the collaborative model and the catalog themes.

`metamedia train` (and `Runtime.train`) fits both from the relational store
and saves them as files; the recommender and the themes API load the newest
files on their next request, in any process.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from metamedia.engine.cluster import choose_k, kmeans, label_clusters
from metamedia.engine.collaborative import EaseModel, fit_ease
from metamedia.engine.payload import AttributeFilter
from metamedia.errors import NotFoundError
from metamedia.services.indexing import IndexManager
from metamedia.storage.model_files import ModelStore, Themes
from metamedia.storage.roles import CatalogStore, UserStore

MIN_TRAINING_USERS = 2
_WORD = re.compile(r"[a-z][a-z'-]{2,}")


@dataclass(frozen=True)
class TrainingReport:
    tenant: str
    collaborative: dict[str, Any]
    themes: dict[str, Any]


class ModelRegistry:
    """In-memory copies of the saved models, reloaded when their file changes."""

    def __init__(self, store: ModelStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._ease: dict[str, tuple[float | None, EaseModel | None]] = {}
        self._themes: dict[str, tuple[float | None, Themes | None]] = {}
        self._lookups: dict[str, tuple[Themes, dict[int, int]]] = {}

    def ease(self, tenant: str) -> EaseModel | None:
        with self._lock:
            mtime = self.store.mtime("ease", tenant)
            cached = self._ease.get(tenant)
            if cached is None or cached[0] != mtime:
                cached = (mtime, self.store.load_ease(tenant) if mtime else None)
                self._ease[tenant] = cached
            return cached[1]

    def theme_of(self, tenant: str) -> dict[int, int]:
        """media pk -> theme id for the current themes (empty when untrained)."""
        themes = self.themes(tenant)
        if themes is None:
            return {}
        with self._lock:
            cached = self._lookups.get(tenant)
            if cached is None or cached[0] is not themes:
                cached = (themes, themes.theme_of())
                self._lookups[tenant] = cached
            return cached[1]

    def themes(self, tenant: str) -> Themes | None:
        with self._lock:
            mtime = self.store.mtime("themes", tenant)
            cached = self._themes.get(tenant)
            if cached is None or cached[0] != mtime:
                cached = (mtime, self.store.load_themes(tenant) if mtime else None)
                self._themes[tenant] = cached
            return cached[1]


class TrainingService:
    def __init__(
        self,
        media: CatalogStore,
        users: UserStore,
        indexes: IndexManager,
        store: ModelStore,
        l2: float = 500.0,
        max_items: int = 15_000,
    ) -> None:
        self.media = media
        self.users = users
        self.indexes = indexes
        self.store = store
        self.l2 = l2
        self.max_items = max_items

    def train(self, tenant: str = "default") -> TrainingReport:
        self.indexes.sync()
        return TrainingReport(tenant, self._train_collaborative(tenant), self._train_themes(tenant))

    def _train_collaborative(self, tenant: str) -> dict[str, Any]:
        started = time.perf_counter()
        user_pks, media_pks = self.users.training_pairs(tenant)
        n_users = int(np.unique(user_pks).shape[0])
        if n_users < MIN_TRAINING_USERS:
            return {
                "trained": False,
                "reason": f"needs {MIN_TRAINING_USERS}+ users with interactions",
            }
        # One large inverse: here every core helps.
        with threadpool_limits(limits=os.cpu_count() or 1, user_api="blas"):
            model = fit_ease(user_pks, media_pks, l2=self.l2, max_items=self.max_items)
        self.store.save_ease(tenant, model)
        return {
            "trained": True,
            "model": "ease",
            "users": n_users,
            "items": int(model.keys.shape[0]),
            "interactions": int(user_pks.shape[0]),
            "seconds": round(time.perf_counter() - started, 3),
        }

    def _train_themes(self, tenant: str) -> dict[str, Any]:
        started = time.perf_counter()
        mask = self.indexes.mask(AttributeFilter(tenant=tenant))
        positions = np.flatnonzero(mask)
        k = choose_k(int(positions.shape[0]))
        if k < 2:
            return {"trained": False, "reason": "needs at least 2 items"}
        keys = self.indexes.keys_at(positions)
        vectors = self.indexes.vectors_of([int(x) for x in keys])
        keys = np.array([k_ for k_ in keys.tolist() if k_ in vectors], dtype=np.int64)
        matrix = np.vstack([vectors[int(x)] for x in keys])
        centroids, assignment = kmeans(matrix, k)
        items = self.media.get_many(keys.tolist())
        terms = [_terms(items.get(int(x))) for x in keys]
        labels = label_clusters(terms, assignment, k)
        self.store.save_themes(tenant, Themes(centroids, labels, keys, assignment))
        return {
            "trained": True,
            "themes": k,
            "items": int(keys.shape[0]),
            "seconds": round(time.perf_counter() - started, 3),
        }


def _terms(item: Any) -> list[str]:
    """Genres and tags name a theme best; title words help when they are missing."""
    if item is None:
        return []
    terms = [*item.genres, *item.tags]
    if len(terms) < 2:
        terms += _WORD.findall(item.title.lower())
    return terms


class ThemeService:
    """Browse the trained themes."""

    def __init__(self, registry: ModelRegistry, media: CatalogStore, indexes: IndexManager) -> None:
        self.registry = registry
        self.media = media
        self.indexes = indexes

    def _themes(self, tenant: str) -> Themes:
        themes = self.registry.themes(tenant)
        if themes is None:
            raise NotFoundError(f"no themes for tenant {tenant!r} yet: run `metamedia train`")
        return themes

    def list(self, tenant: str) -> list[dict[str, Any]]:
        themes = self._themes(tenant)
        sizes = np.bincount(themes.assignment, minlength=len(themes.labels))
        return [
            {"id": i, "label": " · ".join(label), "terms": label, "size": int(sizes[i])}
            for i, label in enumerate(themes.labels)
        ]

    def get(self, tenant: str, theme_id: int, limit: int = 20) -> dict[str, Any]:
        themes = self._themes(tenant)
        if not 0 <= theme_id < len(themes.labels):
            raise NotFoundError(f"theme {theme_id} does not exist (0-{len(themes.labels) - 1})")
        members = themes.keys[themes.assignment == theme_id]
        vectors = self.indexes.vectors_of([int(x) for x in members])
        live = [int(x) for x in members if int(x) in vectors]
        centroid = themes.centroids[theme_id]
        live.sort(key=lambda key: -float(vectors[key] @ centroid))
        items = self.media.get_many(live[:limit])
        return {
            "id": theme_id,
            "label": " · ".join(themes.labels[theme_id]),
            "terms": themes.labels[theme_id],
            "size": int(members.shape[0]),
            "items": [
                {"id": items[k].id, "title": items[k].title, "year": items[k].year}
                for k in live[:limit]
                if k in items and items[k].visibility == "public"
            ],
        }
