"""GuideLLM result JSON/YAML: every element of ``benchmarks`` is one row.

Both generations are read (FORMATS.md 9.2): report schema v2 (``metadata.version
== 2``, run config under ``config.spec``, per-benchmark ``config.strategy``) and
the older layouts (per-benchmark ``args``/``worker``/``request_loader``, or a
run-wide ``args``). Keys are probed, never assumed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import yaml

from cfgexplorer.benchmarks.common import (
    Row,
    as_float,
    dig,
    finalize_row,
    is_known,
    metric_number,
    put,
    put_stats,
)
from cfgexplorer.errors import ReportFileError

FORMAT = "guidellm"

# GuideLLM metric -> (our stem, factor to ms). request_latency is in seconds (FORMATS.md P3).
_LATENCIES = {
    "time_to_first_token_ms": ("TTFT", 1.0),
    "time_per_output_token_ms": ("TPOT", 1.0),
    "inter_token_latency_ms": ("ITL", 1.0),
    "request_latency": ("E2EL", 1000.0),
}
_RATES = {
    "requests_per_second": "Request_Throughput",
    "output_tokens_per_second": "Output_Token_Throughput",
    "tokens_per_second": "Total_Token_Throughput",
    "prompt_tokens_per_second": "Input_Token_Throughput",
}


def looks_like(doc: Any) -> bool:
    """A mapping with a non-empty ``benchmarks`` list of mappings."""
    if not isinstance(doc, Mapping):
        return False
    benchmarks = doc.get("benchmarks")
    return (
        isinstance(benchmarks, list)
        and bool(benchmarks)
        and all(isinstance(b, Mapping) for b in benchmarks)
    )


def _parse_data_string(text: str) -> dict[str, Any]:
    """``prompt_tokens=256,output_tokens=128`` or a YAML/JSON mapping, as a dict."""
    text = text.strip()
    if "=" in text and not text.startswith("{"):
        pairs = (part.split("=", 1) for part in text.split(",") if "=" in part)
        return {k.strip(): v.strip() for k, v in pairs}
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _data_spec(doc: Mapping[str, Any], bench: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = dig(doc, "config", "spec", "data", 0)
    if isinstance(spec, Mapping):
        return spec
    for candidate in (dig(bench, "request_loader", "data"), dig(doc, "args", "data", 0)):
        if isinstance(candidate, Mapping):
            return candidate
        if isinstance(candidate, str):
            return _parse_data_string(candidate)
    return {}


def _mean(metrics: Mapping[str, Any], name: str) -> float:
    return metric_number(dig(metrics, name, "successful", "mean"), f"{name} mean")


def _strategy(row: Row, strategy: Any) -> None:
    if not isinstance(strategy, Mapping):
        return
    kind = str(strategy.get("type_") or strategy.get("kind") or "")
    if kind in ("constant", "poisson", "async"):
        put(row, "Max_QPS", as_float(strategy.get("rate")))
    elif kind == "concurrent":
        put(row, "Max_Concurrency", as_float(strategy.get("streams")))
    elif kind == "synchronous":
        row["Max_Concurrency"] = 1.0
    elif kind == "throughput":
        cap = as_float(strategy.get("max_concurrency"))
        put(row, "Max_Concurrency", cap if is_known(cap) else math.inf)


def import_guidellm(doc: Mapping[str, Any]) -> list[Row]:
    """One row per benchmark in a GuideLLM results file."""
    rows = []
    for index, bench in enumerate(doc["benchmarks"]):
        row: Row = {"Workload_Generator": "guidellm", "Stage": float(index)}
        model = (
            dig(bench, "config", "backend", "model")
            or dig(bench, "worker", "backend_model")
            or dig(doc, "config", "spec", "backend", "model")
            or dig(doc, "args", "model")
        )
        if model:
            row["Model"] = str(model)
        put(row, "Start", as_float(bench.get("start_time")))
        put(row, "Duration", as_float(bench.get("duration")))
        _strategy(row, dig(bench, "config", "strategy") or dig(bench, "args", "strategy"))

        spec = _data_spec(doc, bench)
        put(row, "Target_ISL", as_float(spec.get("prompt_tokens")))
        put(row, "Target_OSL", as_float(spec.get("output_tokens")))
        bucket = dig(spec, "prefix_buckets", 0)
        prefix_tokens = as_float(dig(bucket, "prefix_tokens") or spec.get("prefix_tokens"))
        if is_known(prefix_tokens) and prefix_tokens > 0:
            row["System_Prompt_Length"] = prefix_tokens
            row["Groups"] = 1.0
            put(
                row,
                "Prompts_Per_Group",
                as_float(dig(bucket, "prefix_count") or spec.get("prefix_count")),
            )

        metrics = bench.get("metrics") or {}
        totals = metrics.get("request_totals") or bench.get("request_totals") or {}
        put(row, "Total_Requests", as_float(totals.get("total")))
        put(row, "Failures", as_float(totals.get("errored")))
        put(row, "ISL", _mean(metrics, "prompt_token_count"))
        put(row, "OSL", _mean(metrics, "output_token_count"))
        for name, column in _RATES.items():
            put(row, column, _mean(metrics, name))
        for name, (metric, factor) in _LATENCIES.items():
            put_stats(row, metric, dig(metrics, name, "successful"), factor)
        if not is_known(row.get("Mean_TTFT_ms")) and not is_known(
            row.get("Output_Token_Throughput")
        ):
            raise ReportFileError(f"missing metrics: benchmark {index} has no TTFT or throughput")
        rows.append(finalize_row(row))
    return rows
