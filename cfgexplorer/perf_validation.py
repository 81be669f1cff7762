"""Real vLLM measurements, and what the performance model predicts for each.

The calibration CSV (:mod:`cfgexplorer.perf_calibration`) holds TensorRT-LLM
and NIM figures from lockstep closed-loop clients. This module holds the other
half: vLLM serving real, open-loop traffic, read with
:func:`cfgexplorer.benchmarks.load_paths` from files bundled in ``data/``:

- ``kubecon``: inference-perf's KubeCon NA 2025 demo, Meta-Llama-3-8B-Instruct
  on one H100 under vLLM v0.11.0, stages 0-3 (1 to 92 req/s, below the
  ~106 req/s where it saturates) and stages 4-6 (above it). The workload shares
  prompt prefixes, so its TTFT is not a clean prefill measurement: the per-token
  decode ``(E2E - TTFT) / (OSL - 1)``, E2E and throughput are the figures to judge.
- ``exp7``: llm-d-benchmark experiment 7, Llama-3.1-8B-Instruct, aggregated
  vLLM replicas (TP1) on H100 under ``vllm bench serve`` at a fixed request rate;
  the load is split evenly over the replicas.
- ``lambda``: LambdaLabs' vLLM v0.5.4 runs (2024): a burst of 10 ShareGPT
  prompts sent at once (request rate inf), predicted as one static batch; only
  TTFT and the per-token decode are comparable (the burst's requests end at
  different times, so its E2E and throughput are tail effects).

Runs the model does not cover are listed by :func:`skipped` with the reason.
Each point is predicted with random arrivals at the measured request rate per
replica (the ``lambda`` bursts as a static batch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from cfgexplorer.paths import data_dir
from cfgexplorer.roofline import AnalyticalEstimator, Estimate, EstimateRequest, Estimator

METRICS = ("ttft_ms", "itl_ms", "e2e_s", "output_tok_s")

KUBECON_DIR = "benchmarks/inference-perf/kubecon-na-2025_vllm_llama3-8b_1xH100"
EXP7_DIRS = (
    "benchmarks/vllm-benchmark/llm-d-exp-7/H100/vllm-2replicas",
    "benchmarks/vllm-benchmark/llm-d-exp-7/H100/vllm-3replicas",
)
LAMBDA_DIR = "validation/vllm-benchmark/lambdalabs"
# inference-perf KubeCon demo manifest: vLLM started with --max-num-seqs=128 (reference
# SOURCES.md section 4); the stages above ~106 req/s saturate on it.
KUBECON_MAX_NUM_SEQS = 128  # sequences
# KubeCon stages at or below this index ran below saturation (SOURCES.md: achieved rate equals
# the requested rate up to stage 3, 92.2 req/s; stages 4-6 top out at ~106 req/s).
KUBECON_LAST_UNSATURATED_STAGE = 3


@dataclass(frozen=True)
class VllmPoint:
    """One measured vLLM operating point, per replica (one TP group)."""

    id: str
    source: str  # file under data/
    model: str
    gpu: str
    tp: int
    replicas: int
    input_len: int
    output_len: int
    rate_per_replica: float | None  # requests/s sent to one replica; None for a burst
    burst: int | None  # requests sent at once (request rate inf), else None
    max_num_seqs: int | None
    saturated: bool  # the measured run was above what the server sustains
    measured: dict[str, float]  # ttft_ms, itl_ms (per-token decode), e2e_s, output_tok_s
    compared: tuple[str, ...]  # metrics the point is judged on
    note: str = ""

    @property
    def measured_concurrency(self) -> float | None:
        """Requests in flight per replica, rate x E2E (Little's law)."""
        if self.rate_per_replica is None or "e2e_s" not in self.measured:
            return None
        return self.rate_per_replica * self.measured["e2e_s"]


def _table(sub: str) -> Any:
    from cfgexplorer.benchmarks import load_paths

    return load_paths([str(data_dir() / sub)]).table.sort_values("File").reset_index(drop=True)


def _kubecon() -> list[VllmPoint]:
    points = []
    for _, r in _table(KUBECON_DIR).iterrows():
        stage = int(r["Stage"])
        osl = float(r["OSL"])
        e2e_ms = float(r["Mean_E2EL_ms"])
        ttft_ms = float(r["Mean_TTFT_ms"])
        rate = float(r["Max_QPS"])  # the offered load (above saturation, more than completes)
        saturated = stage > KUBECON_LAST_UNSATURATED_STAGE
        points.append(
            VllmPoint(
                id=f"kubecon_s{stage}",
                source=f"{KUBECON_DIR}/stage_{stage}_lifecycle_metrics.json",
                model=str(r["Model"]),
                gpu="H100",
                tp=1,
                replicas=1,
                input_len=round(float(r["ISL"])),
                output_len=round(osl),
                rate_per_replica=rate,
                burst=None,
                max_num_seqs=KUBECON_MAX_NUM_SEQS,
                saturated=saturated,
                measured={
                    "ttft_ms": ttft_ms,
                    "itl_ms": (e2e_ms - ttft_ms) / (osl - 1),
                    "e2e_s": e2e_ms / 1e3,
                    "output_tok_s": float(r["Output_Token_Throughput"]),
                },
                compared=() if saturated else ("itl_ms", "e2e_s", "output_tok_s"),
                note="saturated: queue grows during the stage"
                if saturated
                else "shared-prefix prompts: TTFT shown, not judged",
            )
        )
    return points


def _exp7() -> list[VllmPoint]:
    points = []
    for sub in EXP7_DIRS:
        for _, r in _table(sub).iterrows():
            replicas = int(r["Replicas"])
            osl = int(r["OSL"])
            ttft_ms = float(r["Mean_TTFT_ms"])
            tpot_ms = float(r["Mean_TPOT_ms"])
            points.append(
                VllmPoint(
                    id=f"exp7_h100_{replicas}rep",
                    source=f"{sub}/{str(r['File']).rsplit('/', 1)[-1]}",
                    model=str(r["Model"]),
                    gpu="H100",
                    tp=int(r["TP"]),
                    replicas=replicas,
                    input_len=int(r["ISL"]),
                    output_len=osl,
                    rate_per_replica=float(r["Max_QPS"]) / replicas,  # the load sent
                    burst=None,
                    max_num_seqs=None,
                    saturated=False,
                    measured={
                        "ttft_ms": ttft_ms,
                        "itl_ms": tpot_ms,
                        # vLLM's TPOT is (E2E - TTFT) / (OSL - 1) per request; E2E is not saved.
                        "e2e_s": (ttft_ms + (osl - 1) * tpot_ms) / 1e3,
                        "output_tok_s": float(r["Output_Token_Throughput"]) / replicas,
                    },
                    compared=METRICS,
                    note="client arrivals near-periodic (burstiness 100), split over replicas",
                )
            )
    return points


def _lambda() -> list[VllmPoint]:
    points = []
    for _, r in _table(LAMBDA_DIR).iterrows():
        model = str(r["Model"])
        tp = int(r["TP"])
        size = "70b" if "70B" in model else "8b"
        points.append(
            VllmPoint(
                id=f"lambda_{size}_fp8_tp{tp}",
                source=f"{LAMBDA_DIR}/{str(r['File']).split(LAMBDA_DIR + '/', 1)[-1]}",
                model=model,
                gpu="H100",
                tp=tp,
                replicas=1,
                input_len=int(r["ISL"]),
                output_len=int(r["OSL"]),
                rate_per_replica=None,
                burst=int(r["Total_Requests"]),
                max_num_seqs=None,
                saturated=False,
                measured={
                    # The mean counts requests that streamed nothing as 0 ms; the median does not.
                    "ttft_ms": float(r["P50_TTFT_ms"]),
                    "itl_ms": float(r["Mean_TPOT_ms"]),
                },
                compared=("ttft_ms", "itl_ms"),
                note="vLLM v0.5.4 (2024), burst of 10 at once; median TTFT, mean TPOT",
            )
        )
    return points


def load_points() -> list[VllmPoint]:
    """Every usable real vLLM measurement bundled in ``data/``."""
    return [*_kubecon(), *_exp7(), *_lambda()]


def skipped() -> dict[str, str]:
    """Real vLLM runs in the reference samples the model does not cover, with the reason."""
    pd = (
        "prefill/decode disaggregation (llm-d P/D with NIXL KV transfer, --enforce-eager "
        "pods): the model serves one aggregated engine per replica"
    )
    return {
        "llm-d-exp-7/A100/llm-d-2p1d": pd + "; the only A100 run of exp-7 (no aggregated one)",
        "llm-d-exp-7/H100/llm-d-1p1d": pd,
        "llm-d-exp-7/H100/llm-d-2p1d": pd,
    }


def request_for(point: VllmPoint, engine: str = "vllm") -> EstimateRequest:
    """The estimate request that reproduces one measured point."""
    from cfgexplorer import load_model
    from cfgexplorer.gpus import get_gpu

    common: dict[str, Any] = {
        "spec": load_model(point.model),
        "gpu": get_gpu(point.gpu),
        "input_len": point.input_len,
        "output_len": point.output_len,
        "tp": point.tp,
        "engine": engine,
        "max_num_seqs": point.max_num_seqs,
    }
    if point.burst is not None:
        return EstimateRequest(
            **common,
            concurrency=point.burst,
            batching="static",
            kv_max_concurrency=math.inf,
        )
    return EstimateRequest(**common, request_rate=point.rate_per_replica, arrivals="random")


@dataclass(frozen=True)
class Validation:
    """Predicted against measured for one point; ratio = measured / predicted."""

    point: VllmPoint
    estimate: Estimate
    predicted: dict[str, float]
    ratio: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        p = self.point
        return {
            "id": p.id,
            "source": p.source,
            "model": p.model,
            "gpu": p.gpu,
            "tp": p.tp,
            "replicas": p.replicas,
            "isl": p.input_len,
            "osl": p.output_len,
            "rate_per_replica": None
            if p.rate_per_replica is None
            else round(p.rate_per_replica, 4),
            "burst": p.burst,
            "measured_concurrency": None
            if p.measured_concurrency is None
            else round(p.measured_concurrency, 2),
            "predicted_concurrency": round(self.estimate.concurrency, 2),
            "saturated_measured": p.saturated,
            "saturated_predicted": self.estimate.saturated,
            "measured": {k: round(v, 4) for k, v in p.measured.items()},
            "predicted": {k: round(v, 4) for k, v in self.predicted.items()},
            "ratio": {k: round(v, 4) for k, v in self.ratio.items()},
            "compared": list(p.compared),
            "note": p.note,
        }


def validate(estimator: Estimator | None = None, engine: str = "vllm") -> list[Validation]:
    """Predict every point and pair it with its measurement."""
    est = estimator or AnalyticalEstimator()
    out = []
    for point in load_points():
        e = est.estimate(request_for(point, engine))
        predicted = {
            "ttft_ms": e.ttft_ms,
            "itl_ms": e.itl_ms,
            "e2e_s": e.e2e_s,
            "output_tok_s": e.output_tok_s,
        }
        ratio = {k: point.measured[k] / predicted[k] for k in point.measured}
        out.append(Validation(point, e, predicted, ratio))
    return out


def summary(validations: list[Validation]) -> dict[str, dict[str, float]]:
    """Per metric, over the points judged on it: mean and worst absolute error, and bias."""
    out = {}
    for metric in METRICS:
        rows = [v for v in validations if metric in v.point.compared]
        if not rows:
            continue
        errors = [abs(v.predicted[metric] / v.point.measured[metric] - 1) for v in rows]
        logs = [math.log(v.ratio[metric]) for v in rows]
        out[metric] = {
            "points": len(rows),
            "mape_pct": round(100 * sum(errors) / len(errors), 1),
            "max_ape_pct": round(100 * max(errors), 1),
            "geo_mean_ratio": round(math.exp(sum(logs) / len(logs)), 3),
        }
    return out
