"""The one table of sweep columns: name, meaning, unit, dtype and preferred direction.

Every importer fills a subset of these columns; the loader builds the DataFrame
with exactly this list, so a column a format lacks is empty (NaN), never
invented. The CLI and the dashboard read descriptions, units and the
"better" direction from here, so SLO filters and Pareto fronts agree everywhere.

Names follow the older llm-d ``config_explorer`` analysis module so existing
notebooks keep working.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Direction = Literal["higher", "lower", "neutral"]
Kind = Literal["float", "str", "bool"]


@dataclass(frozen=True)
class Column:
    """One column of the sweep table."""

    name: str
    description: str
    unit: str = ""
    direction: Direction = "neutral"
    kind: Kind = "float"
    group: str = "metrics"


def _c(
    name: str,
    description: str,
    unit: str = "",
    direction: Direction = "neutral",
    kind: Kind = "float",
    group: str = "metrics",
) -> Column:
    return Column(name, description, unit, direction, kind, group)


_IDENTITY = (
    _c("File", "file the row was read from (path as given)", kind="str", group="run"),
    _c("Directory", "directory holding the file", kind="str", group="run"),
    _c(
        "Directory_Base",
        "directory name without the trailing load-generator pod index (_<n>)",
        kind="str",
        group="run",
    ),
    _c("Format", "detected input format", kind="str", group="run"),
    _c(
        "Report_Version",
        "llm-d benchmark report version (0.1, 0.2, 0.2.1)",
        kind="str",
        group="run",
    ),
    _c("Run_UID", "unique id of the report (llm-d v0.2+)", kind="str", group="run"),
    _c("Run_EID", "experiment id shared by the stages of one run", kind="str", group="run"),
    _c("Start", "start of the measurement, Unix epoch", "s", group="run"),
    _c("Duration", "length of the measurement", "s", group="run"),
    _c("Platform", "serving engine or its container image", kind="str", group="run"),
    _c("Workload_Generator", "load generator that produced the numbers", kind="str", group="run"),
    _c("Stage", "stage index (inference-perf) or benchmark index (GuideLLM)", group="run"),
    _c("Notes", "caveats the importer found (semicolon separated)", kind="str", group="run"),
)

_CONFIG = (
    _c("Model", "served model", kind="str", group="config"),
    _c("GPU", "accelerator, normalised (H100, A100, ...)", kind="str", group="config"),
    _c("GPU_Raw", "accelerator name as written in the source", kind="str", group="config"),
    _c("Num_GPUs", "accelerators used by the whole deployment", "GPUs", "lower", group="config"),
    _c("TP", "tensor parallel size (aggregated serving)", group="config"),
    _c("DP", "data parallel size (aggregated serving)", group="config"),
    _c("PP", "pipeline parallel size (aggregated serving)", group="config"),
    _c("EP", "expert parallel size (aggregated serving)", group="config"),
    _c("Replicas", "aggregated serving replicas", group="config"),
    _c("P_TP", "prefill tensor parallel size", group="config"),
    _c("P_DP", "prefill data parallel size", group="config"),
    _c("P_PP", "prefill pipeline parallel size", group="config"),
    _c("P_EP", "prefill expert parallel size", group="config"),
    _c("P_Replicas", "prefill replicas", group="config"),
    _c("D_TP", "decode tensor parallel size", group="config"),
    _c("D_DP", "decode data parallel size", group="config"),
    _c("D_PP", "decode pipeline parallel size", group="config"),
    _c("D_EP", "decode expert parallel size", group="config"),
    _c("D_Replicas", "decode replicas", group="config"),
    _c(
        "Is_PD",
        "prefill/decode disaggregated (at least one prefill and one decode pool)",
        kind="bool",
        group="config",
    ),
    _c("KV_Cache_Scorer_Weight", "inference-scheduler kv-cache-scorer weight", group="config"),
    _c("Queue_Scorer_Weight", "inference-scheduler queue-scorer weight", group="config"),
    _c(
        "Prefix_Cache_Scorer_Weight",
        "inference-scheduler prefix-cache-scorer weight",
        group="config",
    ),
    _c(
        "Prefix_Cache_Scorer_Block_Size", "prefix-cache-scorer block size", "tokens", group="config"
    ),
    _c(
        "Prefix_Cache_Scorer_LRU_Capacity_Per_Server",
        "prefix-cache-scorer LRU capacity",
        "blocks",
        group="config",
    ),
    _c(
        "Prefix_Cache_Scorer_Max_Blocks_To_Match",
        "prefix-cache-scorer blocks matched",
        "blocks",
        group="config",
    ),
    _c(
        "Prefix_Cache_Scorer_Mode",
        "prefix-cache-scorer mode (cache_tracking = precise)",
        kind="str",
        group="config",
    ),
)

_WORKLOAD = (
    _c("ISL", "measured mean input length, rounded", "tokens", group="workload"),
    _c("OSL", "measured mean output length, rounded", "tokens", group="workload"),
    _c("Target_ISL", "configured input length", "tokens", group="workload"),
    _c("Target_OSL", "configured output length", "tokens", group="workload"),
    _c("Max_Concurrency", "requested concurrency (inf = unlimited)", "requests", group="workload"),
    _c("Max_QPS", "requested request rate (inf = all at once)", "requests/s", group="workload"),
    _c("System_Prompt_Length", "shared prefix length", "tokens", group="workload"),
    _c(
        "Question_Length",
        "unique suffix length after the shared prefix",
        "tokens",
        group="workload",
    ),
    _c("Groups", "number of shared-prefix groups", group="workload"),
    _c("Prompts_Per_Group", "prompts per shared-prefix group", group="workload"),
)

_RESULTS = (
    _c("Total_Requests", "requests counted by the tool", "requests"),
    _c("Failures", "failed requests", "requests", "lower"),
    _c("Success_Ratio", "successful / total requests", "fraction", "higher"),
    _c("Request_Throughput", "completed requests per second", "requests/s", "higher"),
    _c("Output_Token_Throughput", "output tokens per second", "tokens/s", "higher"),
    _c("Total_Token_Throughput", "input + output tokens per second", "tokens/s", "higher"),
    _c("Input_Token_Throughput", "input tokens per second", "tokens/s", "higher"),
    _c("Thpt_per_GPU", "output tokens per second per GPU", "tokens/s/GPU", "higher"),
    _c(
        "Thpt_per_User",
        "1000 / Mean_TPOT_ms: tokens per second seen by one user",
        "tokens/s/user",
        "higher",
    ),
)

# Latency families: column stem -> (description, unit).
LATENCY_METRICS: dict[str, tuple[str, str]] = {
    "TTFT": ("time to first token", "ms"),
    "TPOT": ("time per output token, first token excluded", "ms/token"),
    "ITL": ("inter-token latency (gap between streamed chunks)", "ms/token"),
    "NTPOT": ("request latency / output tokens", "ms/token"),
    "E2EL": ("end-to-end request latency", "ms"),
}

# Statistic prefix -> description; percentile prefixes are "P<q>".
LATENCY_STATS: dict[str, str] = {
    "Mean": "mean",
    "StdDev": "standard deviation",
    "Min": "minimum",
    "P0.1": "0.1th percentile",
    "P1": "1st percentile",
    "P5": "5th percentile",
    "P10": "10th percentile",
    "P25": "25th percentile",
    "P50": "median",
    "P75": "75th percentile",
    "P90": "90th percentile",
    "P95": "95th percentile",
    "P99": "99th percentile",
    "P99.9": "99.9th percentile",
    "Max": "maximum",
}


def latency_column(stat: str, metric: str) -> str:
    """Name of a latency column, e.g. ``latency_column("P90", "TTFT") == "P90_TTFT_ms"``."""
    return f"{stat}_{metric}_ms"


_LATENCY = tuple(
    _c(
        latency_column(stat, metric),
        f"{stat_doc} {metric_doc}",
        unit,
        "neutral" if stat == "StdDev" else "lower",
    )
    for metric, (metric_doc, unit) in LATENCY_METRICS.items()
    for stat, stat_doc in LATENCY_STATS.items()
)

COLUMNS: tuple[Column, ...] = _IDENTITY + _CONFIG + _WORKLOAD + _RESULTS + _LATENCY
COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}


def direction(name: str) -> Direction:
    """Preferred direction of a column; raises ``KeyError`` for an unknown name."""
    return BY_NAME[name].direction


def columns_table() -> list[dict[str, str]]:
    """The column table as JSON-able rows (for ``--pretty``, docs and the UI)."""
    return [
        {
            "name": c.name,
            "description": c.description,
            "unit": c.unit,
            "direction": c.direction,
            "group": c.group,
        }
        for c in COLUMNS
    ]
