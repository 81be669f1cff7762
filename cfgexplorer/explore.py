"""Explore a sweep table: scenarios, SLO filters, Pareto fronts and presets.

Pure pandas/numpy on the table built by :mod:`cfgexplorer.benchmarks`; the
"better" direction of every metric comes from the shared column table, so the
CLI and the dashboard filter and rank the same way.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from cfgexplorer.benchmarks.columns import BY_NAME, Direction
from cfgexplorer.errors import UserError

log = logging.getLogger(__name__)

PRESETS_FILE_NAME = "sweep_presets.yaml"  # under the bundled data directory
_COLUMNS_HINT = "run `cfgexplorer sweep --list columns` for the names"


class SweepQueryError(UserError):
    """A scenario, SLO, Pareto or preset request that names an unknown column or is malformed."""


# ----------------------------------------------------------------------------- directions


def metric_direction(
    df: pd.DataFrame, column: str, override: Mapping[str, Direction] | None = None
) -> Direction:
    """Direction of a column: an explicit override, else the shared column table."""
    if column not in df.columns:
        raise SweepQueryError(f"unknown column {column!r}; {_COLUMNS_HINT}")
    if override and column in override:
        return override[column]
    known = BY_NAME.get(column)
    return known.direction if known is not None else "neutral"


# ----------------------------------------------------------------------------- SLOs

_SLO_RE = re.compile(r"^\s*([A-Za-z][\w.]*)\s*(<=|>=|<|>|=|:)\s*([-+]?[\d.]+(?:[eE][-+]?\d+)?)\s*$")


@dataclass(frozen=True)
class SLO:
    """A bound on one metric; rows meet it when the metric is on the better side.

    The bound is inclusive (``<=``, ``>=``) unless ``strict`` (``<``, ``>``).
    """

    metric: str
    bound: float
    direction: Direction = "lower"
    strict: bool = False

    @classmethod
    def parse(cls, text: str) -> SLO:
        """Read ``"P90_TTFT_ms<=2000"``; ``=``/``:`` take the direction from the column table.

        ``<=``/``>=`` are inclusive and ``<``/``>`` strict; an explicit operator must agree
        with the column's preferred direction, and the column must be numeric.
        """
        match = _SLO_RE.match(text)
        if not match:
            raise SweepQueryError(
                f"cannot read SLO {text!r}; write it as METRIC<=NUMBER, e.g. P90_TTFT_ms<=2000"
            )
        metric, op, number = match.groups()
        column = BY_NAME.get(metric)
        if column is not None and column.kind != "float":
            raise SweepQueryError(
                f"SLO {text!r} bounds {metric}, which is not a numeric column; bound a metric "
                "such as P90_TTFT_ms (`cfgexplorer sweep --list columns` lists them)"
            )
        preferred = column.direction if column is not None else "neutral"
        asked: Direction | None = {"<=": "lower", "<": "lower", ">=": "higher", ">": "higher"}.get(
            op
        )  # type: ignore[assignment]
        if asked is None:
            if preferred == "neutral":
                raise SweepQueryError(
                    f"{metric} has no preferred direction; write {metric}<=N or {metric}>=N"
                )
            asked = preferred
        elif preferred != "neutral" and asked != preferred:
            better = "lower" if preferred == "lower" else "higher"
            raise SweepQueryError(
                f"SLO {text!r} bounds {metric} the wrong way: {better} is better for it"
            )
        return cls(metric, float(number), asked, strict=op in ("<", ">"))

    @property
    def operator(self) -> str:
        """``<=``, ``<``, ``>=`` or ``>``."""
        return ("<" if self.direction == "lower" else ">") + ("" if self.strict else "=")

    def mask(self, df: pd.DataFrame) -> np.ndarray:
        """Rows that meet the SLO; a missing value never does."""
        if self.metric not in df.columns:
            raise SweepQueryError(f"SLO names unknown column {self.metric!r}; {_COLUMNS_HINT}")
        values = pd.to_numeric(df[self.metric], errors="coerce").to_numpy(dtype=float)
        compare = {"<=": np.less_equal, "<": np.less, ">=": np.greater_equal, ">": np.greater}
        with np.errstate(invalid="ignore"):
            ok = compare[self.operator](values, self.bound)
        return ok & ~np.isnan(values)

    def __str__(self) -> str:
        return f"{self.metric}{self.operator}{self.bound:g}"


def slo_mask(df: pd.DataFrame, slos: Iterable[SLO]) -> np.ndarray:
    """Rows that meet every SLO (all rows when there are none)."""
    mask = np.ones(len(df), dtype=bool)
    for slo in slos:
        mask &= slo.mask(df)
    return mask


def meet_slos(df: pd.DataFrame, slos: Iterable[SLO]) -> pd.DataFrame:
    """The rows of ``df`` that meet all SLOs, in their original order."""
    return df[slo_mask(df, slos)]


# ----------------------------------------------------------------------------- scenarios

Bound = tuple[float, float]


def scenarios(
    df: pd.DataFrame,
    columns: Sequence[str],
    bins: Mapping[str, Sequence[float]] | None = None,
) -> pd.DataFrame:
    """Distinct combinations of ``columns`` with the number of runs in each.

    Parameters
    ----------
    df
        The sweep table.
    columns
        Columns that define a scenario (e.g. ``["Model", "GPU", "ISL", "OSL"]``).
    bins
        Optional bucket edges for numeric columns, e.g. ``{"ISL": [0, 1000, 4000]}``;
        values are then reported as ``"[lo, hi)"`` ranges instead of exact numbers.

    Returns
    -------
    DataFrame
        One row per scenario: the columns plus ``count``, most runs first.
    """
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise SweepQueryError(f"unknown scenario column(s): {', '.join(missing)}; {_COLUMNS_HINT}")
    if not columns:
        return pd.DataFrame({"count": [len(df)]})
    keys = pd.DataFrame(index=df.index)
    for column in columns:
        if bins and column in bins:
            edges = sorted(float(e) for e in bins[column])
            keys[column] = pd.cut(
                pd.to_numeric(df[column], errors="coerce"), edges, right=False
            ).astype(str)
        else:
            keys[column] = df[column].astype(object)
    counts = keys.groupby(list(columns), dropna=False, sort=True).size()
    out = counts.reset_index(name="count").sort_values("count", ascending=False, kind="stable")
    return out.reset_index(drop=True)


def select(df: pd.DataFrame, scenario: Mapping[str, Any]) -> pd.DataFrame:
    """Rows matching a scenario: exact values, or ``(lo, hi)`` inclusive bounds for numbers."""
    mask = np.ones(len(df), dtype=bool)
    for column, wanted in scenario.items():
        if column not in df.columns:
            raise SweepQueryError(f"unknown scenario column {column!r}; {_COLUMNS_HINT}")
        if isinstance(wanted, tuple | list) and len(wanted) == 2:
            values = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=float)
            lo, hi = (float(w) if w is not None else math.nan for w in wanted)
            with np.errstate(invalid="ignore"):
                inside = (np.isnan(lo) | (values >= lo)) & (np.isnan(hi) | (values <= hi))
            mask &= inside & ~np.isnan(values)
        elif wanted is None or (isinstance(wanted, float) and math.isnan(wanted)):
            mask &= df[column].isna().to_numpy()
        else:
            mask &= (df[column] == wanted).fillna(False).to_numpy(dtype=bool)
    return df[mask]


# ----------------------------------------------------------------------------- Pareto


def _front_mask(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Non-dominated points when both ``a`` and ``b`` are to be maximised; O(n log n).

    A point is dominated when another is at least as good in both and strictly
    better in one. Identical points do not dominate each other, so all copies of
    a front point stay. NaN rows are never on the front.
    """
    n = len(a)
    mask = np.zeros(n, dtype=bool)
    valid = np.flatnonzero(~(np.isnan(a) | np.isnan(b)))
    if valid.size == 0:
        return mask
    av, bv = a[valid], b[valid]
    order = np.lexsort((-bv, -av))  # a descending, then b descending
    sa, sb = av[order], bv[order]

    new_group = np.empty(sa.size, dtype=bool)
    new_group[0] = True
    new_group[1:] = sa[1:] != sa[:-1]
    starts = np.flatnonzero(new_group)
    group = np.cumsum(new_group) - 1
    group_best_b = sb[starts]  # first of each equal-a group has its largest b
    best_before = np.empty_like(group_best_b)  # best b among strictly larger a
    best_before[0] = -np.inf
    best_before[1:] = np.maximum.accumulate(group_best_b)[:-1]

    top_of_group = sb == group_best_b[group]
    beats_larger_a = (group == 0) | (sb > best_before[group])
    mask[valid[order[top_of_group & beats_larger_a]]] = True
    return mask


