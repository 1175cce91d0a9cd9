"""How each cache's keys and values cross processes, for the shared (Redis) tier.

Keys: a cache key is a tuple of versions and request parts; the shared key is
`<tenant>:<scope>:<digest>` with the digest taken over a canonical JSON form of
the tuple (sets sorted, dataclasses and models as fields), so every replica,
whatever its hash seed, computes the same key for the same question. Tenant
and user lead the key (percent-encoded, so no name can pose as a prefix of
another) so that one tenant's or one user's entries can be dropped by prefix.

Values: JSON for pydantic models and ranked lists, numpy's `.npy` format
without pickle for vectors. Nothing read back can run code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from collections.abc import Hashable
from typing import Any
from urllib.parse import quote

import numpy as np
from pydantic import BaseModel

from metamedia.engine.vectors import FloatArray
from metamedia.storage.tiered_cache import Codec

NO_TENANT = "_"


def canonical(value: Any) -> Any:
    """A JSON-able form of a key part that is the same in every process."""
    if isinstance(value, BaseModel):
        return canonical(value.model_dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, set | frozenset):
        return sorted((canonical(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"cache key part of type {type(value).__name__} has no canonical form")


def digest(key: Hashable) -> str:
    text = json.dumps(canonical(key), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def part(text: str) -> str:
    """One tenant or user name as a key segment: ':' can never appear in it."""
    return quote(text, safe="")


def user_prefix(tenant: str, user: str) -> str:
    """The shared-key prefix of one user's feed pages and feed snapshots."""
    return f"{part(tenant)}:{part(user)}:"


# -- keys per cache (the tuples the services build) ---------------------------------------


def content_key(key: Hashable) -> str:
    """Embeddings: content-addressed, the same for every tenant."""
    return f"{NO_TENANT}:{digest(key)}"


def search_key(key: Hashable) -> str:
    """(watermark, request JSON): the tenant is inside the request."""
    assert isinstance(key, tuple)
    tenant = json.loads(key[1]).get("tenant") or NO_TENANT
    return f"{part(tenant)}:{digest(key)}"


def feed_page_key(key: Hashable) -> str:
    """("page", tenant, user, user version, watermark, weights, limit)."""
    assert isinstance(key, tuple)
    return user_prefix(key[1], key[2]) + digest(key)


def feed_snapshot_key(key: Hashable) -> str:
    """(tenant, user, snapshot id): the ranked list a cursor pages, on any replica."""
    assert isinstance(key, tuple)
    return user_prefix(key[0], key[1]) + digest(key)


def preference_key(key: Hashable) -> str:
    """(user primary key, user version)."""
    assert isinstance(key, tuple)
    return f"pk{int(key[0])}:{digest(key)}"


# -- values ---------------------------------------------------------------------------------


def _array_bytes(array: FloatArray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _array(raw: bytes) -> FloatArray:
    loaded = np.load(io.BytesIO(raw), allow_pickle=False)
    if not isinstance(loaded, np.ndarray) or loaded.dtype != np.float32:
        raise ValueError("cached vector is not a float32 array")
    loaded.setflags(write=False)  # shared, like every cached value
    return loaded


ARRAY: Codec[FloatArray] = Codec(_array_bytes, _array)


def _optional_vector_bytes(value: tuple[FloatArray | None]) -> bytes:
    vector = value[0]
    return b"N" if vector is None else b"A" + _array_bytes(vector)


def _optional_vector(raw: bytes) -> tuple[FloatArray | None]:
    if raw == b"N":
        return (None,)
    if raw[:1] != b"A":
        raise ValueError("unknown preference vector encoding")
    return (_array(raw[1:]),)


OPTIONAL_VECTOR: Codec[tuple[FloatArray | None]] = Codec(_optional_vector_bytes, _optional_vector)


def _ranked_bytes(ranked: list[tuple[int, float, list[str]]]) -> bytes:
    return json.dumps([[pk, score, reasons] for pk, score, reasons in ranked]).encode()


def _ranked(raw: bytes) -> list[tuple[int, float, list[str]]]:
    return [
        (int(pk), float(score), [str(r) for r in reasons]) for pk, score, reasons in json.loads(raw)
    ]


RANKED: Codec[list[tuple[int, float, list[str]]]] = Codec(_ranked_bytes, _ranked)


def model_codec(model: type[BaseModel]) -> Codec[Any]:
    """A pydantic model as its JSON (validated on the way back)."""
    return Codec(lambda value: value.model_dump_json().encode(), model.model_validate_json)
