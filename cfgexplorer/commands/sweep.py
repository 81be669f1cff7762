"""``cfgexplorer sweep``: load benchmark results, group scenarios, apply SLOs, find Pareto fronts.

JSON on stdout (keys: ``loaded``, ``scenario_columns``, ``scenarios``, ``slos``,
``meeting_slos``, ``pareto``, ``output``); ``--output`` writes the loaded table
(only the rows meeting the SLOs when SLOs are given) as CSV, JSON (a list of
row objects) or Parquet. In JSON, a missing value is ``null`` and an infinite
one (an unlimited rate or concurrency) is the string ``"inf"``.
"""

from __future__ import annotations

import argparse
import io
import math
import sys
from pathlib import Path
from typing import Any

# Number of files from which a progress bar is worth drawing (assumption: below this a
# load takes well under a second).
PROGRESS_MIN_FILES = 50

DEFAULT_SCENARIO = ("Model", "GPU", "ISL", "OSL")
DEFAULT_PARETO = ("Thpt_per_User", "Thpt_per_GPU")

# Columns shown next to the Pareto metrics for each front row.
_FRONT_COLUMNS = (
    "File",
    "Model",
    "GPU",
    "Num_GPUs",
    "Is_PD",
    "TP",
    "Replicas",
    "P_Replicas",
    "D_Replicas",
    "ISL",
    "OSL",
    "Max_QPS",
    "Max_Concurrency",
)


def register(subparsers: Any) -> None:
    """Add the ``sweep`` subcommand."""
    from cfgexplorer.cli import add_common_output_args

    parser = subparsers.add_parser(
        "sweep",
        help="explore benchmark results: scenarios, SLOs, Pareto fronts",
        description=(
            "Load llm-d benchmark reports (v0.1, v0.2, v0.2.1), vLLM bench, GuideLLM and "
            "inference-perf results from files or directories; show scenarios, the runs "
            "that meet SLOs, and the Pareto front of two metrics."
        ),
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="result files or directories")
    parser.add_argument(
        "--scenario",
        metavar="COL,COL",
        help=f"columns that define a scenario (default {','.join(DEFAULT_SCENARIO)})",
    )
    parser.add_argument(
        "--slo",
        action="append",
        default=[],
        metavar="METRIC<=N",
        help="an SLO such as P90_TTFT_ms<=2000 (repeatable); direction from the column",
    )
    parser.add_argument(
        "--pareto",
        metavar="A,B",
        help=f"two metrics for the Pareto front (default {','.join(DEFAULT_PARETO)})",
    )
    parser.add_argument("--by", metavar="COL,COL", help="one Pareto front per group of these")
    parser.add_argument("--preset", metavar="NAME", help="start from a named preset")
    parser.add_argument(
        "--follow-symlinks", action="store_true", help="follow symbolic links when walking"
    )
    parser.add_argument("--no-cache", action="store_true", help="ignore and keep no cache")
    parser.add_argument(
        "--list", dest="list_what", choices=("columns", "presets"), help="list and exit"
    )
    add_common_output_args(
        parser, "write the loaded (and SLO-filtered) table to FILE.csv, .json or .parquet"
    )
    parser.set_defaults(handler=run)


def _split(text: str | None) -> list[str]:
    """Comma-separated names, each once, in the order given."""
    return list(dict.fromkeys(part.strip() for part in (text or "").split(",") if part.strip()))


def _plain(value: Any) -> Any:
    """A JSON-safe cell: NaN/NA -> None, infinity -> "inf", numpy scalars -> Python."""
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value


def records(frame: Any, columns: list[str] | None = None) -> list[dict[str, Any]]:
    """Rows of a DataFrame as JSON-safe dicts (one per run)."""
    part = frame if columns is None else frame[[c for c in columns if c in frame.columns]]
    names = list(part.columns)
    return [
        {name: _plain(v) for name, v in zip(names, row, strict=True)}
        for row in part.itertuples(index=False, name=None)
    ]


def write_table(frame: Any, path: Path) -> None:
    """Write the table as CSV, JSON (list of row objects) or Parquet, by suffix."""
    import json

    from cfgexplorer.errors import ReportFileError

    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json", ".parquet"):
        raise ReportFileError(f"--output {path.name}: use a .csv, .json or .parquet file name")
    try:
        if suffix == ".csv":
            frame.to_csv(path, index=False)
        elif suffix == ".json":
            path.write_text(json.dumps(records(frame), indent=1) + "\n")
        else:
            frame.to_parquet(path, index=False)
    except OSError as exc:  # pyarrow's file errors are OSErrors too
        raise ReportFileError(
            f"cannot write --output {path} ({exc.strerror or exc}); choose a writable file path"
        ) from None


def _progress_bar() -> tuple[Any, Any]:
    """A callback drawing a rich progress bar on stderr for large loads, and its closer."""
    state: dict[str, Any] = {}

    def update(done: int, total: int) -> None:
        if total < PROGRESS_MIN_FILES or not sys.stderr.isatty():
            return
        if "bar" not in state:
            from rich.console import Console
            from rich.progress import Progress

            bar = Progress(console=Console(stderr=True), transient=True)
            bar.start()
            state["bar"], state["task"] = bar, bar.add_task("importing results", total=total)
        state["bar"].update(state["task"], completed=done)

    def close() -> None:
        if "bar" in state:
            state["bar"].stop()

    return update, close


