"""Measured vLLM start-up memory rows, and the planner's prediction for each.

The rows live in ``data/measurements/`` (copied from vLLM logs; see the
README there). :func:`compare` plans every row with the engine profile of its
release and returns predicted and measured terms side by side; the report
script and the tests both use it.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, replace
from typing import Any

from cfgexplorer.errors import UserError
from cfgexplorer.gpus import get_gpu
from cfgexplorer.memory import Deployment, plan
from cfgexplorer.paths import data_dir
from cfgexplorer.sources import load_model


@dataclass(frozen=True)
class Row:
    """One measured start-up: the deployment and what vLLM printed (GiB per GPU)."""

    case: str
    profile: str
    model: str
    gpu: str
    deployment: Deployment
    status: str
    weights_gib: float | None
    activation_gib: float | None
    non_torch_gib: float | None
    kv_pool_gib: float | None
    kv_tokens: int | None
    max_concurrency: float | None


GPU_TOTAL_GIB_0_11 = 79.18  # H100 total printed by vLLM 0.11 (vllm_startup_memory.csv)

# GPUs visible to the engine where a log shows fewer than the deployment needs:
# the DP2 run saw torch.accelerator.device_count() == 1 and failed on it.
GPUS_VISIBLE = {"meta-llama-llama-3-1-8b---h100-80gb--tp1pp1dp2--8192.FAILED.log": 1}


def _f(value: str) -> float | None:
    return float(value) if value not in ("", None) else None


def rows() -> list[Row]:
    """Every measured row of both releases."""
    out = []
    base = data_dir() / "measurements"
    with (base / "vllm_0.19_h100_memory.csv").open() as fh:
        for r in csv.DictReader(fh):
            quant = r["quantization"]
            # Failed rows carry 1s in the parallelism columns; the log name has the truth.
            par = dict(re.findall(r"(tp|pp|dp)(\d+)", r["log_file"]))
            out.append(
                Row(
                    case=r["log_file"],
                    profile="vllm-0.19",
                    model=r["model"],
                    gpu="H100",
                    deployment=Deployment(
                        tp=int(par.get("tp", r["tp"])),
                        pp=int(par.get("pp", r["pp"])),
                        dp=int(par.get("dp", r["dp"])),
                        gpu_memory_utilization=float(r["gpu_memory_utilization"]),
                        max_model_len=int(r["max_model_len"]),
                        dtype=r["dtype"].replace("torch.", ""),
                        quantization="fp8" if quant == "fp8" else None,
                        kv_cache_dtype=r["kv_cache_dtype"],
                        gpus_available=GPUS_VISIBLE.get(r["log_file"]),
                    ),
                    status=r["status"],
                    weights_gib=_f(r["weights_memory_gib"]),
                    activation_gib=_f(r["activation_memory_gib"]),
                    non_torch_gib=_f(r["non_torch_forward_gib"]),
                    kv_pool_gib=_f(r["kv_cache_memory_gib"]),
                    kv_tokens=int(r["kv_cache_tokens"]) if r["kv_cache_tokens"] else None,
                    max_concurrency=_f(r["max_concurrency"]),
                )
            )
    with (base / "vllm_startup_memory.csv").open() as fh:
        for r in csv.DictReader(fh):
            out.append(
                Row(
                    case=r["case"],
                    profile="vllm-0.11",
                    model=r["model_id"],
                    gpu="H100",
                    deployment=Deployment(
                        tp=int(r["tp"]),
                        gpu_memory_utilization=float(r["gpu_memory_utilization"]),
                        max_model_len=int(r["max_model_len"]),
                        kv_cache_dtype=r["kv_cache_dtype"],
                        block_size=128,
                    ),
                    status=r["status"],
                    weights_gib=_f(r["weights_gib_per_gpu"]),
                    activation_gib=_f(r["peak_activation_gib"]),
                    non_torch_gib=_f(r["non_torch_gib"]),
                    kv_pool_gib=_f(r["available_kv_gib"]),
                    kv_tokens=None,
                    max_concurrency=None,
                )
            )
    return out


def compare(row: Row) -> dict[str, Any]:
    """Plan one row and put prediction and measurement side by side."""
    gpu = get_gpu(row.gpu)
    if row.profile == "vllm-0.11":
        # That release's device reported 79.18 GiB (see the measurements README).
        gpu = replace(gpu, memory_gib_reported=GPU_TOTAL_GIB_0_11)
    result: dict[str, Any] = {
        "case": row.case,
        "model": row.model,
        "status": row.status,
        "profile": row.profile,
    }
    try:
        spec = load_model(row.model)
        p = plan(spec, gpu, row.deployment, row.profile)
    except UserError as exc:
        result.update(predicted_fits=False, error=str(exc))
        return result
    # Under PP the CSV mixes workers: "Available KV cache memory" is printed by stage 0,
    # while the profiling line it took weights and activation from may be any stage's.
    stage = p.stages[0]
    kv_stage = p.stages[0]
    if row.weights_gib is not None and len(p.stages) > 1:
        stage = min(p.stages, key=lambda s: (abs(s.weights_gib - row.weights_gib), s.stage))
    result.update(
        predicted_fits=p.fits,
        problems=p.problems,
        stage=stage.stage,
        weights=(stage.weights_gib, row.weights_gib),
        activation=(stage.activation_gib, row.activation_gib),
        non_torch=(stage.non_torch_gib, row.non_torch_gib),
        kv_pool=(kv_stage.kv_pool_gib, row.kv_pool_gib),
        kv_tokens=(p.kv_tokens, row.kv_tokens),
        max_concurrency=(p.max_concurrency, row.max_concurrency),
    )
    return result
