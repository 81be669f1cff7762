"""The dashboard in headless Chromium: every page, a TP change, an upload, a shared link."""

from __future__ import annotations

import re
import time
import urllib.parse
from pathlib import Path

import pytest

from cfgexplorer import gpus, load_model, memory
from cfgexplorer.benchmarks.loader import MAX_FILE_BYTES
from cfgexplorer.views.capacity import PAGE_MAX_MODEL_LEN

pytestmark = pytest.mark.browser

SAMPLE = (
    Path(__file__).resolve().parents[1]
    / "benchmarks"
    / "samples"
    / "llm-d-benchmark-examples"
    / "br_v0_2_example.yaml"
)
TIMEOUT_MS = 30_000


def kv_tokens(pg) -> int:
    """The 'GPU KV cache size: N tokens' figure shown on the capacity page."""
    text = "\n".join(pg.locator(".kv-summary tr").all_inner_texts())
    match = re.search(r"GPU KV cache size\s+([\d,]+) tokens", text)
    assert match, text
    return int(match.group(1).replace(",", ""))


def core_tokens(tp: int) -> int:
    spec = load_model("Qwen/Qwen3-32B")
    dep = memory.Deployment(tp=tp, max_model_len=PAGE_MAX_MODEL_LEN, gpu_memory_utilization=0.9)
    return memory.plan(spec, gpus.get_gpu("H100"), dep).kv_tokens


def wait_for_capacity(pg) -> None:
    pg.wait_for_selector(".kv-summary >> text=GPU KV cache size", timeout=TIMEOUT_MS)


def test_capacity_page_renders_and_follows_tp(server, page, tmp_path, screenshot):
    # The render time is a speed goal: benchmarks/bench_dashboard.py prints it.
    page.goto(server.app())
    wait_for_capacity(page)

    assert page.locator(".mml-input input").input_value() == str(PAGE_MAX_MODEL_LEN)
    page.wait_for_selector(".verdict >> text=Fits", timeout=TIMEOUT_MS)
    assert kv_tokens(page) == core_tokens(1)
    page.locator(".tp-select select").select_option("2")
    expected = core_tokens(2)
    deadline = time.monotonic() + 15
    while kv_tokens(page) != expected and time.monotonic() < deadline:
        time.sleep(0.1)
    assert kv_tokens(page) == expected
    page.wait_for_url(re.compile(r"[?&]tp=2(&|$)"), timeout=TIMEOUT_MS)  # follows the input
    page.wait_for_timeout(500)
    screenshot(page, tmp_path, "capacity")


def test_every_page_opens(server, page, tmp_path, screenshot):
    page.goto(server.app())
    wait_for_capacity(page)
    for label, marker in [
        ("Recommend", ".recommend-page"),
        ("Sweep", ".sweep-summary"),
        ("Fleet", ".fleet-page"),
        ("Capacity", ".kv-summary"),
    ]:
        page.locator(".page-nav button", has_text=label).click()
        page.wait_for_selector(marker, timeout=TIMEOUT_MS)
        assert f"page={label.lower()}" in page.url
        page.wait_for_timeout(700)  # plots finish drawing
        screenshot(page, tmp_path, label.lower())
    assert "Traceback" not in page.content()


def test_sweep_upload_draws_the_pareto_plot(server, page, tmp_path, screenshot):
    page.goto(server.app("?page=sweep"))
    page.wait_for_selector(".sweep-summary >> text=runs", timeout=TIMEOUT_MS)

    page.locator(".sweep-upload input[type=file]").set_input_files(str(SAMPLE))

    page.wait_for_selector(".sweep-summary >> text=1 runs", timeout=TIMEOUT_MS)
    page.wait_for_selector(".sweep-summary >> text=1 on the Pareto front", timeout=TIMEOUT_MS)
    page.wait_for_selector(".pareto-plot canvas", timeout=TIMEOUT_MS)
    page.wait_for_timeout(700)
    screenshot(page, tmp_path, "sweep-upload")


def test_oversized_file_is_skipped_and_the_rest_of_the_upload_loads(server, page, tmp_path):
    big = tmp_path / "huge.json"
    with big.open("wb") as out:  # 53 MB: over the importers' limit and Bokeh's default 20 MB
        out.write(b"[")
        out.write(b" " * (MAX_FILE_BYTES + 3 * 10**6))
        out.write(b"]")
    page.goto(server.app("?page=sweep"))
    page.wait_for_selector(".sweep-summary >> text=runs", timeout=TIMEOUT_MS)

    page.locator(".sweep-upload input[type=file]").set_input_files([str(big), str(SAMPLE)])

    page.wait_for_selector(".sweep-summary >> text=1 runs", timeout=TIMEOUT_MS)
    page.wait_for_selector(".sweep-summary >> text=1 files skipped", timeout=TIMEOUT_MS)
    note = page.locator(".notes >> text=skipped huge.json").first
    note.wait_for(timeout=TIMEOUT_MS)
    assert "file is 53 MB, over the 50 MB limit" in note.inner_text()
    # The session survived: an input change still reaches the server and comes back.
    page.locator(".page-nav button", has_text="Fleet").click()
    page.wait_for_selector(".fleet-page", timeout=TIMEOUT_MS)
    assert "lost" not in page.content().lower()


