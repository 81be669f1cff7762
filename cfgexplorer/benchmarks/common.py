"""Helpers shared by the importers: safe lookups, units, statistics, derived columns.

An importer turns one parsed document into a list of rows (plain dicts keyed
by the names in :mod:`cfgexplorer.benchmarks.columns`). A row leaves out what
the file does not say; :func:`finalize_row` then adds the derived columns
(throughput per GPU and per user, success ratio) from what is there.

The rule for measured values (latencies, throughputs, request counts): each is a
number >= 0 or absent (null). A file holding a negative one, or one that is not a
number at all (a word, a list, true/false), is skipped with a reason naming the
field: one corrupt measurement makes the whole run suspect, and a silently dropped
value would make the run look as if it had not been measured.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from typing import Any

from cfgexplorer.benchmarks.columns import COLUMNS, LATENCY_STATS, latency_column
from cfgexplorer.errors import ReportFileError

Row = dict[str, Any]

# Latency unit -> factor to milliseconds (FORMATS.md section 7; "us" seen in ad-hoc exports).
LATENCY_FACTORS_TO_MS: dict[str, float] = {
    "ms": 1.0,
    "s": 1000.0,
    "us": 1e-3,
    "ms/token": 1.0,
    "s/token": 1000.0,
    "us/token": 1e-3,
    "seconds": 1000.0,
}

# Units accepted for rates; none needs a conversion (FORMATS.md section 7).
RATE_UNITS: frozenset[str] = frozenset({"tokens/s", "queries/s", "requests/s", "req/s"})

# Every spelling of a statistic in reports and native files -> our stat prefix
# (FORMATS.md pitfall P4: reports use p0p1/p99p9, vLLM and inference-perf p0.1/p99.9,
# GuideLLM p001/p01/p05/p999, everyone but reports says "median").
STAT_SPELLINGS: dict[str, str] = {
    "mean": "Mean",
    "avg": "Mean",
    "stddev": "StdDev",
    "std_dev": "StdDev",
    "std": "StdDev",
    "min": "Min",
    "max": "Max",
    "median": "P50",
    "p50": "P50",
    "p0p1": "P0.1",
    "p0.1": "P0.1",
    "p001": "P0.1",
    "p1": "P1",
    "p01": "P1",
    "p5": "P5",
    "p05": "P5",
    "p10": "P10",
    "p25": "P25",
    "p75": "P75",
    "p90": "P90",
    "p95": "P95",
    "p99": "P99",
    "p99p9": "P99.9",
    "p99.9": "P99.9",
    "p999": "P99.9",
}
assert set(STAT_SPELLINGS.values()) <= set(LATENCY_STATS)

# Accelerator names we normalise to (FORMATS.md pitfall P10: names are free text).
# Longest first so "GB200" wins over "B200" and "L40S" over "L40".
_GPU_TOKENS: tuple[str, ...] = (
    "GB300", "GB200", "B300", "B200", "B100", "H200", "H100", "H800", "H20", "A100",
    "A800", "A10G", "A30", "A10", "L40S", "L40", "L4", "V100", "T4", "MI355X", "MI325X",
    "MI300X", "MI250X", "GAUDI3", "GAUDI2",
)  # fmt: skip
_GPU_RE = re.compile(r"(?<![A-Z0-9])(" + "|".join(_GPU_TOKENS) + r")(?![0-9])", re.IGNORECASE)
_TPU_RE = re.compile(r"TPU[\s_-]*(v\d+[a-z]*)", re.IGNORECASE)


def dig(doc: Any, *path: str | int) -> Any:
    """Follow keys and list indexes through nested data; ``None`` where a step is missing."""
    node = doc
    for step in path:
        if isinstance(step, int):
            if not isinstance(node, list) or not -len(node) <= step < len(node):
                return None
            node = node[step]
        else:
            if not isinstance(node, Mapping):
                return None
            node = node.get(step)
        if node is None:
            return None
    return node


def as_float(value: Any) -> float:
    """A number from ints, floats, numeric strings and "inf"; NaN for anything else."""
    if isinstance(value, bool) or value is None:
        return math.nan
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in {"inf", "+inf", ".inf", "infinity"}:
            return math.inf
        try:
            return float(text)
        except ValueError:
            return math.nan
    return math.nan


def metric_number(value: Any, where: str) -> float:
    """A measured value as a float; NaN when absent (null); an error when it is not a number.

    Raises
    ------
    ReportFileError
        Naming ``where`` and the value, for anything but a number, a numeric string or null.
    """
    number = as_float(value)
    if value is None or not math.isnan(number):
        return number
    if isinstance(value, float) or (isinstance(value, str) and value.strip().lower() == "nan"):
        return number  # an explicit NaN (FORMATS.md P7) means "not measured", like null
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    raise ReportFileError(
        f"{where} is {shown}, not a number; a measured value must be a number or null, "
        "so fix or remove it"
    )


def is_known(value: Any) -> bool:
    """True for a value that is present (not None and not NaN)."""
    if value is None:
        return False
    return not (isinstance(value, float) and math.isnan(value))


def put(row: Row, column: str, value: Any) -> None:
    """Set a column only when the value is known, so absent stays absent."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = float(value)
    if is_known(value):
        row[column] = value


