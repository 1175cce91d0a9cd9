"""`X-Forwarded-For` cannot buy a fresh per-IP budget unless a proxy is trusted.

uvicorn trusts the header from 127.0.0.1 by default; `serve` now trusts no proxy
unless `--forwarded-allow-ips` names one. Real server, real HTTP, loopback only.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx

from tests.live_server import ServeThread


def _runtime(make_runtime: Any, demo_data_dir: Path, tmp_path: Path, **settings: Any) -> Any:
    copy = tmp_path / "forwarded-demo"
    shutil.copytree(demo_data_dir, copy)
    return make_runtime(copy, rate_limit_per_ip="5/minute", **settings)


def _statuses(url: str, count: int) -> list[int]:
    with httpx.Client(base_url=url, timeout=30) as http:
        return [
            http.get("/v1/themes", headers={"X-Forwarded-For": f"203.0.113.{n}"}).status_code
            for n in range(count)
        ]


def test_by_default_forwarded_for_from_localhost_does_not_escape_the_ip_limit(
    make_runtime: Any, demo_data_dir: Path, tmp_path: Path
) -> None:
    runtime = _runtime(make_runtime, demo_data_dir, tmp_path)
    with ServeThread(runtime) as server:
        statuses = _statuses(server.url, 8)
    assert statuses.count(429) == 3, statuses  # one bucket: the real peer, 127.0.0.1


def test_a_trusted_proxy_names_the_client(
    make_runtime: Any, demo_data_dir: Path, tmp_path: Path
) -> None:
    runtime = _runtime(make_runtime, demo_data_dir, tmp_path, forwarded_allow_ips="127.0.0.1")
    with ServeThread(runtime) as server:
        statuses = _statuses(server.url, 8)
    assert 429 not in statuses, statuses  # eight clients behind the proxy, one request each
