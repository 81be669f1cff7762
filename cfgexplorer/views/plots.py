"""HoloViews elements drawn from the derived state; reshaping only, no arithmetic."""

from __future__ import annotations

from typing import Any

import holoviews as hv
import pandas as pd

TERMS = ["weights", "activation", "non_torch", "kv_pool", "unused"]
TERM_LABELS = {
    "weights": "weights",
    "activation": "activation peak",
    "non_torch": "non-torch",
    "kv_pool": "KV cache pool",
    "unused": "unused (1 - utilization)",
}
TERM_COLORS = {
    "weights": "#4C72B0",
    "activation": "#DD8452",
    "non_torch": "#8172B3",
    "kv_pool": "#55A868",
    "unused": "#CCCCCC",
}


MARK_LABELS = {  # the vertical lines of the budget bar, keyed as CapacityPlanner.budget_marks
    "device_total": "device total",
    "budget": "budget (utilization x total)",
}
MARK_STYLES = {"device_total": "solid", "budget": "dashed"}


def budget_bars(segments: pd.DataFrame, marks: dict[str, float] | None = None) -> Any:
    """Horizontal stacked bars of the memory terms: per GPU, then per PP stage.

    ``marks`` (GiB by name) are drawn as labelled vertical lines, so a bar that
    runs past the device shows where the device ends.
    """
    rects = _budget_rects(segments)
    bars = int(segments["bar"].max()) + 1 if len(segments) else 1
    elements: list[Any] = [rects]
    for index, (name, gib) in enumerate((marks or {}).items()):
        label = f"{MARK_LABELS.get(name, name)}: {gib:.1f} GiB"
        elements.append(
            hv.VLine(gib).opts(
                color="#C44E52", line_dash=MARK_STYLES.get(name, "dotted"), line_width=2
            )
        )
        # Above the first bar and below the last (the y axis is inverted), so labels
        # of two close lines do not overlap.
        y = -0.55 if index == 0 else bars - 0.45
        elements.append(
            hv.Text(gib, y, f" {label}", halign="right" if index else "left").opts(
                text_font_size="8pt", text_color="#C44E52"
            )
        )
    return hv.Overlay(elements)  # always an overlay: a DynamicMap keeps one element type


def _budget_rects(segments: pd.DataFrame) -> hv.Rectangles:
    """The stacked rectangles of budget_bars."""
    frame = segments.assign(
        y0=segments["bar"] - 0.35,
        y1=segments["bar"] + 0.35,
        name=[TERM_LABELS.get(t, t) for t in segments["term"]],
    )
    ticks = list(dict.fromkeys(zip(segments["bar"], segments["label"], strict=True)))
    rects = hv.Rectangles(frame, ["start", "y0", "end", "y1"], ["name", "gib", "label", "term"])
    return rects.opts(
        color="term",
        cmap=TERM_COLORS,
        line_color="white",
        tools=["hover"],
        hover_tooltips=[("", "@label"), ("term", "@name"), ("GiB", "@gib{0.00}")],
        yticks=ticks or [(0, "per GPU")],
        invert_yaxis=True,
        height=130 + 40 * len(ticks),
        responsive=True,
        title="Per-GPU memory (GiB)",
        show_legend=True,
        legend_position="right",
        xlabel="GiB",
        ylabel="",
        default_tools=["save"],
        toolbar="above",
        framewise=True,
    )


def concurrency_curve(curve: pd.DataFrame | None) -> hv.Curve:
    """Max concurrency against max_model_len (the plan's own length is one of the points)."""
    frame = (
        curve
        if curve is not None
        else pd.DataFrame(columns=["max_model_len", "max_concurrency", "kv_tokens"])
    )
    return hv.Curve(frame, "max_model_len", ["max_concurrency", "kv_tokens"]).opts(
        logx=True,
        xticks=length_ticks(list(frame["max_model_len"])) or None,
        padding=0.05,  # room for the label of the largest length at the right edge
        line_width=2,
        color="#55A868",
        tools=["hover"],
        height=260,
        responsive=True,
        title="Max concurrency vs max_model_len",
        xlabel="max_model_len (tokens)",
        ylabel="requests of that length",
        default_tools=["save"],
        toolbar="above",
        framewise=True,
    )


