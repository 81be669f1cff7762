"""SweepExplorer: the state of the sweep page (benchmark results, SLOs, Pareto fronts).

Results come from the bundled demo sweep, from files uploaded in the session,
or from a directory under a configured root (``CFGEXPLORER_SWEEP_ROOT``,
default the demo folder): the directory choices are the folders under that
root, so nothing outside it can be named. The table is built by
:mod:`cfgexplorer.benchmarks`; scenarios, SLO filters and fronts by
:mod:`cfgexplorer.explore`, exactly as ``cfgexplorer sweep`` does.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import param

from cfgexplorer import benchmarks, explore
from cfgexplorer.benchmarks.loader import MAX_FILE_BYTES
from cfgexplorer.errors import UserError
from cfgexplorer.models.base import PageState
from cfgexplorer.paths import data_dir

log = logging.getLogger(__name__)

ROOT_ENV = "CFGEXPLORER_SWEEP_ROOT"
MAX_DIRECTORIES = 500  # folders listed under the root; deeper trees are cut here
MAX_UPLOADS = 50  # files kept per session
FULL_SIZE_FILES_PER_UPLOAD = 4  # files at the size limit that one upload may carry
# Bytes; an upload reaches the server as one websocket message holding every file in
# base64 (4 bytes per 3), so the server must accept a message this large
# (`cfgexplorer serve --websocket-max-message-size`); the margin covers the message frame.
UPLOAD_MESSAGE_BYTES = FULL_SIZE_FILES_PER_UPLOAD * 4 * -(-MAX_FILE_BYTES // 3) + 10**7
ALL = "all"  # the scenario choice that keeps every run
SCENARIO_SEPARATOR = " | "
DEFAULT_SCENARIO = ["Model", "GPU", "ISL", "OSL"]
FILE_ROUTE = "sweep-files"  # URL prefix under which `cfgexplorer serve` exposes the root


def demo_dir() -> Path:
    """The bundled demo sweep."""
    return data_dir() / "benchmarks"


def sweep_root() -> Path:
    """The one directory whose folders the page may load (resolved)."""
    configured = os.environ.get(ROOT_ENV)
    return Path(configured).expanduser().resolve() if configured else demo_dir().resolve()


def list_directories(root: Path, limit: int = MAX_DIRECTORIES) -> list[str]:
    """Folders under ``root`` as relative POSIX paths ('.' first), symlinks not followed."""
    found = ["."]
    if not root.is_dir():
        return found
    for current, dirs, _files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        base = Path(current)
        for d in dirs:
            found.append((base / d).relative_to(root).as_posix())
            if len(found) >= limit:
                return found
    return found


def metric_columns() -> list[str]:
    """Columns with a better direction: the candidates for SLOs and Pareto axes."""
    return [c.name for c in benchmarks.COLUMNS if c.direction != "neutral"]


def scenario_label(values: Any) -> str:
    """One scenario's values as a stable label (used as the choice and in the URL)."""
    return SCENARIO_SEPARATOR.join("-" if pd.isna(v) else str(v) for v in values)


