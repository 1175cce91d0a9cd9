"""One settings object for the whole service.

Values come from (highest first) explicit arguments, `METAMEDIA_*` environment
variables, then the defaults below. Backends are named by URL so that a later
PostgreSQL / Redis / Qdrant deployment changes configuration, not code.
"""

from __future__ import annotations

from pathlib import Path

import platformdirs
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL = "all-MiniLM-L6-v2"


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("metamedia", appauthor=False))


class Settings(BaseSettings):
    """Runtime configuration; every field maps to `METAMEDIA_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="METAMEDIA_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite file in data_dir."
    )
    model_name: str = DEFAULT_MODEL
    embed_backend: str = Field(
        default="onnx",
        description="'onnx' (fast, same vectors) or 'torch' (sentence-transformers).",
    )
    model_cache_dir: Path = Field(
        default_factory=lambda: Path(platformdirs.user_cache_dir("metamedia", appauthor=False)),
        description="Where the one-time ONNX export of the model is kept.",
    )
    embed_threads: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="Threads per embedding call; None = all cores (ingest). "
        "`metamedia serve` uses 1: concurrent requests already fill the cores.",
    )
    embed_batch_size: int = Field(default=64, ge=1, le=4096)
    hnsw_threshold: int = Field(
        default=20_000,
        ge=0,
        description="Catalogs with at least this many vectors use HNSW; smaller ones use exact.",
    )
    hnsw_m: int = Field(default=32, ge=4, le=128)
    hnsw_ef_construction: int = Field(default=80, ge=8)
    hnsw_ef_search: int = Field(default=128, ge=8)
    exact_filter_fraction: float = Field(
        default=0.05,
        gt=0.0,
        le=1.0,
        description="Filters passing at most this fraction of items are searched exactly.",
    )
    candidate_pool: int = Field(default=200, ge=10, le=5000)
    rrf_k: float = Field(default=60.0, gt=0)
    keyword_weight: float = Field(default=1.0, ge=0)
    semantic_weight: float = Field(default=1.0, ge=0)
    fusion_method: str = "rrf"
    blas_threads: int = Field(
        default=1,
        ge=1,
        le=256,
        description="BLAS threads for request-sized math; more only slows concurrent requests.",
    )
    ingest_batch_size: int = Field(default=256, ge=1, le=100_000)
    query_cache_size: int = Field(default=2048, ge=0)
    query_cache_ttl_s: float = Field(default=300.0, ge=0)

    # -- caches (seeds: query 5 min, embeddings 1 h, recommendations 3 min, vectors 30 min)
    cache_budget_mb: float = Field(
        default=256.0, ge=0, description="Byte budget shared by all in-process caches."
    )
    cache_high_water: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="Fraction of the budget that triggers cleanup down to the low-water mark.",
    )
    cache_low_water: float = Field(default=0.7, gt=0, le=1)
    cache_ttl_query_embedding_s: float = Field(default=3600.0, ge=0)
    cache_ttl_search_s: float = Field(default=300.0, ge=0)
    cache_ttl_feed_s: float = Field(default=180.0, ge=0)
    cache_ttl_preference_vector_s: float = Field(default=1800.0, ge=0)
    cache_ttl_item_embedding_s: float = Field(default=3600.0, ge=0)

    # -- security
    admin_key: SecretStr | None = Field(
        default=None,
        description="Bootstrap admin API key (all scopes). Held only as a hash in memory; "
        "create further keys with `metamedia keys create`.",
    )
    public_user_writes: bool = Field(
        default=True,
        description="End users' interactions and preferences need no API key (they are "
        "rate limited per IP). False requires a `write` key for them too.",
    )
    rate_limit_per_ip: str = Field(
        default="1200/minute", description="Anonymous requests per client IP (limits syntax)."
    )
    rate_limit_per_key: str = Field(
        default="12000/minute", description="Requests per API key (limits syntax)."
    )
    max_body_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, description="Largest accepted request body."
    )

    @field_validator("embed_backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if value not in {"onnx", "torch"}:
            raise ValueError(f"embed_backend must be 'onnx' or 'torch', not {value!r}")
        return value

    @field_validator("fusion_method")
    @classmethod
    def _known_fusion(cls, value: str) -> str:
        if value not in {"rrf", "weighted"}:
            raise ValueError(f"fusion_method must be 'rrf' or 'weighted', not {value!r}")
        return value

    @field_validator("rate_limit_per_ip", "rate_limit_per_key")
    @classmethod
    def _rate_syntax(cls, value: str) -> str:
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError as exc:
            raise ValueError(f"rate limit {value!r} is not like '600/minute': {exc}") from exc
        return value

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'catalog.sqlite3'}"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def rejects_dir(self) -> Path:
        return self.data_dir / "rejects"
