"""inference-perf lifecycle metrics (``stage_<N>_lifecycle_metrics.json``): one row per stage.

Layout: FORMATS.md 9.3. The native file has no units field; inference-perf
writes every latency in seconds. The model and workload live in the sibling
``config.yaml``, which the loader passes in when it is there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from cfgexplorer.benchmarks.common import (
    Row,
    add_note,
    as_float,
    dig,
    finalize_row,
    is_known,
    put,
    put_stats,
    put_throughputs,
)
from cfgexplorer.benchmarks.llmd_report import shared_prefix_data
from cfgexplorer.errors import ReportFileError

FORMAT = "inference-perf"

# inference-perf lifecycle latencies are seconds (s/token per token); the file has no units
# field (kubernetes-sigs/inference-perf reportgen, FORMATS.md 9.3).
INFERENCE_PERF_LATENCY_TO_MS = 1000.0

CONFIG_FILE_NAME = "config.yaml"  # the sibling run config the llm-d harness also reads

_STAGE_FILE = re.compile(r"^stage_(\d+)_lifecycle_metrics\.json$")
_LATENCIES = {
    "time_to_first_token": "TTFT",
    "time_per_output_token": "TPOT",
    "inter_token_latency": "ITL",
    "normalized_time_per_output_token": "NTPOT",
    "request_latency": "E2EL",
}


def looks_like(doc: Any) -> bool:
    """An object with ``load_summary``, ``successes`` and ``failures``."""
    return isinstance(doc, Mapping) and {"load_summary", "successes"} <= set(doc)


def import_inference_perf(
    doc: Mapping[str, Any], file_name: str, config: Mapping[str, Any] | None
) -> list[Row]:
    """One row from a stage lifecycle file; ``config`` is the parsed sibling config.yaml."""
    if file_name.startswith("summary_"):
        raise ReportFileError("summary file merges all stages; the stage files are used")
    if "session_lifecycle" in file_name:
        raise ReportFileError("a session-lifecycle file has no request metrics")

    row: Row = {"Workload_Generator": "inference-perf"}
    match = _STAGE_FILE.match(file_name)
    if match:
        row["Stage"] = float(match.group(1))
    else:
        add_note(row, "stage number unknown: file is not named stage_<N>_lifecycle_metrics.json")

    summary = doc.get("load_summary") or {}
    successes = doc.get("successes") or {}
    put(row, "Duration", as_float(summary.get("send_duration")))

    ok = as_float(successes.get("count"))
    failed = as_float(dig(doc, "failures", "count"))
    put(row, "Failures", failed)
    if is_known(ok):
        row["Total_Requests"] = ok + (failed if is_known(failed) else 0.0)
    put(row, "ISL", as_float(dig(successes, "prompt_len", "mean")))
    put(row, "OSL", as_float(dig(successes, "output_len", "mean")))

    throughput = successes.get("throughput") or {}
    put_throughputs(row, throughput)

    latency = successes.get("latency") or {}
    for block, metric in _LATENCIES.items():
        put_stats(row, metric, latency.get(block), INFERENCE_PERF_LATENCY_TO_MS)
    if not is_known(row.get("Mean_TTFT_ms")) and not is_known(row.get("Output_Token_Throughput")):
        raise ReportFileError("missing metrics: no successful requests with latency or throughput")

    _load(row, summary, config)
    if config:
        model = dig(config, "server", "model_name") or dig(
            config, "tokenizer", "pretrained_model_name_or_path"
        )
        if model:
            row["Model"] = str(model)
        shared_prefix_data(config.get("data"), row)
    else:
        add_note(row, f"no {CONFIG_FILE_NAME} beside the file: model and workload unknown")
    return [finalize_row(row)]


def _load(row: Row, summary: Mapping[str, Any], config: Mapping[str, Any] | None) -> None:
    """Rate or concurrency: concurrent stages put the request count in requested_rate."""
    load_type = str(dig(config, "load", "type") or "")
    concurrency = as_float(summary.get("concurrency"))
    stage = row.get("Stage")
    stages = dig(config, "load", "stages") or []
    if not is_known(concurrency) and load_type == "concurrent" and is_known(stage):
        concurrency = as_float(dig(stages, int(stage), "concurrency_level"))
    if load_type == "concurrent" or is_known(concurrency):
        put(row, "Max_Concurrency", concurrency)
        return
    put(row, "Max_QPS", as_float(summary.get("requested_rate")))
