"""The recommend page: workload and SLOs in, GPUs ranked by throughput under the SLOs out."""

from __future__ import annotations

import json
import logging
from typing import Any

import panel as pn
import param

from cfgexplorer.models import GPURecommender
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
    table_json,
)

log = logging.getLogger(__name__)

# Typed numbers of the workload: label of each (bounded fields, see common.bounded_input).
NUMBER_INPUTS = {
    "input_len": "Input tokens",
    "output_len": "Output tokens",
    "max_gpus": "Max GPUs per deployment",
    "max_ttft_ms": "TTFT SLO (ms, 0 = none)",
    "max_itl_ms": "ITL SLO (ms, 0 = none)",
    "max_e2e_s": "E2E SLO (s, 0 = none)",
    "target_rps": "Target requests/s (0 = none)",
}
# Choices, labelled as vLLM spells the flag where there is one.
CHOICE_INPUTS = {
    "quantization": "quantization",
    "kv_cache_dtype": "kv_cache_dtype",
    "engine": "Serving engine",
    "arrivals": "Request arrivals",
}


class RecommendView(pn.viewable.Viewer):
    """Inputs on the left; ranked GPUs, curves, costs and exclusions on the right."""

    state = param.ClassSelector(class_=GPURecommender, doc="The recommender this page shows.")

    title = "Recommend"

    def __init__(self, state: GPURecommender | None = None, **params: Any) -> None:
        super().__init__(state=state or GPURecommender(), **params)
        self._layout = self._build()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    def _controls(self) -> pn.Column:
        s = self.state
        width = CONTROL_WIDTH - 20
        model = pn.widgets.AutocompleteInput.from_param(
            s.param.model,
            options=catalog_ids(),
            restrict=False,
            case_sensitive=False,
            search_strategy="includes",
            min_characters=1,
            name="Model (catalog or Hub id)",
            width=width,
        )
        token = pn.widgets.PasswordInput.from_param(
            s.param.hf_token, name="Hugging Face token (gated models)", width=width
        )
        costs = pn.widgets.TextInput(
            name="Your costs, USD per GPU-hour",
            value=", ".join(s.custom_costs),
            placeholder="H100:2.5, A100:1.4",
            description="GPU:COST pairs, comma separated; they replace the reference prices.",
            width=width,
            css_classes=["custom-costs"],
        )

        def costs_from_text(event: Any) -> None:
            items = [t.strip() for t in event.new.split(",") if t.strip()]
            if items != list(s.custom_costs):
                s.custom_costs = items

        def costs_to_text(event: Any) -> None:
            if [t.strip() for t in costs.value.split(",") if t.strip()] != list(event.new):
                costs.value = ", ".join(event.new)

        costs.param.watch(guarded(costs_from_text, s), "value")
        s.param.watch(costs_to_text, "custom_costs")
        costs_alert = Alert(
            s.costs_message,
            alert_type="danger",
            visible=bool(s.costs_message),
            width=width,
            css_classes=["costs-message"],
        )
        s.param.watch(
            lambda e: costs_alert.param.update(object=e.new, visible=bool(e.new)),
            "costs_message",
        )
        numbers = [bounded_input(s, name, label) for name, label in NUMBER_INPUTS.items()]
        choices = [
            pn.widgets.Select.from_param(s.param[name], name=label, width=INPUT_WIDTH)
            for name, label in CHOICE_INPUTS.items()
        ]
        gpu_list = pn.widgets.MultiChoice.from_param(
            s.param.gpu_list, name="GPU types (empty = all)", width=width
        )
        return pn.Column(
            "### Workload",
            model,
            token,
            *numbers,
            *choices,
            "### GPUs and costs",
            gpu_list,
            costs,
            costs_alert,
            width=CONTROL_WIDTH,
        )

    def _build(self) -> pn.viewable.Viewable:
        s = self.state

        def best(rec: Any) -> str:
            if rec is None:
                return ""
            winners = rec.best()
            lines = []
            for key, item in winners.items():
                if item:
                    lines.append(
                        f"| {key.replace('_', ' ')} | **{item['gpu']}** x{item['num_gpus']} "
                        f"(TP {item['tp']}) | {item['metric']} = {item['value']} |"
                    )
            return "| criterion | deployment | value |\n|---|---|---|\n" + "\n".join(lines)

        def provenance(rec: Any) -> str:
            if rec is None:
                return ""
            prov = s.provenance()
            return (
                f"**Estimates**: {prov.get('kind', '')}, {prov.get('model', '')} "
                f"({prov.get('model_version', '')}); calibration: {prov.get('calibration', '')}; "
                f"error band: {prov.get('error_band', '')}.\n\n"
                + "\n".join(f"- {n}" for n in rec.notes)
            )

        def curve_plots(curves: Any, ranked: Any, itl_slo: float, ttft_slo: float) -> Any:
            if curves is None or ranked is None or ranked.empty:
                return Alert("No GPU can serve this workload.", alert_type="info")
            top = list(ranked["gpu"].head(plots.TOP_GPUS))
            return pn.Column(
                pn.pane.HoloViews(
                    plots.throughput_vs_latency(curves, top, itl_slo or None),
                    sizing_mode="stretch_width",
                ),
                pn.pane.HoloViews(
                    plots.throughput_vs_latency(curves, top, ttft_slo or None, "ttft_ms"),
                    sizing_mode="stretch_width",
                ),
                pn.pane.HoloViews(
                    plots.throughput_vs_concurrency(curves, top), sizing_mode="stretch_width"
                ),
                pn.pane.HoloViews(plots.cost_bars(ranked), sizing_mode="stretch_width"),
                sizing_mode="stretch_width",
            )

        ranked = pn.widgets.Tabulator(
            s.param.ranked,
            disabled=True,
            show_index=False,
            pagination="local",
            page_size=10,
            sizing_mode="stretch_width",
        )
        excluded = pn.widgets.Tabulator(
            s.param.excluded, disabled=True, show_index=False, sizing_mode="stretch_width"
        )
        downloads = pn.Row(
            csv_download(lambda: s.ranked, "recommend-ranked.csv", "Ranking (CSV)"),
            json_download(lambda: table_json(s.ranked), "recommend-ranked.json", "Ranking (JSON)"),
            json_download(
                lambda: (
                    json.dumps(s.recommendation.to_dict(), indent=1, default=str)
                    if s.recommendation is not None
                    else "{}"
                ),
                "recommendation.json",
                "Full result (JSON)",
            ),
        )
        main = pn.Column(
            message_alert(s),
            notes_alert(s),
            Markdown(pn.bind(best, s.param.recommendation), css_classes=["recommend-page"]),
            pn.Tabs(
                ("Ranked GPUs", ranked),
                ("Excluded GPUs", excluded),
                sizing_mode="stretch_width",
            ),
            pn.panel(
                pn.bind(
                    curve_plots,
                    s.param.curves,
                    s.param.ranked,
                    s.param.max_itl_ms,
                    s.param.max_ttft_ms,
                ),
                loading_indicator=True,
                sizing_mode="stretch_width",
            ),
            Markdown(pn.bind(provenance, s.param.recommendation)),
            downloads,
            sizing_mode="stretch_width",
        )
        return pn.Row(self._controls(), main, sizing_mode="stretch_width")
