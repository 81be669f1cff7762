"""The capacity page: inputs of a vLLM deployment and the per-GPU memory they lead to."""

from __future__ import annotations

import logging
from typing import Any

import holoviews as hv
import panel as pn
import param

from cfgexplorer.models import CapacityPlanner
from cfgexplorer.models.capacity import catalog_ids
from cfgexplorer.views import plots
from cfgexplorer.views.common import (
    CONTROL_WIDTH,
    INPUT_WIDTH,
    Alert,
    Markdown,
    bounded_input,
    csv_download,
    guarded,
    json_download,
    message_alert,
    notes_alert,
)

log = logging.getLogger(__name__)

# Tokens; where the page's max_model_len starts (capped at the model's maximum) unless the
# link sets one. Full length is what vLLM would use, but it often does not fit on one GPU
# (Qwen3-32B on an H100), and a red first view explains less than a plan that fits.
PAGE_MAX_MODEL_LEN = 16384

DEPLOYMENT_INPUTS = [
    "gpu",
    "profile",
    "tp",
    "pp",
    "dp",
    "enable_expert_parallel",
    "max_model_len",
    "gpu_memory_utilization",
    "dtype",
    "quantization",
    "kv_cache_dtype",
    "block_size",
    "max_num_seqs",
    "max_num_batched_tokens",
]


# Label and widget options of each deployment input (numbers get bounded fields).
DEPLOYMENT_WIDGETS: dict[str, tuple[str, dict[str, Any]]] = {
    "gpu": ("GPU", {"css_classes": ["gpu-select"]}),
    "profile": ("Engine profile", {}),
    "tp": ("Tensor parallel (TP)", {"css_classes": ["tp-select"]}),
    "pp": ("Pipeline parallel (PP)", {}),
    "dp": ("Data parallel (DP)", {}),
    "enable_expert_parallel": ("Expert parallel", {}),
    "max_model_len": ("max_model_len (tokens)", {"css_classes": ["mml-input"]}),
    "gpu_memory_utilization": (
        "gpu_memory_utilization",
        {"type": pn.widgets.FloatSlider, "step": 0.01},
    ),
    "dtype": ("dtype", {}),
    "quantization": ("quantization", {}),
    "kv_cache_dtype": ("kv_cache_dtype", {}),
    "block_size": ("block_size", {}),
    "max_num_seqs": ("max_num_seqs (0 = default)", {}),
    "max_num_batched_tokens": ("max_num_batched_tokens (0 = default)", {}),
}


