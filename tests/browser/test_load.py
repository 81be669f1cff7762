"""Load smoke test: 20 browser sessions against one server, each changing its own inputs."""

from __future__ import annotations

import asyncio
import concurrent.futures
import re

import pytest

from cfgexplorer import gpus, load_model, memory

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
LOCAL = ("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SESSIONS = 20
TIMEOUT_MS = 120_000
CHOICES = [(1, 2), (2, 4), (4, 8), (8, 1)]  # (tp at open, tp chosen), cycled over sessions


def expected_tokens(tp: int) -> int:
    spec = load_model("Qwen/Qwen3-32B")
    dep = memory.Deployment(tp=tp, max_model_len=40960, gpu_memory_utilization=0.9)
    return memory.plan(spec, gpus.get_gpu("H100"), dep).kv_tokens


async def one_session(browser, url: str, index: int) -> tuple[int, int, str]:
    start_tp, new_tp = CHOICES[index % len(CHOICES)]
    context = await browser.new_context(viewport={"width": 1200, "height": 900})

    async def route(r) -> None:
        await (r.continue_() if r.request.url.startswith(LOCAL) else r.abort())

    await context.route("**/*", route)
    page = await context.new_page()
    await page.goto(f"{url}/app?page=capacity&tp={start_tp}", timeout=TIMEOUT_MS)
    await page.wait_for_selector(".kv-summary >> text=GPU KV cache size", timeout=TIMEOUT_MS)
    await page.locator(".tp-select select").select_option(str(new_tp))
    want = f"{expected_tokens(new_tp):,} tokens"
    await page.wait_for_selector(f".kv-summary >> text={want}", timeout=TIMEOUT_MS)
    rows = await page.locator(".kv-summary tr").all_inner_texts()
    await page.wait_for_url(re.compile(f"[?&]tp={new_tp}&"), timeout=TIMEOUT_MS)
    final_url = page.url
    await context.close()
    shown = re.search(r"GPU KV cache size\s+([\d,]+) tokens", "\n".join(rows))
    return new_tp, int(shown.group(1).replace(",", "")), final_url


def test_twenty_sessions_keep_their_own_state(server):
    from playwright.async_api import async_playwright

    async def run() -> list[tuple[int, int, str]]:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                return await asyncio.gather(
                    *(one_session(browser, server.url, i) for i in range(SESSIONS))
                )
            finally:
                await browser.close()

    # The sync Playwright of the other tests owns this thread's event loop: use another thread.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        results = pool.submit(asyncio.run, run()).result()

    assert len(results) == SESSIONS
    for tp, shown, url in results:
        assert shown == expected_tokens(tp)
        assert f"tp={tp}" in url
    assert server_errors(server.log()) == []


# Closing 20 browsers at once drops websockets while the server still writes to them;
# tornado logs those as unretrieved task errors. They are not errors of the app.
# A client that goes away mid-write can also surface as a reset or broken pipe. And when
# Bokeh's keep-alive ping finds a socket already closed, it detaches that connection from
# its session before tornado's close handler runs; the handler (and any message still
# queued from that client) then trips Bokeh's "assert self._session is not None". Seen in
# one run of four on 2 busy cores, always after the client had closed its page.
CLOSED_SOCKET = (
    "WebSocketClosedError",
    "StreamClosedError",
    "ConnectionResetError",
    "BrokenPipeError",
    "assert self._session is not None",
)


def server_errors(log: str) -> list[str]:
    """ERROR records and tracebacks in the server log, other than closed websockets."""
    records = re.split(r"(?m)^(?=(?:DEBUG|INFO|WARNING|ERROR|CRITICAL) )", log)
    bad = [r for r in records if r.startswith(("ERROR", "CRITICAL")) or "Traceback" in r]
    return [r[:500] for r in bad if not any(name in r for name in CLOSED_SOCKET)]
