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


def fields(view) -> dict:
    """The page's widgets by label."""
    return {w.label: w for w in view.__panel__().select(pn.widgets.Widget) if w.label}


def test_typed_numbers_beyond_their_bounds_are_clamped_with_a_note():
    from cfgexplorer.views.capacity import CapacityView

    view = CapacityView()
    state, inputs = view.state, fields(view)
    mml, pp = inputs["max_model_len (tokens)"], inputs["Pipeline parallel (PP)"]
    assert (mml.start, mml.end) == (1, 40960)  # Qwen3-32B's maximum

    pp.value = -3
    mml.value = 50000

    assert (pp.value, state.pp) == (1, 1)
    assert (mml.value, state.max_model_len) == (40960, 40960)
    assert state.notes == [
        "Pipeline parallel (PP) -3 is below 1; using 1",
        "max_model_len (tokens) 50000 is above 40960 (Qwen/Qwen3-32B's maximum); using 40960",
    ]
    assert state.plan.max_model_len == 40960
    state.model = "meta-llama/Llama-3.1-8B-Instruct"
    assert mml.end == 131072  # the bound follows the model
    assert "131,072" in mml.description


def test_recommend_and_fleet_numbers_are_clamped_with_a_note():
    from cfgexplorer.views.fleet import FleetView
    from cfgexplorer.views.recommend import RecommendView

    fleet = FleetView()
    inputs = fields(fleet)
    inputs["PUE (facility / IT power)"].value = 0.5
    inputs["Rack slots (servers, 0 = no limit)"].value = -3
    price = next(w for label, w in inputs.items() if label.startswith("Electricity price"))
    price.value = -0.1
    s = fleet.state
    assert (s.pue, s.rack_slots, s.electricity_price_per_kwh) == (1.0, 0, 0.0)
    assert inputs["PUE (facility / IT power)"].value == 1.0
    assert s.notes == [
        "PUE (facility / IT power) 0.5 is below 1; using 1",
        "Rack slots (servers, 0 = no limit) -3 is below 0; using 0",
        "Electricity price -0.1 is below 0; using 0",
    ]

    recommend = RecommendView()
    inputs = fields(recommend)
    inputs["Input tokens"].value = -10
    inputs["Output tokens"].value = 0
    r = recommend.state
    assert (r.input_len, r.output_len) == (1, 1)
    assert inputs["Output tokens"].value == 1
    assert r.notes == [
        "Input tokens -10 is below 1; using 1",
        "Output tokens 0 is below 1; using 1",
    ]


def test_no_field_shows_an_auto_generated_label():
    from cfgexplorer.views.capacity import CapacityView
    from cfgexplorer.views.fleet import FleetView
    from cfgexplorer.views.recommend import RecommendView
    from cfgexplorer.views.sweep import SweepView

    chosen = {"Scenario columns", "Fleet name"}  # written out by the pages, same words by chance
    for view in (CapacityView(), RecommendView(), SweepView(), FleetView()):
        auto = {
            p.label for name, p in view.state.param.objects().items() if "_" in name and p.label
        }
        labels = set(fields(view)) - chosen
        assert not labels & auto, (type(view).__name__, labels & auto)
    assert "kv_cache_dtype" in fields(RecommendView())


def test_custom_costs_from_a_link_fill_the_costs_field():
    dashboard = Dashboard(query={"page": "recommend", "custom_costs": "H100:2.5,A100:1.4"})

    costs = fields(dashboard.view("recommend"))["Your costs, USD per GPU-hour"]

    assert dashboard.state().custom_costs == ["H100:2.5", "A100:1.4"]
    assert costs.value == "H100:2.5, A100:1.4"


def test_bad_custom_cost_is_explained_beside_the_field_in_page_words():
    from cfgexplorer.views.recommend import RecommendView

    view = RecommendView()
    fields(view)["Your costs, USD per GPU-hour"].value = "H999:2"
    alerts = [a for a in view.__panel__().select(pn.pane.Alert) if "costs-message" in a.css_classes]

    assert len(alerts) == 1
    assert alerts[0].visible
    text = alerts[0].object
    assert "'H999'" in text
    assert "GPU types list" in text
    assert "cfgexplorer" not in text
    assert "--gpu-memory" not in text
    assert "Your costs" in view.state.message


def test_access_log_hides_tokens_in_links():
    import logging

    from cfgexplorer.app import install_log_redaction

    install_log_redaction()
    install_log_redaction()  # once is enough; twice adds nothing
    logger = logging.getLogger("tornado.access")
    assert sum(type(f).__name__ == "RedactQuerySecrets" for f in logger.filters) == 1
    record = logger.makeRecord(
        "tornado.access",
        logging.INFO,
        __file__,
        1,
        "%d %s %.2fms",
        (200, "GET /app?page=capacity&hf_token=hf_secret1&token=secret2&tp=2 (127.0.0.1)", 3.0),
        None,
    )

    assert logger.filter(record)
    message = record.getMessage()
    assert "secret" not in message
    assert "hf_token=[redacted]&token=[redacted]&tp=2" in message


