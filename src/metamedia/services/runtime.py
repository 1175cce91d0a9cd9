"""Wires settings to backends and services: the one place that picks implementations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from threadpoolctl import threadpool_limits

from metamedia.config import Settings
from metamedia.engine.embed import Embedder, create_embedder
from metamedia.services.activity import ActivityPipeline
from metamedia.services.auth import KeyService
from metamedia.services.caching import Caches
from metamedia.services.catalog import CatalogService
from metamedia.services.discovery import DiscoveryService
from metamedia.services.experiments import ExperimentService
from metamedia.services.indexing import IndexManager
from metamedia.services.ingest import IngestService
from metamedia.services.interaction_import import InteractionImporter
from metamedia.services.item_vectors import vector_space
from metamedia.services.live import LiveHub
from metamedia.services.recommend import FeedPage, RecommendService
from metamedia.services.refresh import FeedRefresher
from metamedia.services.replication import ReplicaSync
from metamedia.services.search import SearchService
from metamedia.services.training import ModelRegistry, ThemeService, TrainingService
from metamedia.services.users import UserService
from metamedia.storage.model_files import ModelStore
from metamedia.storage.open import SharedServices, Stores, open_shared, open_stores, redact_url
from metamedia.storage.roles import CatalogStore
from metamedia.storage.vector_files import VectorFileStore

_EMBEDDERS: dict[str, Embedder] = {}


def shared_embedder(settings: Settings) -> Embedder:
    """One model per process: loading it costs seconds and ~100 MB."""
    key = (
        f"{settings.embed_backend}:{settings.model_name}:{settings.embed_batch_size}:"
        f"{settings.embed_threads}"
    )
    if key not in _EMBEDDERS:
        _EMBEDDERS[key] = create_embedder(
            settings.embed_backend,
            settings.model_name,
            settings.embed_batch_size,
            settings.model_cache_dir / "onnx",
            settings.embed_threads,
        )
    return _EMBEDDERS[key]


@dataclass
class Runtime:
    settings: Settings
    stores: Stores
    repo: CatalogStore
    embedder: Embedder
    indexes: IndexManager
    ingest: IngestService
    search: SearchService
    catalog: CatalogService
    users: UserService
    recommend: RecommendService
    interactions: InteractionImporter
    training: TrainingService
    themes: ThemeService
    keys: KeyService
    discovery: DiscoveryService
    caches: Caches
    live: LiveHub
    refresher: FeedRefresher
    experiments: ExperimentService
    # Redis, when configured: what replicas share beside the database.
    shared: SharedServices | None = None
    replication: ReplicaSync | None = None
    activity: ActivityPipeline | None = None  # the user-event stream (Redis only)

    def train(self, tenant: str = "default") -> dict[str, Any]:
        """Fit the collaborative model and the themes for a tenant (`metamedia train`)."""
        report = self.training.train(tenant)
        return {
            "tenant": report.tenant,
            "collaborative": report.collaborative,
            "themes": report.themes,
        }

    @classmethod
    def open(cls, settings: Settings | None = None, embedder: Embedder | None = None) -> Runtime:
        settings = settings or Settings()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # Per-request matrices are small: threads would only spin against each other.
        threadpool_limits(limits=settings.blas_threads, user_api="blas")
        embedder = embedder or shared_embedder(settings)
        stores = open_stores(
            settings.resolved_database_url,
            vector_store=settings.vector_store,
            vector_model=vector_space(embedder),
            dim=embedder.dim,
        )
        repo = stores.catalog
        shared = (
            open_shared(settings.redis_url, settings.resolved_database_url)
            if settings.redis_url
            else None
        )
        caches = Caches(settings, shared.cache if shared else None, FeedPage)
        indexes = IndexManager(
            repo,
            VectorFileStore(settings.index_dir),
            embedder,
            settings,
            caches,
            vector_store=stores.vectors,
        )
        ingest = IngestService(
            repo, embedder, indexes, settings.rejects_dir, caches, settings.ingest_batch_size
        )
        search = SearchService(repo, embedder, indexes, settings, caches)
        catalog = CatalogService(repo, ingest, indexes)
        user_repo = stores.users
        users = UserService(user_repo, indexes, embedder.name, caches)
        models = ModelStore(settings.data_dir / "models")
        registry = ModelRegistry(models)
        recommend = RecommendService(repo, user_repo, users, indexes, caches, registry)
        training = TrainingService(repo, user_repo, indexes, models)
        themes = ThemeService(registry, repo, indexes)
        users.on_erase(recommend.forget_user)
        users.on_erase(caches.forget_user)
        users.on_change(lambda change: recommend.user_changed(change.tenant, change.user))
        importer = InteractionImporter(users)
        bootstrap = settings.admin_key.get_secret_value() if settings.admin_key else None
        keys = KeyService(
            stores.keys,
            stores.audit,
            bootstrap,
            settings.data_dir / "signing.key",
        )
        experiments = ExperimentService(
            stores.experiments,
            keys,
            config_file=settings.experiments_file,
            refresh_s=settings.experiments_refresh_s,
        )
        users.on_change(experiments.on_user_change)
        users.on_erase(experiments.forget_user)
        discovery = DiscoveryService(search, recommend, experiments)
        live = LiveHub(discovery, repo, settings.ws_mailbox_size, settings.ws_resume_s)
        users.on_change(live.user_changed)
        refresher = FeedRefresher(discovery)
        activity = None
        if shared is None:
            users.on_change(refresher.user_changed)
        else:  # the stream's consumers count events and refresh feeds, on any replica
            activity = ActivityPipeline(shared.events, shared.counters, refresher)
            users.on_change(activity.user_changed)
        indexes.on_change(live.catalog_changed)
        replication = None
        if shared is not None:
            replication = ReplicaSync(
                shared.bus, caches, indexes, experiments, users, recommend, live
            )
            shared.bus.start()
        return cls(
            settings,
            stores,
            repo,
            embedder,
            indexes,
            ingest,
            search,
            catalog,
            users,
            recommend,
            importer,
            training,
            themes,
            keys,
            discovery,
            caches,
            live,
            refresher,
            experiments=experiments,
            shared=shared,
            replication=replication,
            activity=activity,
        )

    def stats(self) -> dict[str, Any]:
        index = self.indexes.index
        files = self.indexes.files
        passages = self.indexes.passages
        return {
            "data_dir": str(self.settings.data_dir),
            "database": redact_url(self.settings.resolved_database_url),
            "redis": self.shared.url if self.shared else None,
            "items": self.repo.count(),
            "model": self.embedder.name,
            "dimension": self.embedder.dim,
            "index": {
                "type": index.kind,
                "vectors": len(index),
                "tombstones": index.tombstones,
                "passage_type": passages.kind if passages is not None else None,
                "passage_vectors": passages.positions if passages is not None else 0,
                "file": str(files.path),
                "file_bytes": files.size_bytes(),
                "watermark": self.indexes.watermark,
            },
            "hnsw_threshold": self.settings.hnsw_threshold,
        }

    def close(self) -> None:
        if self.activity is not None:
            self.activity.stop()
        self.refresher.stop()
        self.indexes.flush()
        self.experiments.close()
        self.stores.close()
        if self.shared is not None:
            self.shared.close()
