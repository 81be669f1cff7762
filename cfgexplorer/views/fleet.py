"""The fleet page: an editable model table and inventory in; servers, power and purchases out."""

from __future__ import annotations

import io
import logging
from typing import Any

import pandas as pd
import panel as pn
import param
from bokeh.models.widgets.tables import IntEditor, NumberEditor

from cfgexplorer.models import FleetPlanner
from cfgexplorer.models.fleet import DEFAULT_ROW, FLEET_NAME_MAX_CHARS
from cfgexplorer.views import plots
from cfgexplorer.views.common import (
    CONTROL_WIDTH,
    Alert,
    Markdown,
    bounded_input,
    csv_download,
    json_download,
    message_alert,
    notes_alert,
)

log = logging.getLogger(__name__)

# Labels and units of the infrastructure inputs (number inputs, not sliders: the ranges
# are wide and the values are typed from a quote or a datasheet).
# They are bounded fields: a value beyond a bound is brought to it, with a note.
INFRA_WIDGETS = {
    "pue": "PUE (facility / IT power)",
    "power_budget_kw": "Power budget (kW, 0 = none)",
    "rack_slots": "Rack slots (servers, 0 = no limit)",
    "server_power_kw": "Non-GPU power per server (kW)",
    "electricity_price_per_kwh": "Electricity price",
}
GPU_TYPE_TITLES = {
    "gpu": "GPU type",
    "gpus_per_server": "GPUs per server",
    "gpu_price": "GPU price",
    "server_price": "Server price (no GPUs)",
}


