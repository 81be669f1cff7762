"""The sweep page: load benchmark results, pick a scenario and SLOs, see the Pareto front."""

from __future__ import annotations

import logging
from typing import Any

import panel as pn
import param

from cfgexplorer.models import SweepExplorer
from cfgexplorer.models.sweep import ALL, FULL_SIZE_FILES_PER_UPLOAD, MAX_FILE_BYTES
from cfgexplorer.views import plots
from cfgexplorer.views.common import (
    CONTROL_WIDTH,
    Alert,
    Markdown,
    csv_download,
    guarded,
    json_download,
    message_alert,
    notes_alert,
    table_json,
)

log = logging.getLogger(__name__)

# Columns shown in hover and in the table next to the two metrics.
CONFIG_COLUMNS = [
    "Model",
    "GPU",
    "Num_GPUs",
    "TP",
    "Replicas",
    "Is_PD",
    "P_Replicas",
    "D_Replicas",
    "ISL",
    "OSL",
    "Max_Concurrency",
    "Max_QPS",
    "File",
    "Link",
]
TABLE_PAGE_SIZE = 10


class SweepView(pn.viewable.Viewer):
    """Sources, scenario and SLO inputs on the left; the Pareto plot and tables on the right."""

    state = param.ClassSelector(class_=SweepExplorer, doc="The explorer this page shows.")

    title = "Sweep"

    def __init__(self, state: SweepExplorer | None = None, **params: Any) -> None:
        super().__init__(state=state or SweepExplorer(), **params)
        self._layout = self._build()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    def _controls(self) -> pn.Column:
        s = self.state
        width = CONTROL_WIDTH - 20
        source = pn.widgets.RadioButtonGroup.from_param(s.param.source, width=width)
        directory = pn.widgets.Select.from_param(
            s.param.directory, name=f"Folder under {s.root.name}/", width=width
        )
        upload = pn.widgets.FileInput(
            accept=".json,.yaml,.yml", multiple=True, width=width, css_classes=["sweep-upload"]
        )

        def on_upload(event: Any) -> None:
            if event.new is None or event.new == []:  # the widget cleared after an upload
                return
            values = event.new if isinstance(event.new, list) else [event.new]
            names = upload.filename if isinstance(upload.filename, list) else [upload.filename]
            # Empty files are passed on too: the import skips each with its reason.
            # A value without a file name is the browser confirming the clear below, not a file.
            files = [
                (name, data if data is not None else b"")
                for name, data in zip(names, values, strict=False)
                if name
            ]
            if not files:
                return
            s.add_uploads(files)
            # The widget and its browser model still hold every file; let them go.
            upload.clear()

        upload.param.watch(guarded(on_upload, s), "value")
        clear = pn.widgets.Button(name="Forget uploads", width=width)
        clear.on_click(lambda _e: s.clear_uploads())

        slos = pn.widgets.TextInput(
            name="SLOs (comma separated)",
            value=", ".join(s.slos),
            placeholder="P90_TTFT_ms<=1000, Mean_TPOT_ms<=50",
            width=width,
        )

        def slos_from_text(event: Any) -> None:
            items = [t.strip() for t in event.new.split(",") if t.strip()]
            if items != list(s.slos):
                s.slos = items

        def slos_to_text(event: Any) -> None:
            text = ", ".join(event.new)
            if [t.strip() for t in slos.value.split(",") if t.strip()] != list(event.new):
                slos.value = text

        slos.param.watch(guarded(slos_from_text, s), "value")
        s.param.watch(slos_to_text, "slos")

        return pn.Column(
            "### Results",
            source,
            directory,
            Markdown(
                f"Upload result files (llm-d, vLLM, GuideLLM), up to "
                f"{MAX_FILE_BYTES // 10**6} MB each (larger files are skipped) and "
                f"about {FULL_SIZE_FILES_PER_UPLOAD * MAX_FILE_BYTES // 10**6} MB in one upload:",
                margin=(0, 10),
            ),
            upload,
            clear,
            "### Question",
            pn.widgets.Select.from_param(s.param.preset, name="Preset", width=width),
            pn.widgets.MultiChoice.from_param(
                s.param.scenario_columns, name="Scenario columns", width=width
            ),
            pn.widgets.Select.from_param(s.param.scenario, name="Scenario", width=width),
            slos,
            pn.widgets.Select.from_param(s.param.x_metric, name="x metric", width=width),
            pn.widgets.Select.from_param(s.param.y_metric, name="y metric", width=width),
            pn.widgets.MultiChoice.from_param(s.param.by, name="One front per", width=width),
            width=CONTROL_WIDTH,
        )

    def _build(self) -> pn.viewable.Viewable:
        s = self.state
        hover = list(CONFIG_COLUMNS)

        def plot(filtered: Any, front: Any, x: str, y: str, by: list[str]) -> Any:
            if filtered is None or filtered.empty:
                return Alert(
                    "No runs to plot: load results, or relax the scenario and SLOs.",
                    alert_type="info",
                )
            if filtered[[x, y]].dropna().empty:
                return Alert(
                    f"None of the {len(filtered)} runs has both {x} and {y}, so there is "
                    "nothing to plot; pick other metrics (Thpt_per_GPU needs each run's "
                    "GPU count).",
                    alert_type="info",
                )
            return pn.pane.HoloViews(
                plots.pareto_plot(filtered, front, x, y, list(by), hover),
                sizing_mode="stretch_width",
                css_classes=["pareto-plot"],
            )

        pareto = pn.panel(
            pn.bind(
                plot,
                s.param.filtered,
                s.param.front,
                s.param.x_metric,
                s.param.y_metric,
                s.param.by,
            ),
            loading_indicator=True,
            sizing_mode="stretch_width",
        )

        def summary(table: Any, skipped: Any, filtered: Any, front: Any) -> str:
            n_table = 0 if table is None else len(table)
            n_skip = 0 if skipped is None else len(skipped)
            n_filt = 0 if filtered is None else len(filtered)
            n_front = 0 if front is None else len(front)
            scen = "all runs" if s.scenario == ALL else f"scenario *{s.scenario}*"
            return (
                f"**{n_table} runs** loaded ({n_skip} files skipped); {scen}: "
                f"**{n_filt} meet the SLOs**, **{n_front} on the Pareto front**."
            )

        summary_pane = Markdown(
            pn.bind(summary, s.param.table, s.param.skipped, s.param.filtered, s.param.front),
            css_classes=["sweep-summary"],
            sizing_mode="stretch_width",
        )

        def columns(x: str, y: str) -> list[str]:
            return [x, y, *[c for c in CONFIG_COLUMNS if c != "Link"]]

        def runs_table(filtered: Any, x: str, y: str) -> Any:
            if filtered is None:
                return None
            cols = [c for c in columns(x, y) if c in filtered.columns]
            return filtered[list(dict.fromkeys(cols))]

        table = pn.widgets.Tabulator(
            pn.bind(runs_table, s.param.filtered, s.param.x_metric, s.param.y_metric),
            pagination="local",
            page_size=TABLE_PAGE_SIZE,
            disabled=True,
            show_index=False,
            sizing_mode="stretch_width",
        )
        scenarios = pn.widgets.Tabulator(
            s.param.scenario_table,
            disabled=True,
            show_index=False,
            sizing_mode="stretch_width",
            pagination="local",
            page_size=TABLE_PAGE_SIZE,
        )
        skipped = pn.widgets.Tabulator(
            s.param.skipped, disabled=True, show_index=False, sizing_mode="stretch_width"
        )
        downloads = pn.Row(
            csv_download(lambda: s.filtered, "sweep-runs.csv", "Runs (CSV)"),
            json_download(lambda: table_json(s.filtered), "sweep-runs.json", "Runs (JSON)"),
            csv_download(lambda: s.front, "sweep-front.csv", "Front (CSV)"),
            json_download(lambda: table_json(s.front), "sweep-front.json", "Front (JSON)"),
        )
        main = pn.Column(
            message_alert(s),
            notes_alert(s),
            summary_pane,
            pareto,
            Markdown(
                "Hover a point for its configuration; click it to open its result file.",
                styles={"color": "#666"},
            ),
            pn.Tabs(
                ("Runs meeting the SLOs", table),
                ("Scenarios", scenarios),
                ("Skipped files", skipped),
                sizing_mode="stretch_width",
            ),
            downloads,
            sizing_mode="stretch_width",
        )
        return pn.Row(self._controls(), main, sizing_mode="stretch_width")