MIN_TICK_RATIO = 1.2  # neighbouring ticks of a log axis closer than this would overlap


def length_ticks(lengths: list[int]) -> list[tuple[int, str]]:
    """Readable ticks for a log axis of token counts: powers of two and the largest length.

    Labels use vLLM's own shorthand (``32K`` = 32768 tokens, as ``--max-model-len``
    reads it); a length closer than MIN_TICK_RATIO to a kept tick gets none.
    """
    values = sorted({int(v) for v in lengths if v and v > 0})
    if not values:
        return []
    wanted = [v for v in values if v & (v - 1) == 0]
    if values[-1] not in wanted:
        wanted = [v for v in wanted if values[-1] / v >= MIN_TICK_RATIO] + [values[-1]]
    ticks: list[int] = []
    for v in wanted:
        if not ticks or v / ticks[-1] >= MIN_TICK_RATIO:
            ticks.append(v)
    return [(v, _tokens_label(v)) for v in ticks]


def _tokens_label(tokens: int) -> str:
    if tokens >= 1024 and tokens % 1024 == 0:
        return f"{tokens // 1024}K"
    return f"{tokens:,}"


def pareto_plot(
    filtered: pd.DataFrame,
    front: pd.DataFrame,
    x: str,
    y: str,
    by: list[str],
    hover_columns: list[str],
) -> hv.Overlay:
    """All runs that meet the SLOs (grey) and the Pareto front (coloured, joined by a line).

    Runs without a value for x or y have no place on the plot and are left out.
    """
    vdims = [y, *[c for c in hover_columns if c not in (x, y)]]
    base = _without_pandas_na(filtered.dropna(subset=[x, y]))
    base["group"] = _group_labels(base, by)
    on_front = _without_pandas_na(front)
    on_front["group"] = _group_labels(on_front, by)
    hover = [(c, f"@{{{c}}}") for c in [x, *vdims]]
    runs = hv.Scatter(base, x, [*vdims, "group"], label="runs").opts(
        color="#BBBBBB", size=8, tools=["hover", "tap"], hover_tooltips=hover
    )
    fronts: list[Any] = []
    for group, part in on_front.groupby("group", sort=True):
        part = part.sort_values(x)
        label = f"front {group}" if group else "Pareto front"
        fronts.append(hv.Curve(part, x, [*vdims, "group"], label=label).opts(line_width=2))
        fronts.append(
            hv.Scatter(part, x, [*vdims, "group"], label=label).opts(
                size=11, tools=["hover", "tap"], hover_tooltips=hover
            )
        )
    overlay = hv.Overlay([runs, *fronts])
    return overlay.opts(
        height=420,
        responsive=True,
        title=f"{y} vs {x}",
        legend_position="right",
        default_tools=["save", "pan", "wheel_zoom", "box_zoom", "reset"],
        toolbar="above",
        hooks=[_open_link_on_tap],
    )