def add_note(row: Row, note: str) -> None:
    """Append a caveat to the row's ``Notes`` column."""
    existing = row.get("Notes")
    row["Notes"] = f"{existing}; {note}" if existing else note


def latency_factor(units: Any, what: str) -> float:
    """Factor that converts a latency in ``units`` to milliseconds; unknown units are an error."""
    factor = LATENCY_FACTORS_TO_MS.get(str(units).strip()) if units is not None else None
    if factor is None:
        raise ReportFileError(f"unknown unit {units!r} for {what}; expected one of ms, s, s/token")
    return factor


def put_stats(row: Row, metric: str, stats: Any, factor: float) -> bool:
    """Copy a statistics block into ``<Stat>_<metric>_ms`` columns; returns True if any was set.

    GuideLLM nests its percentiles under ``percentiles``; that level is flattened.
    """
    if not isinstance(stats, Mapping):
        return False
    flat: dict[str, Any] = dict(stats)
    nested = stats.get("percentiles")
    if isinstance(nested, Mapping):
        flat.update(nested)
    found = False
    for key, value in flat.items():
        stat = STAT_SPELLINGS.get(str(key).lower())
        if stat is None:
            continue
        number = metric_number(value, f"{metric} {key}")
        if math.isnan(number):
            continue
        column = latency_column(stat, metric)
        # "median" and "p50" may both be present; the first one seen wins.
        if column not in row:
            row[column] = number * factor
            found = True
    return found


# Throughput keys of llm-d reports and inference-perf -> our columns (all per second).
THROUGHPUT_KEYS: dict[str, str] = {
    "requests_per_sec": "Request_Throughput",
    "output_tokens_per_sec": "Output_Token_Throughput",
    "total_tokens_per_sec": "Total_Token_Throughput",
    "input_tokens_per_sec": "Input_Token_Throughput",
}


def put_throughputs(row: Row, block: Any) -> None:
    """Copy a ``throughput`` block's rates into their columns (a non-number is an error)."""
    if not isinstance(block, Mapping):
        return
    for key, column in THROUGHPUT_KEYS.items():
        put(row, column, metric_number(block.get(key), f"throughput {key}"))


def normalise_gpu(raw: Any) -> str | None:
    """Short accelerator name from free text: 'NVIDIA-H100-80GB-HBM3' -> 'H100'."""
    if not raw:
        return None
    text = str(raw).split(":")[-1].strip()  # node-selector "key:value" keeps the value
    match = _GPU_RE.search(text)
    if match:
        return match.group(1).upper()
    tpu = _TPU_RE.search(text)
    if tpu:
        return f"TPU {tpu.group(1).lower()}"
    return text or None


def is_gpu_name(text: str) -> bool:
    """True when ``text`` is exactly a known accelerator name (a directory named 'H100')."""
    return _GPU_RE.fullmatch(text.strip()) is not None


def put_gpu(row: Row, raw: Any) -> None:
    """Set ``GPU`` (normalised) and ``GPU_Raw`` from a free-text accelerator name."""
    if raw in (None, ""):
        return
    row["GPU_Raw"] = str(raw)
    row["GPU"] = normalise_gpu(raw)


def epoch_seconds(value: Any) -> float:
    """Epoch seconds from a number, an ISO-8601 string or a datetime (naive means UTC)."""
    if isinstance(value, dt.datetime):
        stamp = value
    elif isinstance(value, dt.date):
        stamp = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            stamp = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return math.nan
    else:
        return as_float(value)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.timestamp()


_ISO_DURATION = re.compile(
    r"^P(?:(?P<d>[\d.]+)D)?(?:T(?:(?P<h>[\d.]+)H)?(?:(?P<m>[\d.]+)M)?(?:(?P<s>[\d.]+)S)?)?$"
)


def iso_duration_seconds(value: Any) -> float:
    """Seconds from an ISO-8601 duration such as ``PT49.97S``; plain numbers pass through."""
    if not isinstance(value, str):
        return as_float(value)
    match = _ISO_DURATION.match(value.strip().upper())
    if not match or value.strip().upper() in {"P", "PT"}:
        return as_float(value)
    parts = {k: float(v) if v else 0.0 for k, v in match.groupdict().items()}
    return parts["d"] * 86400 + parts["h"] * 3600 + parts["m"] * 60 + parts["s"]


