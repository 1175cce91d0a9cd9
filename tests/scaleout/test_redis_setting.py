"""`METAMEDIA_REDIS_URL`: read from the environment, checked, and shown only redacted."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from pydantic import ValidationError

from metamedia.config import Settings
from metamedia.storage.urls import redact_url


def test_redis_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METAMEDIA_REDIS_URL", "redis://127.0.0.1:6390/2")
    assert Settings().redis_url == "redis://127.0.0.1:6390/2"


def test_no_redis_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("METAMEDIA_REDIS_URL", raising=False)
    assert Settings().redis_url is None
    assert Settings(redis_url="").redis_url is None


def test_a_url_of_another_scheme_is_refused() -> None:
    with pytest.raises(ValidationError, match="redis://"):
        Settings(redis_url="http://127.0.0.1:6379")


def test_redis_password_is_redacted() -> None:
    assert redact_url("redis://:s3cret@cache:6379/0") == "redis://:***@cache:6379/0"
    assert redact_url("rediss://app:s3cret@cache:6380/1") == "rediss://app:***@cache:6380/1"


def test_logs_and_stats_never_show_the_redis_password(
    make_runtime: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from metamedia.domain import SearchRequest
    from metamedia.testing.redis import free_port

    url = f"redis://:s3cret-pass@127.0.0.1:{free_port()}/0"  # nothing listens there
    with caplog.at_level(logging.WARNING):
        runtime = make_runtime(redis_url=url)
        runtime.search.search(SearchRequest(query="anything", limit=1))
        assert runtime.shared.status() == "degraded"
    assert "redis unavailable" in caplog.text
    assert "s3cret-pass" not in caplog.text
    assert runtime.stats()["redis"] == url.replace("s3cret-pass", "***")