def _oriented(
    df: pd.DataFrame, metrics: Sequence[str], directions: Mapping[str, Direction] | None
) -> tuple[np.ndarray, np.ndarray]:
    if len(metrics) != 2:
        raise SweepQueryError(f"a Pareto front needs two metrics, got {len(metrics)}")
    arrays = []
    for metric in metrics:
        way = metric_direction(df, metric, directions)
        if way == "neutral":
            raise SweepQueryError(
                f"{metric} has no better direction; pick a throughput or latency metric"
            )
        values = pd.to_numeric(df[metric], errors="coerce").to_numpy(dtype=float)
        arrays.append(values if way == "higher" else -values)
    return arrays[0], arrays[1]


def pareto_mask(
    df: pd.DataFrame,
    metrics: Sequence[str],
    directions: Mapping[str, Direction] | None = None,
    by: Sequence[str] | None = None,
) -> np.ndarray:
    """Boolean mask of the rows on the Pareto front (per group of ``by`` columns if given)."""
    a, b = _oriented(df, metrics, directions)
    if not by:
        return _front_mask(a, b)
    missing = [c for c in by if c not in df.columns]
    if missing:
        raise SweepQueryError(f"unknown group column(s): {', '.join(missing)}; {_COLUMNS_HINT}")
    mask = np.zeros(len(df), dtype=bool)
    for positions in df.groupby(list(by), dropna=False, sort=False).indices.values():
        mask[positions] = _front_mask(a[positions], b[positions])
    return mask