class FleetView(pn.viewable.Viewer):
    """Model table, inventory and infrastructure; procurement, power and a server drawing."""

    state = param.ClassSelector(class_=FleetPlanner, doc="The fleet planner this page shows.")

    title = "Fleet"

    def __init__(self, state: FleetPlanner | None = None, **params: Any) -> None:
        super().__init__(state=state or FleetPlanner(), **params)
        self._layout = self._build()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    def _build(self) -> pn.viewable.Viewable:
        s = self.state
        models = pn.widgets.Tabulator.from_param(
            s.param.models, show_index=False, sizing_mode="stretch_width", height=290
        )
        add = pn.widgets.Button(name="Add a model", width=140)
        remove = pn.widgets.Button(name="Remove selected", width=140)

        def add_row(_event: Any) -> None:
            s.add_model_row()

        def remove_rows(_event: Any) -> None:
            if models.selection and len(s.models) > len(models.selection):
                s.models = s.models.drop(index=s.models.index[models.selection]).reset_index(
                    drop=True
                )

        add.on_click(add_row)
        remove.on_click(remove_rows)
        inventory = pn.widgets.Tabulator.from_param(
            s.param.inventory, show_index=False, width=CONTROL_WIDTH - 20, height=140
        )
        add_gpu = pn.widgets.Button(name="Add owned GPUs", width=CONTROL_WIDTH - 20)

        def add_inventory(_event: Any) -> None:
            row = pd.DataFrame([{"gpu": "H100", "count": 0}])
            s.inventory = pd.concat([s.inventory, row], ignore_index=True)

        add_gpu.on_click(add_inventory)
        width = CONTROL_WIDTH - 20
        infra = []
        for name, label in INFRA_WIDGETS.items():
            infra.append(bounded_input(s, name, label, width=width))
        currency = pn.widgets.Select.from_param(s.param.currency, name="Currency", width=width)
        electricity = infra[-1]

        def electricity_label(*_events: Any) -> None:
            electricity.label = f"Electricity price ({s.currency}/kWh)"

        s.param.watch(electricity_label, ["currency"])
        electricity_label()
        fleet_name = pn.widgets.TextInput.from_param(
            s.param.fleet_name, name="Fleet name", width=width, max_length=FLEET_NAME_MAX_CHARS
        )
        controls = pn.Column(
            "### GPUs owned",
            inventory,
            add_gpu,
            "### Infrastructure",
            fleet_name,
            *infra,
            currency,
            width=CONTROL_WIDTH,
            css_classes=["fleet-controls"],
        )

        gpu_types = pn.widgets.Tabulator.from_param(
            s.param.gpu_types,
            name="GPU types",
            show_index=False,
            titles=GPU_TYPE_TITLES,
            editors={
                "gpus_per_server": IntEditor(),
                "gpu_price": NumberEditor(),
                "server_price": NumberEditor(),
            },
            sizing_mode="stretch_width",
            css_classes=["gpu-types"],
        )
        add_type = pn.widgets.Button(name="Add a GPU type", width=140)
        remove_type = pn.widgets.Button(name="Remove selected", width=140)

        def add_type_row(_event: Any) -> None:
            listed = {str(g).strip() for g in s.gpu_types["gpu"]}
            used = [str(g) for g in s.models["gpu"] if g is not None and str(g) not in listed]
            row = pd.DataFrame([{"gpu": used[0] if used else "H100"}])
            s.gpu_types = pd.concat([s.gpu_types, row], ignore_index=True).astype(object)

        def remove_type_rows(_event: Any) -> None:
            keep = [
                i
                for i in range(len(s.gpu_types))
                if i not in gpu_types.selection or s.gpu_types.iloc[i]["gpu"] == DEFAULT_ROW
            ]
            if len(keep) < len(s.gpu_types):
                s.gpu_types = s.gpu_types.iloc[keep].reset_index(drop=True)

        add_type.on_click(add_type_row)
        remove_type.on_click(remove_type_rows)

        def totals(plan: Any) -> str:
            if plan is None:
                return ""
            t = plan.totals.to_dict()
            cur = t.get("currency", "")
            rows = [
                (
                    "GPUs needed / owned used / to buy",
                    f"**{t['gpus_needed']}** / {t['gpus_owned_used']} / **{t['gpus_to_buy']}**",
                ),
                ("Servers (lower bound)", f"**{t['servers']}** ({t['servers_lower_bound']})"),
                (
                    "IT power / facility power (PUE)",
                    f"{t['it_power_kw']} kW / **{t['facility_power_kw']} kW** ({t['pue']})",
                ),
                (
                    "Annual energy",
                    f"{t['annual_energy_kwh']:,} kWh, {_money(t['annual_energy_cost'], cur)}",
                ),
                ("Capital cost", _money(t["capital_cost"], cur)),
                (
                    "Power / rack headroom",
                    f"{_or_none(t['power_headroom_kw'], 'kW', 'no power budget')} / "
                    f"{_or_none(t['rack_slots_headroom'], 'servers', 'no rack limit')}",
                ),
            ]
            return "| | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)

        def warnings(plan: Any) -> Any:
            if plan is None or not (plan.warnings or plan.errors):
                return None
            items = [*plan.errors, *plan.warnings]
            text = "\n".join(f"- {w.get('message', w)}" for w in items)
            return Alert(text, alert_type="warning")

        def drawing(plan: Any) -> Any:
            frame = s.layout_frame()
            if frame.empty:
                return Alert("No server to draw.", alert_type="info")
            return pn.pane.HoloViews(plots.server_layout(frame), sizing_mode="stretch_width")

        def table(name: str):
            return pn.widgets.Tabulator(
                pn.bind(lambda _plan: s.tables()[name], s.param.plan),
                disabled=True,
                show_index=False,
                sizing_mode="stretch_width",
                pagination="local",
                page_size=10,
            )

        def summary_download() -> io.StringIO:
            return io.StringIO(s.summary_text())

        downloads = pn.FlexBox(
            csv_download(
                lambda: s.tables()["procurement"], "fleet-procurement.csv", "Procurement (CSV)"
            ),
            csv_download(lambda: s.tables()["models"], "fleet-models.csv", "Models (CSV)"),
            csv_download(lambda: s.tables()["servers"], "fleet-servers.csv", "Servers (CSV)"),
            pn.widgets.FileDownload(
                callback=summary_download,
                filename="fleet-summary.txt",
                label="Summary (text)",
                width=180,
            ),
            json_download(s.plan_json, "fleet-plan.json", "Plan (JSON)"),
        )
        main = pn.Column(
            message_alert(s),
            notes_alert(s),
            Markdown("### Models (edit the cells)", css_classes=["fleet-page"]),
            models,
            pn.Row(add, remove),
            Markdown(
                "### Servers and prices per GPU type\n"
                "The *default* row applies to every GPU type without its own row; "
                "an empty cell uses the default row (empty there too: 8 GPUs per server, "
                "no price).",
                sizing_mode="stretch_width",
            ),
            gpu_types,
            pn.Row(add_type, remove_type),
            pn.panel(pn.bind(warnings, s.param.plan)),
            Markdown(pn.bind(totals, s.param.plan), css_classes=["fleet-totals"]),
            pn.panel(pn.bind(drawing, s.param.plan), loading_indicator=True),
            pn.Tabs(
                ("Procurement", table("procurement")),
                ("Per model", table("models")),
                ("Servers", table("servers")),
                (
                    "Summary for finance",
                    Markdown(
                        pn.bind(lambda _p: f"```\n{s.summary_text()}\n```", s.param.plan),
                        sizing_mode="stretch_width",
                    ),
                ),
                sizing_mode="stretch_width",
            ),
            downloads,
            sizing_mode="stretch_width",
        )
        return pn.Row(controls, main, sizing_mode="stretch_width")


def _money(value: Any, currency: str) -> str:
    """An amount with thousands separators, or 'unknown' when there is no price."""
    if value is None:
        return "unknown (no price given)"
    return f"{value:,.0f} {currency}"


def _or_none(value: Any, unit: str, missing: str) -> str:
    """A headroom with its unit, or what its absence means."""
    return missing if value is None else f"{value} {unit}"
