"""The dashboard app without a browser: link keys, serving options, plot ticks, input widths."""

from __future__ import annotations

import argparse
import itertools
import math
from pathlib import Path

import panel as pn
import pytest

from cfgexplorer.app import Dashboard, unknown_key_notes
from cfgexplorer.benchmarks.loader import MAX_FILE_BYTES
from cfgexplorer.commands.serve import panel_arguments
from cfgexplorer.models.capacity import curve_lengths
from cfgexplorer.views import plots
from cfgexplorer.views.common import CONTROL_WIDTH, INPUT_WIDTH


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("CFGEXPLORER_CACHE", str(tmp_path / "cache"))


def test_misspelt_link_key_gets_a_note_naming_the_closest_input():
    dashboard = Dashboard(query={"page": "capacity", "gpu_mem_util": "7"})

    notes = dashboard.state().notes

    assert len(notes) == 1
    assert "gpu_mem_util" in notes[0]
    assert "gpu_memory_utilization" in notes[0]
    assert "'7'" not in notes[0]  # the value is never shown (it might be a token)


def test_keys_of_other_pages_and_of_bokeh_get_no_note():
    query = {
        "page": "capacity",
        "embed": "true",
        "slos": "P90_TTFT_ms<=1000",  # the sweep page's
        "pue": "1.3",  # the fleet page's
        "bokeh-autoload-element": "x",  # added by server_document
        "bokeh-absolute-url": "http://127.0.0.1",
    }
    assert unknown_key_notes(query) == []
    assert Dashboard(query=query).state().notes == []


def test_serve_accepts_an_upload_of_several_files_at_the_size_limit():
    args = argparse.Namespace(
        port=5006, address="127.0.0.1", num_procs=1, allow_websocket_origin=[], show=False
    )
    argv = panel_arguments(args)

    size = int(argv[argv.index("--websocket-max-message-size") + 1])
    assert size >= 4 * math.ceil(MAX_FILE_BYTES / 3) * 4


def test_concurrency_curve_ticks_are_far_enough_apart_to_read():
    for model_max, current in [(40960, 40960), (40960, 16000), (131072, 31696), (36000, 30000)]:
        ticks = plots.length_ticks(curve_lengths(model_max, current))
        values = [v for v, _label in ticks]
        assert values[-1] == model_max
        ratios = [b / a for a, b in itertools.pairwise(values)]
        assert min(ratios) >= plots.MIN_TICK_RATIO, ticks
    assert plots.length_ticks([1024, 32768, 40960])[-2:] == [(32768, "32K"), (40960, "40K")]


def test_capacity_inputs_fit_in_the_input_column():
    import panel as pn

    from cfgexplorer.views.capacity import CapacityView

    column = CapacityView()._controls()
    widths = []

    def walk(obj):
        if isinstance(obj, pn.widgets.Widget):
            widths.append((obj.name, obj.width))
        elif isinstance(obj, pn.Param):
            walk(obj.layout)
        elif isinstance(obj, pn.layout.ListLike):
            for child in obj.objects:
                walk(child)

    walk(column)
    assert widths
    assert all(w is not None and w <= INPUT_WIDTH + 20 < CONTROL_WIDTH for _n, w in widths), widths


VLLM_RUN = (
    Path(__file__).resolve().parent
    / "benchmarks/samples/vllm-benchmark/lambdalabs/1xH100-80GB-SXM"
    / "Meta-Llama-3.1-8B-FP8_tp1_len4096.json"
)


def test_pareto_plot_of_an_upload_without_gpu_count_renders():
    import holoviews as hv
    import holoviews.plotting.bokeh  # the backend the dashboard draws with

    from cfgexplorer.models import SweepExplorer
    from cfgexplorer.views.sweep import CONFIG_COLUMNS

    state = SweepExplorer()
    state.add_uploads([(VLLM_RUN.name, VLLM_RUN.read_bytes())])
    assert len(state.filtered) == 1
    # A vLLM bench file names no GPU count: nullable columns hold pd.NA, which HoloViews'
    # range code cannot compare; the plot must still render with those runs in the hover.
    assert state.filtered["Num_GPUs"].isna().all()
    state.y_metric = "Output_Token_Throughput"
    overlay = plots.pareto_plot(
        state.filtered, state.front, state.x_metric, state.y_metric, [], list(CONFIG_COLUMNS)
    )
    hv.render(overlay, backend="bokeh")
    runs = overlay.get(0)
    assert len(runs) == 1
    assert runs.dframe()["Output_Token_Throughput"].iloc[0] == pytest.approx(
        state.filtered["Output_Token_Throughput"].iloc[0]
    )


def test_sweep_page_says_why_nothing_is_plotted_when_a_metric_is_missing():
    import holoviews.plotting.bokeh  # noqa: F401 - the backend the dashboard draws with

    from cfgexplorer.views.sweep import SweepView

    view = SweepView()
    view.state.add_uploads([(VLLM_RUN.name, VLLM_RUN.read_bytes())])
    assert view.state.y_metric == "Thpt_per_GPU"
    texts = [str(getattr(o, "object", "")) for o in view.__panel__().select(pn.pane.Alert)]
    assert any("None of the 1 runs has both Thpt_per_User and Thpt_per_GPU" in t for t in texts)
