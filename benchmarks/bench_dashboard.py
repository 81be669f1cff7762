"""Speed of the dashboard: recomputing the capacity page, and the first page in a browser.

    python benchmarks/bench_dashboard.py [--skip-browser]

1. Server time after one input change on the capacity page (TP 1 <-> 2 and
   max_model_len), through the Param objects and the rendered panes (a Bokeh
   document holds the page, so HoloViews and Panel update their models as they
   would for a browser). Target: <= 150 ms.
2. First page render in headless Chromium (Debian's, via Playwright) after the
   server is up: from navigation to the KV-cache figure on screen. Target: <= 3 s.
   The server runs on 127.0.0.1 and every request to another host is blocked.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CHANGE_TARGET_MS = 150
FIRST_RENDER_TARGET_S = 3.0
CHANGES = 20  # input changes timed
PAGE_LOADS = 3  # fresh browser contexts timed
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


def bench_change() -> list[float]:
    """Milliseconds from setting one capacity input to the panes being updated."""
    import holoviews as hv
    from bokeh.document import Document

    from cfgexplorer.views.capacity import CapacityView

    hv.extension("bokeh", logo=False)
    view = CapacityView()
    view.__panel__().get_root(Document())
    state = view.state
    changes = [("tp", 2), ("tp", 1), ("max_model_len", 16000), ("max_model_len", 40960)]
    for name, value in changes:  # warm caches as a live session would have
        setattr(state, name, value)
    times = []
    for i in range(CHANGES):
        name, value = changes[i % len(changes)]
        start = time.perf_counter()
        setattr(state, name, value)
        times.append((time.perf_counter() - start) * 1000)
    return times


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_first_render() -> list[float]:
    """Seconds from navigation to the capacity figures, one fresh context each."""
    from playwright.sync_api import sync_playwright

    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, HF_HUB_OFFLINE="1", CFGEXPLORER_CACHE=tmp)
        log = Path(tmp) / "server.log"
        with log.open("w") as out:
            server = subprocess.Popen(
                [sys.executable, "-m", "cfgexplorer.cli", "serve", "--port", str(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        url = f"http://127.0.0.1:{port}/app"
        try:
            deadline = time.monotonic() + 90
            while True:
                try:
                    with urllib.request.urlopen(url, timeout=10):
                        break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise SystemExit(f"server did not start:\n{log.read_text()}") from None
                    time.sleep(0.3)
            times = []
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                for _ in range(PAGE_LOADS):
                    context = browser.new_context(viewport={"width": 1400, "height": 1000})
                    context.route(
                        "**/*",
                        lambda r: (
                            r.continue_()
                            if r.request.url.startswith(("http://127.0.0.1", "ws://127.0.0.1"))
                            else r.abort()
                        ),
                    )
                    page = context.new_page()
                    start = time.monotonic()
                    page.goto(url)
                    page.wait_for_selector(".kv-summary >> text=GPU KV cache size")
                    times.append(time.monotonic() - start)
                    context.close()
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=15)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-browser", action="store_true", help="only the server timing")
    args = parser.parse_args()

    change = bench_change()
    print(
        f"capacity page, one input change: median {statistics.median(change):.1f} ms, "
        f"max {max(change):.1f} ms over {len(change)} changes "
        f"(target <= {CHANGE_TARGET_MS} ms)"
    )
    if args.skip_browser or not Path(CHROMIUM).exists():
        return
    render = bench_first_render()
    print(
        f"first page render in Chromium: first {render[0]:.2f} s, "
        f"median {statistics.median(render):.2f} s over {len(render)} loads "
        f"(target <= {FIRST_RENDER_TARGET_S:.0f} s)"
    )


if __name__ == "__main__":
    main()
