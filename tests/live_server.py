"""A real uvicorn server on 127.0.0.1 in a background thread, configured as `serve` is."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from typing import Any

import httpx
import pytest
import uvicorn

from metamedia.api.app import create_app
from metamedia.api.proxies import proxy_options
from metamedia.services.runtime import Runtime


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServeThread:
    """`metamedia serve` for one test: same app, same proxy settings, loopback only."""

    def __init__(self, runtime: Runtime, **uvicorn_options: Any) -> None:
        self.runtime = runtime
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        options = {**proxy_options(runtime.settings.forwarded_allow_ips), **uvicorn_options}
        config = uvicorn.Config(
            create_app(runtime=runtime),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            **options,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServeThread:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def wait_until_ready(base_url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Poll `/readyz` of a `metamedia serve` child until it answers 200; fail the test
    if the process exits or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"server did not become ready within {timeout_s:.0f} s")
