"""vLLM ``benchmark_serving.py`` / ``vllm bench serve --save-result`` JSON (one run per file).

Layout and quirks: FORMATS.md section 9.1. Latency keys are always in ms; the
per-request ``ttfts``/``itls`` arrays are in seconds and are not used for the
headline numbers. The file holds no deployment information.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from typing import Any

from cfgexplorer.benchmarks.columns import LATENCY_STATS, latency_column
from cfgexplorer.benchmarks.common import (
    Row,
    add_note,
    as_float,
    finalize_row,
    is_known,
    metric_number,
    put,
)
from cfgexplorer.errors import ReportFileError

FORMAT = "vllm-bench"

_LATENCY_KEY = re.compile(r"^(mean|median|std|p[\d.]+)_(ttft|tpot|itl|e2el|latency)_ms$")
_METRICS = {"ttft": "TTFT", "tpot": "TPOT", "itl": "ITL", "e2el": "E2EL", "latency": "E2EL"}
_STATS = {"mean": "Mean", "median": "P50", "std": "StdDev"}


def looks_like(doc: Any) -> bool:
    """A flat object with vLLM's run keys and at least one of its metric keys."""
    if not isinstance(doc, Mapping):
        return False
    has_run = "num_prompts" in doc or "completed" in doc
    has_metrics = "request_throughput" in doc or "mean_ttft_ms" in doc
    return has_run and has_metrics and ("model_id" in doc or "backend" in doc)


def _percentile_stat(token: str) -> str | None:
    if token in _STATS:
        return _STATS[token]
    number = token[1:]
    stat = f"P{number}"
    return stat if stat in LATENCY_STATS else None


def _start(date: Any) -> float:
    """``YYYYMMDD-HHMMSS`` local wall-clock time, read as UTC (FORMATS.md P16: approximate)."""
    if not isinstance(date, str):
        return math.nan
    try:
        stamp = dt.datetime.strptime(date.strip(), "%Y%m%d-%H%M%S")
    except ValueError:
        return math.nan
    return stamp.replace(tzinfo=dt.UTC).timestamp()


def import_vllm(doc: Mapping[str, Any]) -> list[Row]:
    """One row from a vLLM benchmark result."""
    row: Row = {"Workload_Generator": "vllm-benchmark", "Stage": 0.0}
    if doc.get("model_id"):
        row["Model"] = str(doc["model_id"])
    put(row, "Start", _start(doc.get("date")))
    put(row, "Duration", as_float(doc.get("duration")))

    prompts = as_float(doc.get("num_prompts"))
    completed = as_float(doc.get("completed"))
    failed = as_float(doc.get("failed"))
    if not is_known(failed) and is_known(prompts) and is_known(completed):
        failed = prompts - completed
    put(row, "Total_Requests", prompts if is_known(prompts) else completed)
    put(row, "Failures", failed)
    if is_known(completed) and completed > 0:
        put(row, "ISL", as_float(doc.get("total_input_tokens")) / completed)
        put(row, "OSL", as_float(doc.get("total_output_tokens")) / completed)

    rates = {
        key: metric_number(doc.get(key), key)
        for key in (
            "request_throughput",
            "output_throughput",
            "input_throughput",
            "total_token_throughput",
        )
    }
    put(row, "Request_Throughput", rates["request_throughput"])
    put(row, "Output_Token_Throughput", rates["output_throughput"])
    put(row, "Input_Token_Throughput", rates["input_throughput"])
    total = rates["total_token_throughput"]
    if not is_known(total):
        # Old files lack the total; it is input + output tokens over the same duration.
        total = rates["input_throughput"] + rates["output_throughput"]
    put(row, "Total_Token_Throughput", total)

    put(row, "Max_QPS", as_float(doc.get("request_rate")))
    if "max_concurrency" in doc:
        limit = doc.get("max_concurrency")
        put(row, "Max_Concurrency", math.inf if limit is None else as_float(limit))

    for key, value in doc.items():
        match = _LATENCY_KEY.match(str(key))
        if not match:
            continue
        stat = _percentile_stat(match.group(1))
        if stat is None:
            continue
        number = metric_number(value, str(key))
        if is_known(number):
            row.setdefault(latency_column(stat, _METRICS[match.group(2)]), number)

    ttfts = doc.get("ttfts")
    if isinstance(ttfts, list) and ttfts:
        silent = sum(1 for t in ttfts if as_float(t) == 0.0)
        if silent:
            add_note(row, f"{silent} requests streamed no tokens; mean TTFT includes their zeros")
    if not is_known(row.get("Mean_TTFT_ms")) and not is_known(row.get("Request_Throughput")):
        raise ReportFileError("missing metrics: no TTFT and no request throughput")
    return [finalize_row(row)]