def pareto_front(
    df: pd.DataFrame,
    metrics: Sequence[str],
    directions: Mapping[str, Direction] | None = None,
    by: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Rows of ``df`` on the Pareto front of two metrics, in input order.

    Parameters
    ----------
    df
        The sweep table (or any DataFrame).
    metrics
        Two column names. Their better direction comes from the shared column
        table (``Thpt_per_GPU`` higher, ``P90_TTFT_ms`` lower, ...).
    directions
        Overrides or directions for columns the table does not know.
    by
        Optional configuration columns; a front is computed within each group.

    Returns
    -------
    DataFrame
        The non-dominated rows; identical points all stay; rows with a missing
        metric never appear. Vectorised, O(n log n).
    """
    return df[pareto_mask(df, metrics, directions, by)]


def pareto_front_all_pairs(
    df: pd.DataFrame,
    metrics: Sequence[str],
    directions: Mapping[str, Direction] | None = None,
    early_exit: bool = False,
) -> pd.DataFrame:
    """Reference front by comparing every pair of rows in plain Python (quadratic).

    For tests and timing only. ``early_exit`` stops scanning a row at its first
    dominator, which is much faster on data where most rows are dominated early.
    """
    a, b = _oriented(df, metrics, directions)
    points = list(zip(a.tolist(), b.tolist(), strict=True))
    keep = []
    for ai, bi in points:
        if math.isnan(ai) or math.isnan(bi):
            keep.append(False)
            continue
        dominated = False
        for aj, bj in points:
            if aj >= ai and bj >= bi and (aj > ai or bj > bi):
                dominated = True
                if early_exit:
                    break
        keep.append(not dominated)
    return df[np.array(keep, dtype=bool)] if len(df) else df


# ----------------------------------------------------------------------------- presets


@dataclass(frozen=True)
class Preset:
    """A named starting point: scenario columns, SLOs, Pareto metrics and grouping."""

    name: str
    description: str
    scenario: tuple[str, ...] = ()
    slos: tuple[SLO, ...] = ()
    pareto: tuple[str, ...] = ("Thpt_per_User", "Thpt_per_GPU")
    by: tuple[str, ...] = ()
    source: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "name": self.name,
            "description": self.description,
            "scenario": list(self.scenario),
            "slos": [str(s) for s in self.slos],
            "pareto": list(self.pareto),
            "by": list(self.by),
            "source": self.source,
        }


def load_presets(path: Path | None = None) -> dict[str, Preset]:
    """Presets from ``data/sweep_presets.yaml`` (or ``path``), by name."""
    if path is None:
        from cfgexplorer.paths import data_dir

        path = data_dir() / PRESETS_FILE_NAME
    doc = yaml.safe_load(path.read_text()) or {}
    presets: dict[str, Preset] = {}
    for name, spec in (doc.get("presets") or {}).items():
        spec = spec or {}
        unknown = [
            c
            for c in [*spec.get("scenario", []), *spec.get("pareto", []), *spec.get("by", [])]
            if c not in BY_NAME
        ]
        if unknown:
            raise ValueError(f"preset {name!r} in {path.name} names unknown columns {unknown}")
        presets[str(name)] = Preset(
            name=str(name),
            description=str(spec.get("description", "")),
            scenario=tuple(spec.get("scenario", ())),
            slos=tuple(SLO.parse(s) for s in spec.get("slos", ())),
            pareto=tuple(spec.get("pareto", ("Thpt_per_User", "Thpt_per_GPU"))),
            by=tuple(spec.get("by", ())),
            source=str(spec.get("source", "")),
        )
    return presets


def get_preset(name: str, path: Path | None = None) -> Preset:
    """One preset by name; an unknown name lists the known ones."""
    presets = load_presets(path)
    if name not in presets:
        raise SweepQueryError(f"unknown preset {name!r}; choose from {', '.join(presets)}")
    return presets[name]