def test_no_input_of_the_capacity_page_is_covered_by_the_results(server, page, tmp_path):
    page.goto(server.app())
    wait_for_capacity(page)
    page.wait_for_timeout(500)  # layout settles

    column = page.locator(".capacity-controls").first.bounding_box()
    results = page.locator(".kv-summary").first.bounding_box()
    inputs = page.locator(".capacity-controls select, .capacity-controls input")
    assert inputs.count() > 10
    for i in range(inputs.count()):
        box = inputs.nth(i).bounding_box()
        if box is None or box["width"] == 0:  # a hidden file input
            continue
        assert box["x"] + box["width"] <= results["x"], (i, box, results)
        assert box["x"] + box["width"] <= column["x"] + column["width"] + 1, (i, box, column)


def test_shared_link_reopens_the_same_inputs(server, page, tmp_path, screenshot):
    link = server.app("?page=capacity&gpu=A100-SXM-80GB&tp=4&max_model_len=16000&dtype=bogus")

    page.goto(link)
    wait_for_capacity(page)

    assert page.locator(".tp-select select").input_value() == "4"
    assert page.locator(".gpu-select select").input_value() == "A100-SXM-80GB"
    assert page.locator(".mml-input input").input_value() == "16000"
    page.wait_for_selector(
        ".notes >> text=dtype=bogus in the link is not one of the choices", timeout=TIMEOUT_MS
    )
    spec = load_model("Qwen/Qwen3-32B")
    dep = memory.Deployment(tp=4, max_model_len=16000, gpu_memory_utilization=0.9)
    assert kv_tokens(page) == memory.plan(spec, gpus.get_gpu("A100"), dep).kv_tokens
    assert "tp=4" in page.url
    assert "hf_token" not in page.url
    screenshot(page, tmp_path, "shared-link")


def test_misspelt_link_key_is_named_in_a_note(server, page):
    page.goto(server.app("?page=capacity&gpu_mem_util=7&slos=P90_TTFT_ms<=1000"))
    wait_for_capacity(page)

    note = page.locator(".notes >> text=gpu_mem_util").first
    note.wait_for(timeout=TIMEOUT_MS)
    assert "gpu_memory_utilization" in note.inner_text()
    assert "slos" not in note.inner_text()  # the sweep page's key


def test_link_values_are_shown_as_text_never_run_as_html(server, page):
    fired: list[str] = []
    page.on("dialog", lambda dialog: (fired.append(dialog.message), dialog.dismiss()))
    payload = urllib.parse.quote("<img src=x onerror=alert(document.domain)>")
    page.goto(server.app(f"?page=capacity&gpu={payload}&model={payload}"))
    wait_for_capacity(page)
    note = page.locator(".notes >> text=in the link is not a GPU of the catalog").first
    note.wait_for(timeout=TIMEOUT_MS)
    page.wait_for_timeout(1000)
    assert fired == []
    assert "<img src=x" in note.inner_text()


def test_typed_number_beyond_its_bound_is_used_at_the_bound_with_a_note(server, page):
    page.goto(server.app("?page=capacity&max_model_len=8000"))
    wait_for_capacity(page)
    field = page.locator(".mml-input input")

    field.fill("50000")
    field.press("Enter")

    note = page.locator(".notes >> text=max_model_len (tokens) 50000 is above 40960").first
    note.wait_for(timeout=TIMEOUT_MS)
    assert "using 40960" in note.inner_text()
    page.wait_for_url(re.compile(r"[?&]max_model_len=40960(&|$)"), timeout=TIMEOUT_MS)
    assert field.input_value() == "40960"  # the field shows the value used, not the one typed


def test_a_link_with_a_question_mark_inside_a_value_still_opens(server, page):
    # Valid in a URL, but Panel's own parser splits on every "?" and gave a blank page.
    page.goto(server.app("?page=capacity&tp=2&block_size=16?x=1"))
    wait_for_capacity(page)
    page.locator(".tp-select select").select_option("4")
    page.wait_for_url(re.compile(r"[?&]tp=4&"), timeout=TIMEOUT_MS)
    assert "too many values to unpack" not in server.log()
