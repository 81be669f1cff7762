"""A dashboard server on 127.0.0.1 and a headless Chromium for the browser tests.

The server is ``cfgexplorer serve`` in a subprocess on a free port, offline
(``HF_HUB_OFFLINE=1``) with a private cache; Chromium is Debian's, driven by
Playwright's Python API (Playwright never downloads its own browser). Every request a page
makes to another host is blocked and recorded, so a test fails if the
dashboard tries to reach a CDN.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SERVER_START_TIMEOUT_S = 90
LOCAL_PREFIXES = ("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:", "about:")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A running dashboard: its base URL and its log."""

    def __init__(self, url: str, log_path: Path, process: subprocess.Popen) -> None:
        self.url = url
        self.log_path = log_path
        self.process = process

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def app(self, query: str = "") -> str:
        return f"{self.url}/app{query}"


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    pytest.importorskip("playwright")
    work = tmp_path_factory.mktemp("server")
    port = free_port()
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        CFGEXPLORER_CACHE=str(work / "cache"),
        BOKEH_LOG_LEVEL="info",
    )
    env.pop("CFGEXPLORER_SWEEP_ROOT", None)
    log_path = work / "server.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "cfgexplorer.cli", "serve", "--port", str(port)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while True:
        try:
            with urllib.request.urlopen(f"{url}/app", timeout=10) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"dashboard did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.3)
    yield Server(url, log_path, process)
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="session")
def browser(server: Server) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        # Playwright gives every launch a fresh temporary --user-data-dir.
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: object, request: pytest.FixtureRequest) -> Iterator[object]:
    """A page in a fresh context; requests to any other host are blocked and recorded."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    blocked: list[str] = []

    def route(r: object) -> None:
        if r.request.url.startswith(LOCAL_PREFIXES):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.blocked = blocked
    pg.errors = errors
    yield pg
    context.close()
    assert blocked == [], f"the page tried to reach other hosts: {blocked[:5]}"
    assert errors == [], f"JavaScript errors: {errors[:5]}"


@pytest.fixture
def screenshot():
    """Save a screenshot of a page under a temporary directory (pytest's tmp_path)."""

    def save(pg: object, directory: Path, name: str) -> Path:
        path = directory / f"{name}.png"
        pg.screenshot(path=str(path), full_page=True)
        keep = os.environ.get("CFGEXPLORER_SCREENSHOTS")
        if keep:  # optional copy for people reviewing the pages
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(keep) / path.name)
        return path

    return save