def _without_pandas_na(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy with pandas' nullable columns (Int64, boolean...) as plain NumPy ones.

    HoloViews computes axis and hover ranges with NumPy and fails on ``pd.NA``; a run
    without a GPU count has exactly that in its nullable columns.
    """
    out = frame.copy()
    for name in out.columns:
        column = out[name]
        if not isinstance(column.dtype, pd.api.extensions.ExtensionDtype):
            continue
        if pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(
            column.dtype
        ):
            out[name] = column.astype("float64")
        else:
            out[name] = column.astype(object).where(column.notna(), None)
    return out


def _group_labels(frame: pd.DataFrame, by: list[str]) -> pd.Series:
    if not by or frame.empty:
        return pd.Series([""] * len(frame), index=frame.index, dtype=object)
    parts = frame[by].astype(str)
    return parts.apply(lambda row: ", ".join(f"{k}={v}" for k, v in row.items()), axis=1)


def _open_link_on_tap(plot: Any, _element: Any) -> None:
    """Clicking a run opens its result file (when the server exposes the sweep root)."""
    from bokeh.models import OpenURL, TapTool

    for tool in plot.state.select(type=TapTool):
        tool.callback = OpenURL(url="@{Link}")


FREE_SLOT = "(free)"  # the model name of an empty GPU slot in the layout frame
TOP_GPUS = 6  # curves drawn for the best-ranked GPU types; more would be unreadable


LATENCY_AXES = {"itl_ms": "ITL (ms)", "ttft_ms": "TTFT (ms)"}


def throughput_vs_latency(
    curves: pd.DataFrame, gpus: list[str], slo: float | None, metric: str = "itl_ms"
) -> Any:
    """Output throughput per GPU against a latency (ITL or TTFT) per GPU, with error bands.

    The latency's SLO, when set, is the dashed vertical line.
    """
    name = LATENCY_AXES[metric].split(" ")[0]
    elements: list[Any] = []
    for gpu in gpus:
        part = curves[curves["gpu"] == gpu]
        if part.empty:
            continue
        elements.append(
            hv.Segments(
                part,
                [
                    f"{metric}_lower",
                    "output_tok_s_per_gpu",
                    f"{metric}_upper",
                    "output_tok_s_per_gpu",
                ],
            ).opts(alpha=0.35, line_width=6)
        )
        elements.append(
            hv.Curve(
                part, metric, ["output_tok_s_per_gpu", "concurrency", "tp", "num_gpus"], label=gpu
            ).opts(tools=["hover"], line_width=2)
        )
    if slo:
        elements.append(hv.VLine(slo).opts(color="red", line_dash="dashed"))
    if not elements:
        elements.append(hv.Curve([], metric, "output_tok_s_per_gpu"))
    return hv.Overlay(elements).opts(
        height=340,
        responsive=True,
        title=f"Throughput vs {name} (bands: estimate error band; dashed: {name} SLO)",
        xlabel=LATENCY_AXES[metric],
        ylabel="output tok/s per GPU",
        legend_position="right",
        default_tools=["save", "pan", "wheel_zoom", "reset"],
        toolbar="above",
    )


def throughput_vs_concurrency(curves: pd.DataFrame, gpus: list[str]) -> Any:
    """Output throughput of each GPU's best deployment against total concurrency."""
    elements = [
        hv.Curve(
            curves[curves["gpu"] == gpu],
            "concurrency",
            ["output_tok_s", "itl_ms", "ttft_ms", "meets_slo"],
            label=gpu,
        ).opts(tools=["hover"], line_width=2, logx=True)
        for gpu in gpus
    ] or [hv.Curve([], "concurrency", "output_tok_s")]
    return hv.Overlay(elements).opts(
        height=340,
        responsive=True,
        title="Throughput vs concurrency",
        xlabel="concurrent requests",
        ylabel="output tok/s",
        legend_position="right",
        default_tools=["save", "pan", "wheel_zoom", "reset"],
        toolbar="above",
    )


def cost_bars(ranked: pd.DataFrame) -> hv.Bars:
    """Cost per million output tokens of each GPU's best deployment."""
    frame = ranked.dropna(subset=["cost_per_million_output_tokens"])
    return hv.Bars(
        frame, "gpu", ["cost_per_million_output_tokens", "cost_per_hour", "cost_source"]
    ).opts(
        tools=["hover"],
        height=300,
        responsive=True,
        xrotation=45,
        color="#4C72B0",
        title="Cost per million output tokens (reference or your costs)",
        ylabel="cost / 1M output tokens",
        default_tools=["save"],
        toolbar="above",
    )


def server_layout(layout: pd.DataFrame) -> hv.Rectangles:
    """One row of GPU slots per server, each slot coloured by the model placed in it."""
    servers = list(dict.fromkeys(zip(layout["y0"], layout["server"], strict=True)))
    from bokeh.palettes import Category10_10 as palette

    names = [m for m in dict.fromkeys(layout["model"]) if m != FREE_SLOT]
    colors = {m: palette[i % len(palette)] for i, m in enumerate(names)}
    colors[FREE_SLOT] = "#E5E5E5"
    return hv.Rectangles(layout, ["x0", "y0", "x1", "y1"], ["model", "server"]).opts(
        color="model",
        cmap=colors,
        line_color="white",
        tools=["hover"],
        yticks=[(y + 0.35, name) for y, name in servers],
        invert_yaxis=True,
        xaxis=None,
        height=max(160, 60 + 45 * len(servers)),
        responsive=True,
        legend_position="right",
        title="Server layout (one row per server, one block per GPU)",
        ylabel="",
        default_tools=["save"],
        toolbar="above",
    )