def test_serve_installs_the_token_filter_before_the_server_starts(monkeypatch):
    import logging

    import panel.command

    from cfgexplorer.commands import serve

    logger = logging.getLogger("tornado.access")
    monkeypatch.setattr(logger, "filters", [])
    seen = []
    monkeypatch.setattr(panel.command, "main", lambda: seen.append(list(logger.filters)) or 0)
    monkeypatch.setattr("sys.argv", ["cfgexplorer"])
    args = argparse.Namespace(
        port=5006, address="127.0.0.1", num_procs=1, allow_websocket_origin=[], show=False
    )

    assert serve.run(args) == 0
    assert [type(f).__name__ for f in seen[0]] == ["RedactQuerySecrets"]


def test_budget_bar_marks_the_device_when_weights_overflow_it():
    import holoviews as hv
    import holoviews.plotting.bokeh  # the backend the dashboard draws with
    from bokeh.models import Span

    from cfgexplorer.models import CapacityPlanner

    state = CapacityPlanner(model="meta-llama/Llama-3.1-70B", gpu="L4")
    marks = state.budget_marks()
    assert not state.plan.fits
    assert state.budget_segments()["end"].max() > 5 * marks["device_total"]

    figure = hv.render(plots.budget_bars(state.budget_segments(), marks), backend="bokeh")

    spans = sorted(r.location for r in figure.renderers if isinstance(r, Span))
    assert spans == sorted([marks["device_total"], marks["budget"]])


def test_empty_config_upload_on_capacity_says_why():
    from cfgexplorer.views.capacity import CapacityView

    view = CapacityView()
    upload = next(w for w in view.__panel__().select(pn.widgets.FileInput))

    upload.param.update(filename="config.json", value=b"")

    assert view.state.message == "config.json is empty; upload the model's config.json"


def test_empty_file_in_a_sweep_upload_is_listed_as_skipped():
    from cfgexplorer.views.sweep import SweepView

    view = SweepView()
    upload = next(w for w in view.__panel__().select(pn.widgets.FileInput))

    upload.param.update(filename=[VLLM_RUN.name, "empty.json"], value=[VLLM_RUN.read_bytes(), b""])

    state = view.state
    assert len(state.table) == 1
    assert list(state.skipped["file"]) == ["empty.json"]
    assert any(n.startswith("skipped empty.json: ") for n in state.notes)


def test_sweep_upload_then_clear_adds_no_phantom_skipped_file():
    import holoviews.plotting.bokeh  # noqa: F401 - the backend the dashboard draws with

    from cfgexplorer.views.sweep import SweepView

    view = SweepView()
    upload = next(iter(view.__panel__().select(pn.widgets.FileInput)))
    upload.filename = VLLM_RUN.name
    upload.value = VLLM_RUN.read_bytes()  # the page clears the widget after reading it
    state = view.state
    assert len(state.filtered) == 1
    assert state.skipped.empty
    assert not any("upload.json" in n for n in state.notes)
    # What the browser sends back once the widget is cleared: no file name, no bytes.
    upload.param.update(filename="", value=b"")
    upload.param.update(filename=None, value=None)
    assert state.skipped.empty
    assert len(state.filtered) == 1


def test_fleet_name_field_stops_at_the_length_the_state_accepts():
    import holoviews.plotting.bokeh  # noqa: F401 - the backend the dashboard draws with

    from cfgexplorer.models.fleet import FLEET_NAME_MAX_CHARS
    from cfgexplorer.views.fleet import FleetView

    view = FleetView()
    field = next(w for w in view.__panel__().select(pn.widgets.TextInput) if w.name == "Fleet name")
    assert field.max_length == FLEET_NAME_MAX_CHARS == 80
    view.state.fleet_name = "x" * 80  # the longest accepted name
    with pytest.raises(ValueError, match="does not match regex"):
        view.state.fleet_name = "x" * 81


def test_recommend_page_draws_the_ttft_slo_beside_the_itl_slo():
    import holoviews as hv
    import holoviews.plotting.bokeh  # the backend the dashboard draws with

    from cfgexplorer.models import GPURecommender
    from cfgexplorer.views.recommend import RecommendView

    view = RecommendView(GPURecommender(max_ttft_ms=500.0, max_itl_ms=30.0))
    overlays = [
        p.object for p in view.__panel__().select(pn.pane.HoloViews) if p.object is not None
    ]
    lines = {
        o.opts.get().kwargs.get("title", "").split(" (")[0]: [
            e.data for e in o if isinstance(e, hv.VLine)
        ]
        for o in overlays
        if isinstance(o, hv.Overlay)
    }
    assert lines["Throughput vs ITL"] == [30.0]
    assert lines["Throughput vs TTFT"] == [500.0]
