"""The fleet page: an editable model table and inventory in; servers, power and purchases out."""

from __future__ import annotations

import io
import logging
from typing import Any

import pandas as pd
import panel as pn
import param

from cfgexplorer.models import FleetPlanner
from cfgexplorer.views import plots
from cfgexplorer.views.common import (
    CONTROL_WIDTH,
    Alert,
    Markdown,
    csv_download,
    json_download,
    message_alert,
    notes_alert,
)

log = logging.getLogger(__name__)

INFRA_INPUTS = [
    "gpus_per_server",
    "pue",
    "power_budget_kw",
    "rack_slots",
    "server_power_kw",
    "electricity_price_per_kwh",
    "gpu_price",
    "server_price",
    "currency",
]


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
            s.param.models, show_index=False, sizing_mode="stretch_width", height=230
        )
        add = pn.widgets.Button(name="Add a model", width=140)
        remove = pn.widgets.Button(name="Remove selected", width=140)

        def add_row(_event: Any) -> None:
            last = s.models.iloc[[-1]].copy()
            s.models = pd.concat([s.models, last], ignore_index=True)

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
        add_gpu = pn.widgets.Button(name="Add a GPU type", width=CONTROL_WIDTH - 20)

        def add_inventory(_event: Any) -> None:
            row = pd.DataFrame([{"gpu": "H100", "count": 0}])
            s.inventory = pd.concat([s.inventory, row], ignore_index=True)

        add_gpu.on_click(add_inventory)
        infra = pn.Param(
            s.param, parameters=INFRA_INPUTS, show_name=False, width=CONTROL_WIDTH - 10
        )
        controls = pn.Column(
            "### GPUs owned", inventory, add_gpu, "### Infrastructure", infra, width=CONTROL_WIDTH
        )

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
                    f"{t['annual_energy_kwh']:,} kWh, {t['annual_energy_cost']} {cur}",
                ),
                ("Capital cost", f"{t['capital_cost']} {cur}"),
                (
                    "Power / rack headroom",
                    f"{t['power_headroom_kw']} kW / {t['rack_slots_headroom']} servers",
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

        downloads = pn.Row(
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