class SweepExplorer(PageState):
    """Benchmark runs grouped into scenarios, filtered by SLOs, with a Pareto front."""

    source = param.Selector(
        default="demo",
        objects=["demo", "directory", "upload"],
        doc="Where the runs come from: the bundled demo, a folder under the root, or uploads.",
    )
    directory = param.Selector(
        default=".",
        objects=["."],
        doc="Folder under the configured sweep root (relative path) when source is directory.",
    )
    preset = param.Selector(
        default="custom",
        objects=["custom"],
        doc="A named starting point that sets scenario columns, SLOs and Pareto metrics.",
    )
    scenario_columns = param.ListSelector(
        default=list(DEFAULT_SCENARIO),
        objects=list(benchmarks.COLUMN_NAMES),
        doc="Columns whose distinct values define a scenario.",
    )
    scenario = param.Selector(
        default=ALL,
        objects=[ALL],
        doc="The scenario to look at (values of the scenario columns), or all runs.",
    )
    slos = param.List(
        default=[],
        item_type=str,
        bounds=(0, 12),
        doc="SLOs such as P90_TTFT_ms<=2000; a run is kept when it meets all of them.",
    )
    x_metric = param.Selector(
        default="Thpt_per_User",
        objects=metric_columns(),
        doc="Pareto metric on the x axis (its better direction comes from the column table).",
    )
    y_metric = param.Selector(
        default="Thpt_per_GPU",
        objects=metric_columns(),
        doc="Pareto metric on the y axis.",
    )
    by = param.ListSelector(
        default=[],
        objects=list(benchmarks.COLUMN_NAMES),
        doc="Configuration columns; one Pareto front is drawn per group.",
    )

    # --- derived outputs ---------------------------------------------------------------
    table = param.DataFrame(
        default=None,
        allow_None=True,
        constant=True,
        precedence=-1,
        doc="Every run loaded from the current source (one row per run or stage).",
    )
    skipped = param.DataFrame(
        default=None,
        allow_None=True,
        constant=True,
        precedence=-1,
        doc="Files that were not loaded, with one reason each.",
    )
    scenario_table = param.DataFrame(
        default=None,
        allow_None=True,
        constant=True,
        precedence=-1,
        doc="Distinct scenarios of the table with their run counts.",
    )
    filtered = param.DataFrame(
        default=None,
        allow_None=True,
        constant=True,
        precedence=-1,
        doc="Runs of the chosen scenario that meet every SLO.",
    )
    front = param.DataFrame(
        default=None,
        allow_None=True,
        constant=True,
        precedence=-1,
        doc="Runs of 'filtered' on the Pareto front of the two metrics (per group).",
    )

    url_params: ClassVar[tuple[str, ...]] = (
        "source",
        "directory",
        "preset",
        "scenario_columns",
        "slos",
        "x_metric",
        "y_metric",
        "by",
        "scenario",
    )

    def __init__(self, **params: Any) -> None:
        self._uploads: list[benchmarks.LoadResult] = []
        self._problems: dict[str, str] = {}  # stage (load, group, filter) -> problem
        self._root = sweep_root()
        # Choices known only now (the root's folders, the presets file) are set first.
        late = {k: params.pop(k) for k in ("directory", "preset", "scenario") if k in params}
        super().__init__(**params)
        self.param.directory.objects = list_directories(self._root)
        self.param.preset.objects = list(explore.load_presets())
        self.param.update({k: v for k, v in late.items() if k != "scenario"})
        if "preset" in late:
            self._apply_preset(keep=set(params))  # explicit inputs win over the preset
        self.param.watch(self._apply_preset, ["preset"])
        self.param.watch(self._load, ["source", "directory"])
        self.param.watch(self._group, ["scenario_columns"])
        self.param.watch(self._filter, ["scenario", "slos", "x_metric", "y_metric", "by"])
        self._load()
        if "scenario" in late:
            self.scenario = late["scenario"]

    @property
    def root(self) -> Path:
        """The configured sweep root (directories may only come from under it)."""
        return self._root

    # --- actions --------------------------------------------------------------------
    def add_upload(self, filename: str, data: bytes) -> None:
        """Import one uploaded file and show the uploads (a bad file goes to ``skipped``)."""
        self.add_uploads([(filename, data)])

    def add_uploads(self, files: list[tuple[str, bytes]]) -> None:
        """Import the files of one upload, then show the uploads once.

        A file over the importers' size limit (``MAX_FILE_BYTES``) or one that
        cannot be read goes to ``skipped`` with its reason, and a note names it;
        the other files load.
        """
        results = [benchmarks.load_bytes(name, data) for name, data in files]
        self._uploads = [*self._uploads, *results][-MAX_UPLOADS:]
        for result in results:
            for label, reason in result.skipped:
                self.add_note(f"skipped {label}: {reason}")
        if self.source == "upload":
            self._load()
        else:
            self.source = "upload"

    def clear_uploads(self) -> None:
        """Forget the files uploaded in this session."""
        self._uploads = []
        if self.source == "upload":
            self._load()

    def parse_query_value(self, name: str, text: str) -> Any:
        """Like the base class; uploads are not part of a link and SLOs must parse."""
        if name == "source" and text == "upload":
            raise ValueError("names uploaded files, which a link cannot carry; upload them again")
        value = super().parse_query_value(name, text)
        if name == "slos":
            for item in value:
                try:
                    explore.SLO.parse(item)
                except UserError as exc:
                    raise ValueError(str(exc)) from None
        return value

    # --- derivation -------------------------------------------------------------------
    def _apply_preset(self, *_events: Any, keep: set[str] | None = None) -> None:
        preset = explore.load_presets().get(self.preset)
        if preset is None:
            return
        values = {
            "scenario_columns": list(preset.scenario),
            "slos": [str(s) for s in preset.slos],
            "x_metric": preset.pareto[0],
            "y_metric": preset.pareto[1],
            "by": list(preset.by),
        }
        self.param.update({k: v for k, v in values.items() if k not in (keep or set())})

    def _load_result(self) -> tuple[benchmarks.LoadResult, Path | None]:
        """Load the current source; returns the result and the folder paths are relative to."""
        if self.source == "upload":
            if not self._uploads:
                return benchmarks.LoadResult(benchmarks.empty_table()), None
            table = pd.concat([r.table for r in self._uploads], ignore_index=True)
            skipped = [s for r in self._uploads for s in r.skipped]
            loaded = [f for r in self._uploads for f in r.loaded]
            return benchmarks.LoadResult(table, skipped, loaded), None
        if self.source == "demo":
            folder = demo_dir()
            return benchmarks.load_paths([folder]), folder
        folder = (self._root / self.directory).resolve()
        if not folder.is_relative_to(self._root):  # '..' or a link out of the root
            raise UserError(f"{self.directory} is outside the sweep root; pick a listed folder")
        if not folder.is_dir():
            raise UserError(f"{self.directory} is no longer a folder under the sweep root")
        return benchmarks.load_paths([folder]), self._root

    def _load(self, *_events: Any) -> None:
        try:
            result, base = self._load_result()
        except UserError as exc:
            result, base = benchmarks.LoadResult(benchmarks.empty_table()), None
            self._problem("load", str(exc))
        else:
            self._problem("load", "")
        table = result.table.copy()
        table["Link"] = [_link(f, base, self._root) for f in table["File"]]
        # Server paths never leave the server: folders are shown as files are, relative.
        if "Directory" in table:
            table["Directory"] = [_relative_folder(f, base) for f in table["File"]]
        table["File"] = [_relative(f, base) for f in table["File"]]
        skipped = pd.DataFrame(
            [{"file": _relative(p, base), "reason": r} for p, r in result.skipped],
            columns=["file", "reason"],
        )
        log.info("sweep source %s: %d runs, %d skipped", self.source, len(table), len(skipped))
        with param.edit_constant(self):
            self.param.update(table=table, skipped=skipped)
        self._group()

    def _group(self, *_events: Any) -> None:
        table = self.table
        try:
            scen = explore.scenarios(table, list(self.scenario_columns))
            self._problem("group", "")
        except UserError as exc:
            self._problem("group", str(exc))
            scen = pd.DataFrame({"count": [len(table)]})
        if self.scenario_columns and len(scen.columns) > 1:
            labels = [scenario_label(row[:-1]) for row in scen.itertuples(index=False, name=None)]
        else:
            labels = []
        scen = scen.assign(scenario=labels) if labels else scen.assign(scenario=ALL)
        with param.edit_constant(self):
            self.scenario_table = scen
        choices = [ALL, *labels]
        self.param.scenario.objects = choices
        if self.scenario not in choices:
            if self.scenario != ALL and len(table):
                self.add_note(f"scenario {self.scenario!r} is not in these runs; showing all")
            self.scenario = ALL  # triggers _filter
        else:
            self._filter()

    def _selected(self) -> pd.DataFrame:
        table = self.table
        if self.scenario == ALL or not self.scenario_columns:
            return table
        labels = pd.Series(
            [
                scenario_label(r)
                for r in table[list(self.scenario_columns)].itertuples(index=False, name=None)
            ],
            index=table.index,
            dtype=object,
        )
        return table[labels == self.scenario]

    def _filter(self, *_events: Any) -> None:
        selected = self._selected()
        problems = []
        try:
            slos = [explore.SLO.parse(s) for s in self.slos]
            filtered = explore.meet_slos(selected, slos)
        except UserError as exc:
            problems.append(str(exc))
            filtered = selected
        try:
            front = explore.pareto_front(
                filtered, [self.x_metric, self.y_metric], by=list(self.by) or None
            )
        except UserError as exc:
            problems.append(str(exc))
            front = filtered.iloc[0:0]
        if not problems and len(filtered) and front.empty:
            problems.append(
                f"none of the {len(filtered)} runs has both {self.x_metric} and {self.y_metric}; "
                "pick other metrics (Thpt_per_GPU needs the GPU count of each run)"
            )
        with param.edit_constant(self):
            self.param.update(filtered=filtered, front=front)
        self._problem("filter", "; ".join(problems))

    def _problem(self, stage: str, text: str) -> None:
        """Record (or clear) the problem of one stage and show them all in ``message``."""
        self._problems[stage] = text
        self.message = "; ".join(t for t in self._problems.values() if t)

    def front_mask(self) -> pd.Series:
        """True for the rows of ``filtered`` that are on the front."""
        if self.filtered is None:
            return pd.Series(dtype=bool)
        return pd.Series(self.filtered.index.isin(self.front.index), index=self.filtered.index)


def _relative(path: Any, base: Path | None) -> str:
    """A file as the page shows it: relative to its folder, never a full server path."""
    text = "" if path is None or (isinstance(path, float) and pd.isna(path)) else str(path)
    if base is None or not text:
        return Path(text).name if text else ""
    try:
        return Path(text).resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return Path(text).name


def _relative_folder(path: Any, base: Path | None) -> str:
    """The folder of a file as the page shows it: relative to the source, '.' at its top."""
    shown = _relative(path, base)
    return Path(shown).parent.as_posix() if shown else ""


def _link(path: Any, base: Path | None, root: Path) -> str:
    """The URL of a result file under the root (served by `cfgexplorer serve`), or ''."""
    if base is None or path is None or (isinstance(path, float) and pd.isna(path)):
        return ""
    try:
        rel = Path(str(path)).resolve().relative_to(root)
    except ValueError:
        return ""
    return f"{FILE_ROUTE}/{rel.as_posix()}"