def scheduler_weights(row: Row, epp_config: Any) -> None:
    """Read inference-scheduler (EPP) plugin weights and prefix-cache parameters."""
    if not isinstance(epp_config, Mapping):
        return
    plugins = epp_config.get("plugins") or []
    by_name: dict[str, Mapping[str, Any]] = {}
    for plugin in plugins:
        if isinstance(plugin, Mapping) and plugin.get("type"):
            by_name[str(plugin.get("name") or plugin["type"])] = plugin
    profiles = epp_config.get("schedulingProfiles") or []
    refs = dig(profiles, 0, "plugins") or []
    weights: dict[str, float] = {}
    for ref in refs:
        if not isinstance(ref, Mapping) or not ref.get("pluginRef"):
            continue
        name = str(ref["pluginRef"])
        kind = str(dig(by_name, name, "type") or name)
        weights[kind] = as_float(ref.get("weight"))

    if not by_name and not weights:
        return
    # A scorer that the profile does not reference has weight 0 (FORMATS.md 3.3).
    for kind, column in (
        ("kv-cache-scorer", "KV_Cache_Scorer_Weight"),
        ("queue-scorer", "Queue_Scorer_Weight"),
        ("prefix-cache-scorer", "Prefix_Cache_Scorer_Weight"),
    ):
        put(row, column, weights.get(kind, 0.0))
    prefix = next((p for p in by_name.values() if p.get("type") == "prefix-cache-scorer"), None)
    if prefix is not None:
        params = prefix.get("parameters") or {}
        put(row, "Prefix_Cache_Scorer_Block_Size", as_float(params.get("blockSize")))
        put(
            row,
            "Prefix_Cache_Scorer_LRU_Capacity_Per_Server",
            as_float(params.get("lruCapacityPerServer")),
        )
        put(
            row,
            "Prefix_Cache_Scorer_Max_Blocks_To_Match",
            as_float(params.get("maxPrefixBlocksToMatch")),
        )
        if params.get("mode"):
            row["Prefix_Cache_Scorer_Mode"] = str(params["mode"])


# vLLM's own defaults for the parallel sizes when a source gives TP but not DP/PP.
VLLM_DEFAULT_PARALLEL_SIZE = 1  # vllm EngineArgs: data/pipeline parallel size default 1


def _role_gpus(row: Row, prefix: str, replicas_col: str) -> float:
    tp = row.get(f"{prefix}TP")
    replicas = row.get(replicas_col)
    if not is_known(tp) or not is_known(replicas):
        return math.nan
    dp = row.get(f"{prefix}DP", VLLM_DEFAULT_PARALLEL_SIZE)
    pp = row.get(f"{prefix}PP", VLLM_DEFAULT_PARALLEL_SIZE)
    return float(replicas) * float(tp) * float(dp) * float(pp)


# Measured columns (latencies, throughputs, request counts): never negative.
MEASURED_COLUMNS: tuple[str, ...] = tuple(
    c.name for c in COLUMNS if c.group == "metrics" and c.kind == "float"
)


def finalize_row(row: Row) -> Row:
    """Add the derived columns and run the unit sanity checks of FORMATS.md section 7.

    Raises
    ------
    ReportFileError
        When a measured value is negative or infinite (see the module docstring).
    """
    for column in MEASURED_COLUMNS:
        value = row.get(column)
        if is_known(value) and value < 0:
            raise ReportFileError(
                f"{column} is negative ({value:g}); latencies, throughputs and request counts "
                "cannot be, so the file is skipped: fix the value or remove it"
            )
        if is_known(value) and math.isinf(value):
            raise ReportFileError(
                f"{column} is infinite; a measured latency, throughput or request count is "
                "a finite number, so the file is skipped: fix the value or remove it"
            )
    for column in ("ISL", "OSL"):
        if is_known(row.get(column)) and math.isfinite(row[column]):
            row[column] = float(round(row[column]))

    if not is_known(row.get("Is_PD")):
        p, d = row.get("P_Replicas"), row.get("D_Replicas")
        if is_known(p) and is_known(d):
            row["Is_PD"] = bool(p >= 1 and d >= 1)
        elif is_known(row.get("Replicas")):
            row["Is_PD"] = False

    if not is_known(row.get("Num_GPUs")):
        if row.get("Is_PD") is True:
            gpus = _role_gpus(row, "P_", "P_Replicas") + _role_gpus(row, "D_", "D_Replicas")
        else:
            gpus = _role_gpus(row, "", "Replicas")
        if is_known(gpus):
            row["Num_GPUs"] = gpus
            add_note(row, "Num_GPUs = replicas x TP x DP x PP (DP, PP default 1)")

    gpus = row.get("Num_GPUs")
    output_tps = row.get("Output_Token_Throughput")
    if is_known(gpus) and gpus > 0 and is_known(output_tps):
        row["Thpt_per_GPU"] = output_tps / gpus
    tpot = row.get("Mean_TPOT_ms")
    if is_known(tpot) and tpot > 0:
        row["Thpt_per_User"] = 1000.0 / tpot

    total, failures = row.get("Total_Requests"), row.get("Failures")
    if is_known(total) and total > 0 and is_known(failures):
        row["Success_Ratio"] = max(0.0, (total - failures) / total)

    ttft, e2e = row.get("Mean_TTFT_ms"), row.get("Mean_E2EL_ms")
    if is_known(ttft) and is_known(e2e) and e2e < ttft:
        add_note(row, "mean E2E latency is below mean TTFT: check the units of the source")
    return row
