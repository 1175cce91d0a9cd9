"""Web UI fixtures: the demo catalog with its demo users and themes, a real server on a
free loopback port, and Debian's chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from metamedia.config import Settings
from metamedia.engine.embed import Embedder
from metamedia.services.demo_users import load_demo_users
from metamedia.services.runtime import Runtime
from tests.live_server import ServeThread

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


@pytest.fixture()
def live_server(web_runtime: Runtime) -> Iterator[ServeThread]:
    with ServeThread(web_runtime) as server:
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
def page(browser: Any, live_server: ServeThread) -> Iterator[Any]:
    """A fresh browser context (no cookies) whose relative URLs go to the live server;
    any JavaScript dialog fails the test that opened it."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    tab = context.new_page()
    tab.dialogs = []
    tab.on("dialog", lambda dialog: (tab.dialogs.append(dialog.message), dialog.dismiss()))
    yield tab
    context.close()