class CapacityView(pn.viewable.Viewer):
    """Model, GPU and engine inputs on the left; the budget, KV cache and verdict on the right."""

    state = param.ClassSelector(class_=CapacityPlanner, doc="The planner this page shows.")

    title = "Capacity"

    def __init__(self, state: CapacityPlanner | None = None, **params: Any) -> None:
        if state is None:
            state = CapacityPlanner(preferred_max_model_len=PAGE_MAX_MODEL_LEN)
        super().__init__(state=state, **params)
        self._layout = self._build()
        self.state.param.watch(self._refresh, ["plan", "smallest", "message"])
        self._refresh()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    # --- layout ------------------------------------------------------------------------
    def _controls(self) -> pn.Column:
        s = self.state
        model = pn.widgets.AutocompleteInput.from_param(
            s.param.model,
            options=catalog_ids(),
            restrict=False,
            case_sensitive=False,
            search_strategy="includes",
            min_characters=1,
            name="Model (catalog or Hub id)",
            placeholder="Qwen/Qwen3-32B",
            width=CONTROL_WIDTH - 20,
        )
        token = pn.widgets.PasswordInput.from_param(
            s.param.hf_token,
            name="Hugging Face token (gated models)",
            placeholder="hf_...",
            width=CONTROL_WIDTH - 20,
        )
        upload = pn.widgets.FileInput(
            accept=".json", multiple=False, width=CONTROL_WIDTH - 20, css_classes=["config-upload"]
        )

        def on_upload(event: Any) -> None:
            if event.new is not None:  # an empty file too: the state says why it is refused
                s.use_uploaded_config(upload.filename or "config.json", event.new)
                upload.clear()  # the same file chosen again is read again

        upload.param.watch(guarded(on_upload, s), "value")
        widgets = pn.Column(*[self._input(name) for name in DEPLOYMENT_INPUTS], margin=0)
        return pn.Column(
            "### Model",
            model,
            Markdown("or upload a `config.json`:", margin=(0, 10)),
            upload,
            token,
            "### Deployment",
            widgets,
            width=CONTROL_WIDTH,
            css_classes=["capacity-controls"],
        )

    def _input(self, name: str) -> pn.widgets.Widget:
        """The field of one deployment input: typed numbers get a bounded field."""
        label, options = DEPLOYMENT_WIDGETS[name]
        options = dict(options)
        widget = options.pop("type", None)
        p = self.state.param[name]
        if widget is None and isinstance(p, param.Number):
            return bounded_input(self.state, name, label, **options)
        if widget is None:
            widget = pn.widgets.Checkbox if isinstance(p, param.Boolean) else pn.widgets.Select
        return widget.from_param(p, name=label, width=INPUT_WIDTH, **options)

    def _build(self) -> pn.viewable.Viewable:
        s = self.state
        self._verdict = Alert("", alert_type="success", css_classes=["verdict"])
        self._summary = Markdown("", css_classes=["kv-summary"], sizing_mode="stretch_width")
        self._serve = pn.widgets.TextAreaInput(
            value="", rows=2, css_classes=["vllm-serve"], sizing_mode="stretch_width"
        )
        self._formulas = Markdown("", sizing_mode="stretch_width")
        self._notes = Markdown("", sizing_mode="stretch_width")

        budget = hv.DynamicMap(
            pn.bind(
                lambda _plan: plots.budget_bars(s.budget_segments(), s.budget_marks()),
                s.param.plan,
            )
        )
        curve = hv.DynamicMap(pn.bind(plots.concurrency_curve, s.param.curve))

        downloads = pn.Row(
            json_download(s.plan_json, "capacity-plan.json", "Plan (JSON)"),
            csv_download(s.summary_table, "capacity-budget.csv", "Budget (CSV)"),
            csv_download(lambda: s.curve, "concurrency-curve.csv", "Curve (CSV)"),
        )
        how = pn.Card(
            self._formulas,
            self._notes,
            title="How this is computed",
            collapsed=True,
            sizing_mode="stretch_width",
            css_classes=["how-computed"],
        )
        main = pn.Column(
            message_alert(s),
            notes_alert(s),
            self._verdict,
            self._summary,
            pn.pane.HoloViews(budget, sizing_mode="stretch_width", linked_axes=False),
            pn.pane.HoloViews(curve, sizing_mode="stretch_width", linked_axes=False),
            Markdown("#### The `vllm serve` line (select and copy)"),
            self._serve,
            how,
            downloads,
            sizing_mode="stretch_width",
        )
        return pn.Row(self._controls(), main, sizing_mode="stretch_width")

    # --- updates -----------------------------------------------------------------------
    def _refresh(self, *_events: Any) -> None:
        plan = self.state.plan
        if plan is None:
            self._verdict.visible = False
            self._summary.object = ""
            self._serve.value = ""
            self._formulas.object = ""
            self._notes.object = ""
            return
        d = plan.to_dict()
        kv, mem = d["kv_cache"], d["memory_gib"]
        if plan.fits:
            self._verdict.param.update(
                object=f"**Fits** on {plan.num_gpus} x {plan.gpu} "
                f"(largest term: {plan.dominant_term}).",
                alert_type="success",
                visible=True,
            )
        else:
            reasons = "\n".join(f"- {p}" for p in plan.problems)
            self._verdict.param.update(
                object=f"**Does not fit** on {plan.num_gpus} x {plan.gpu}:\n\n{reasons}",
                alert_type="danger",
                visible=True,
            )
        smallest = self.state.smallest
        if smallest is not None:
            sd = smallest.deployment
            small = f"TP {sd.tp} x PP {sd.pp} = **{sd.tp * sd.pp} x {plan.gpu}**"
        else:
            small = "none up to 64 GPUs"
        fits_len = d["max_model_len_that_fits"]
        rows = [
            ("GPU KV cache size", f"**{kv['tokens']:,} tokens** ({kv['blocks']:,} blocks)"),
            (
                f"Maximum concurrency for {plan.max_model_len:,} tokens per request",
                f"**{kv['max_concurrency']:.2f}x**"
                + (
                    f" ({kv['max_concurrency_all_replicas']:.2f}x over DP)"
                    if plan.deployment.dp > 1
                    else ""
                ),
            ),
            ("Available KV cache memory", f"{mem['kv_pool']:.2f} GiB per GPU"),
            ("Model weights per GPU", f"{mem['weights']:.2f} GiB"),
            ("KV bytes per token per GPU", f"{kv['bytes_per_token']:,} B ({kv['dtype']})"),
            ("Largest max_model_len that fits", f"{fits_len:,}" if fits_len else "none"),
            ("Model's maximum length", f"{self.state.spec.max_position_embeddings:,} tokens"),
            ("Smallest deployment for one request", small),
        ]
        table = "| | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
        self._summary.object = table
        self._serve.value = d["vllm_serve"]
        formulas = "\n".join(f"- `{line}`" for line in self.state.formulas())
        constants = "\n".join(
            f"- `{k}` = {v['value']:g} — {v['source']}"
            for k, v in plan.profile.to_dict()["constants"].items()
        )
        self._formulas.object = (
            f"**Formulas** (engine profile {plan.profile.name}, vLLM "
            f"{plan.profile.vllm_version}):\n\n{formulas}\n\n**Constants**:\n\n{constants}"
        )
        self._notes.object = "**Notes**:\n\n" + "\n".join(f"- {n}" for n in d["notes"])
