"""Web UI fixtures: the demo catalog with its demo users and themes, a real server on a
free loopback port, and Debian's chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from metamedia.api.app import create_app
from metamedia.config import Settings
from metamedia.engine.embed import Embedder
from metamedia.services.demo_users import load_demo_users
from metamedia.services.runtime import Runtime

CHROMIUM = os.environ.get("METAMEDIA_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def web_demo_dir(
    demo_data_dir: Path, tmp_path_factory: pytest.TempPathFactory, embedder: Embedder
) -> Path:
    """What `metamedia demo` leaves behind: catalog, demo users, trained themes."""
    data_dir = tmp_path_factory.mktemp("web-demo") / "data"
    shutil.copytree(demo_data_dir, data_dir)
    runtime = Runtime.open(Settings(data_dir=data_dir), embedder=embedder)
    load_demo_users(runtime.users)
    runtime.train()
    runtime.close()
    return data_dir


@pytest.fixture()
def web_runtime(web_demo_dir: Path, tmp_path: Path, make_runtime: Any) -> Runtime:
    copy = tmp_path / "web-copy"
    shutil.copytree(web_demo_dir, copy)
    # As `metamedia demo` serves it: the demo profiles one click away (open mode).
    runtime: Runtime = make_runtime(copy, anonymous="open")
    return runtime


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LiveServer:
    """uvicorn serving the real app in a background thread."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(runtime=runtime), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture()
def live_server(web_runtime: Runtime) -> Iterator[LiveServer]:
    with LiveServer(web_runtime) as server:
        yield server


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        # A missing browser is a broken set-up, not a reason to check nothing.
        pytest.fail(
            f"chromium not found at {CHROMIUM}: `bash scripts/setup.sh` installs it as root "
            "with apt-get (or set METAMEDIA_CHROMIUM)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


@pytest.fixture()
def page(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    """A fresh browser context (no cookies) whose relative URLs go to the live server;
    any JavaScript dialog fails the test that opened it."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    tab = context.new_page()
    tab.dialogs = []
    tab.on("dialog", lambda dialog: (tab.dialogs.append(dialog.message), dialog.dismiss()))
    yield tab
    context.close()