def run(args: argparse.Namespace) -> int:
    """Load, filter and rank; print the JSON (or tables) and write ``--output``."""
    from cfgexplorer import explore
    from cfgexplorer.benchmarks import columns_table, load_paths
    from cfgexplorer.cli import emit
    from cfgexplorer.errors import ReportFileError

    if args.list_what == "columns":
        return emit({"columns": columns_table()}, _no_output(args), _render_columns)
    if args.list_what == "presets":
        presets = [p.to_dict() for p in explore.load_presets().values()]
        return emit({"presets": presets}, _no_output(args), None)
    if not args.paths:
        raise ReportFileError("give at least one result file or directory to load")

    preset = explore.get_preset(args.preset) if args.preset else None
    scenario_cols = _split(args.scenario) or list(preset.scenario if preset else DEFAULT_SCENARIO)
    slos = [*(preset.slos if preset else ()), *(explore.SLO.parse(s) for s in args.slo)]
    for flag, value in (
        ("--pareto", args.pareto),
        ("--scenario", args.scenario),
        ("--by", args.by),
    ):
        if value is not None and not _split(value):
            raise explore.SweepQueryError(f"{flag} {value!r} names no column; give COL,COL")
    if args.pareto is not None and len(_split(args.pareto)) == 1 and "," in args.pareto:
        raise explore.SweepQueryError("--pareto needs two different metrics, e.g. A,B")
    pareto = _split(args.pareto) or list(preset.pareto if preset else DEFAULT_PARETO)
    by = _split(args.by) or list(preset.by if preset else ())
    if len(pareto) != 2:
        raise explore.SweepQueryError("--pareto takes exactly two metrics, e.g. A,B")

    update, close = _progress_bar()
    try:
        loaded = load_paths(
            args.paths,
            follow_symlinks=args.follow_symlinks,
            use_cache=not args.no_cache,
            progress=update,
        )
    finally:
        close()
    table = loaded.table
    if table.empty:
        shown = "; ".join(f"{path}: {reason}" for path, reason in loaded.skipped[:3])
        more = f" (and {len(loaded.skipped) - 3} more)" if len(loaded.skipped) > 3 else ""
        raise ReportFileError(
            "no benchmark results could be loaded"
            + (
                f" ({shown}{more})"
                if shown
                else f" (no result files found in {', '.join(map(str, args.paths))})"
            )
            + "; point at llm-d, vLLM bench, GuideLLM or inference-perf result files"
        )

    for column in [*scenario_cols, *by]:
        explore.metric_direction(table, column)  # raises on an unknown column
    meeting = explore.meet_slos(table, slos)
    front = explore.pareto_front(meeting, pareto, by=by or None)
    front_cols = list(dict.fromkeys([*_FRONT_COLUMNS, *by, *pareto]))

    if args.output:
        write_table(meeting, Path(args.output).expanduser())
    result = {
        "loaded": loaded.summary(),
        "preset": preset.name if preset else None,
        "scenario_columns": scenario_cols,
        "scenarios": records(explore.scenarios(table, scenario_cols)),
        "slos": [str(s) for s in slos],
        "meeting_slos": len(meeting),
        "pareto": {"metrics": pareto, "by": by, "rows": records(front, front_cols)},
        "output": args.output,
    }
    return emit(result, _no_output(args), _render_pretty)


def _no_output(args: argparse.Namespace) -> argparse.Namespace:
    """The args with ``--output`` removed: the table goes there, not the summary."""
    copy = argparse.Namespace(**vars(args))
    copy.output = None
    return copy


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value.is_integer() or abs(value) >= 1000:
            return f"{value:,.0f}"  # token counts and large rates: no scientific notation
        return f"{value:,.4g}"
    return str(value)


def _table(title: str, rows: list[dict[str, Any]], limit: int = 40) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    if not rows:
        table.add_column("(none)")
        return table
    for name in rows[0]:
        table.add_column(name, overflow="fold")
    for row in rows[:limit]:
        table.add_row(*(_cell(v) for v in row.values()))
    if len(rows) > limit:
        table.caption = f"{len(rows) - limit} more rows not shown"
    return table


def _render(*renderables: Any) -> str:
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(file=buffer, width=160, color_system=None, soft_wrap=False)
    for item in renderables:
        console.print(item)
    return buffer.getvalue()


def _render_pretty(result: dict[str, Any]) -> str:
    loaded = result["loaded"]
    head = (
        f"Loaded {loaded['rows']} runs from {loaded['files_loaded']} files; "
        f"skipped {loaded['files_skipped']}."
    )
    skipped = [{"file": Path(s["path"]).name, "reason": s["reason"]} for s in loaded["skipped"]]
    front = result["pareto"]
    shown = [
        {k: v for k, v in row.items() if k != "File"} | {"file": Path(row["File"]).name}
        for row in front["rows"]
    ]
    used = {k for row in shown for k, v in row.items() if v is not None}
    shown = [{k: v for k, v in row.items() if k in used} for row in shown]
    slos = ", ".join(result["slos"]) or "none"
    return _render(
        head,
        _table("Skipped files", skipped) if skipped else "",
        _table("Scenarios", result["scenarios"]),
        f"SLOs: {slos}; runs meeting them: {result['meeting_slos']}",
        _table(f"Pareto front of {' vs '.join(front['metrics'])}", shown),
    )


def _render_columns(result: dict[str, Any]) -> str:
    return _render(_table("Sweep table columns", result["columns"], limit=10_000))
