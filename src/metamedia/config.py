"""One settings object for the whole service.

Values come from (highest first) explicit arguments, `METAMEDIA_*` environment
variables, then the defaults below. Backends are named by URL so that a later
PostgreSQL / Redis / Qdrant deployment changes configuration, not code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL = "all-MiniLM-L6-v2-tot"  # fine-tuned for descriptions (engine/model_delta.py)


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("metamedia", appauthor=False))


class Settings(BaseSettings):
    """Runtime configuration; every field maps to `METAMEDIA_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="METAMEDIA_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite file in data_dir."
    )
    vector_store: Literal["memory", "pgvector"] = Field(
        default="memory",
        description="Where item-level nearest-neighbour searches (feed content candidates, "
        "more like this) run: each process's in-memory index, or pgvector in the "
        "PostgreSQL database (postgresql URLs only).",
    )
    redis_url: str | None = Field(
        default=None,
        description="redis:// (or rediss://) URL shared by every replica: the caches' shared "
        "tier, rate limits, pub/sub invalidation and live-push fan-out, the user-event "
        "stream. None: everything stays in this process (the embedded default). Shown "
        "only redacted.",
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
    embed_batch_size: int = Field(default=32, ge=1, le=4096)
    hnsw_threshold: int = Field(
        default=20_000,
        ge=0,
        description="Catalogs with at least this many vectors use HNSW (float16 rows with "
        "'auto'); smaller ones use exact.",
    )
    vector_index_kind: Literal["auto", "flat", "hnsw", "hnsw_fp16", "hnsw_sq8"] = Field(
        default="auto",
        description="Kind of the item and passage vector indexes: 'auto' picks by size "
        "(flat, hnsw_fp16 from hnsw_threshold, hnsw_sq8 from compressed_threshold); any "
        "other value is used whatever the size. hnsw_fp16 is HNSW over float16 rows (half "
        "the bytes of hnsw's float32, no re-scoring).",
    )
    compressed_threshold: int = Field(
        default=200_000,
        ge=0,
        description="With vector_index_kind 'auto', indexes of at least this many vectors use "
        "hnsw_sq8: an 8-bit quantised graph, re-scored exactly from float rows kept in a "
        "memory-mapped file beside the index file. 0: never.",
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
    fusion_method: str = "learned"
    blas_threads: int = Field(
        default=1,
        ge=1,
        le=256,
        description="BLAS threads for request-sized math; more only slows concurrent requests.",
    )
    ingest_batch_size: int = Field(default=256, ge=1, le=100_000)

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
    feed_refresh: bool = Field(
        default=True,
        description="`serve` re-ranks a user's first feed page in the background right "
        "after an interaction, so their next feed request is a cache hit.",
    )
    memory_limit_mb: float = Field(
        default=1024.0,
        ge=0,
        description="Process memory (RSS) whose high-water fraction makes the caches shed "
        "entries; above the limit itself they are emptied. 0 disables the check.",
    )

    # -- alerts (seeds' thresholds), evaluated over a sliding window: GET /v1/admin/alerts
    alert_window_s: float = Field(
        default=300.0, gt=0, le=86_400, description="Sliding window the alert rules look at."
    )
    alert_min_samples: int = Field(
        default=20,
        ge=1,
        description="Observations a traffic-fed rule needs in the window before it can fire "
        "(fewer: state 'no_data'), so one slow request pages nobody.",
    )
    alert_feed_p95_s: float = Field(default=1.0, gt=0, description="Feed generation p95 limit.")
    alert_memory_bytes: int = Field(default=1 << 30, ge=1, description="Process RSS limit.")
    alert_cache_hit_rate_min: float = Field(
        default=0.70, ge=0, le=1, description="Cache hit rate below this fires."
    )
    alert_db_query_s: float = Field(default=0.5, gt=0, description="DB statement p95 limit.")
    alert_error_rate: float = Field(
        default=0.01, ge=0, le=1, description="Share of 5xx responses above this fires."
    )

    # -- security
    admin_key: SecretStr | None = Field(
        default=None,
        description="Bootstrap admin API key (all scopes). Held only as a hash in memory; "
        "create further keys with `metamedia keys create`.",
    )
    anonymous: Literal["off", "read", "open"] = Field(
        default="read",
        description="What callers without a key or user token may do: 'off' nothing but "
        "probes and docs; 'read' search and read the public catalog; 'open' (demos only) "
        "also act as any user, read and write their data. Anonymous callers (and the web "
        "pages) see the 'default' tenant only.",
    )
    forwarded_allow_ips: str = Field(
        default="",
        max_length=1000,
        description="Reverse proxies trusted to set X-Forwarded-For (comma-separated IPs or "
        "networks, '*' for any). Empty: none, so the per-IP limits count the real peer.",
    )
    rate_limit_per_ip: str = Field(
        default="1200/minute", description="Anonymous requests per client IP (limits syntax)."
    )
    rate_limit_per_key: str = Field(
        default="12000/minute", description="Requests per API key (limits syntax)."
    )
    untrusted_event_batch: int = Field(
        default=100,
        ge=1,
        le=5000,
        description="Most interaction events one request from a user token or an anonymous "
        "caller may carry (keys may send up to 5,000); 422 past it.",
    )
    user_event_rate: str = Field(
        default="300/minute",
        description="Interaction events per user that user tokens and anonymous callers may "
        "send (limits syntax); 429 with Retry-After past it.",
    )
    # -- live updates (WebSocket /v1/ws)
    ws_heartbeat_s: float = Field(default=15.0, gt=0, description="Server heartbeat period.")
    ws_idle_timeout_s: float = Field(
        default=60.0, gt=0, description="Close connections silent for this long."
    )
    ws_mailbox_size: int = Field(
        default=64, ge=1, description="Messages queued per client before the oldest drop."
    )
    ws_send_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="A client that takes longer to accept one message "
        "is disconnected (its session stays resumable).",
    )
    ws_resume_s: float = Field(
        default=60.0, ge=0, description="How long a dropped session's subscriptions wait."
    )
    max_body_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, description="Largest accepted request body."
    )

    # -- graphql: documents over these limits are refused before any resolver runs
    graphql_max_depth: int = Field(
        default=8, ge=1, le=64, description="Deepest nesting of fields in one GraphQL operation."
    )
    graphql_max_cost: int = Field(
        default=5000,
        ge=1,
        description="Most a GraphQL operation may cost: each field counts its weight (1 for "
        "a value, far more for search, feed and similar) once per value it yields, "
        "multiplied by the `limit` of every list above it.",
    )
    graphql_budget_per_minute: int = Field(
        default=20_000,
        ge=1,
        description="GraphQL cost an end user (token) or anonymous IP may spend per minute; "
        "past it, 429 with Retry-After before any resolver runs.",
    )
    graphql_key_budget_per_minute: int = Field(
        default=200_000, ge=1, description="GraphQL cost one API key may spend per minute."
    )

    # -- feature flags and experiments
    experiments_file: Path | None = Field(
        default=None,
        description="TOML or JSON file of flags and experiments, synced into the database at "
        "start-up (replaces the built-in set). Admin API edits win until a definition's "
        "text in this file changes.",
    )
    experiments_refresh_s: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="How often a process checks the definitions' version counter (one cheap "
        "read); 0 = on every request. Bounds how late a kill switch reaches other processes.",
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
        if value not in {"learned", "rrf", "weighted"}:
            raise ValueError(f"fusion_method must be 'learned', 'rrf' or 'weighted', not {value!r}")
        return value

    @field_validator("rate_limit_per_ip", "rate_limit_per_key", "user_event_rate")
    @classmethod
    def _rate_syntax(cls, value: str) -> str:
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError as exc:
            raise ValueError(f"rate limit {value!r} is not like '600/minute': {exc}") from exc
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if not value:
            return None
        scheme = value.split(":", 1)[0].lower()
        if scheme not in {"redis", "rediss", "unix"}:
            raise ValueError("redis_url must be a redis://, rediss:// or unix:// URL")
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
