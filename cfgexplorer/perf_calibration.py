"""Measured serving performance, and the performance model's prediction for each row.

The rows (``data/measurements/serving_calibration.csv``) are NVIDIA's published
TensorRT-LLM 0.9 (static batching, gptSessionBenchmark) and NIM (TensorRT-LLM
backend, GenAI-Perf closed-loop concurrency) figures. :func:`compare` predicts
every row with ``engine="trtllm"`` and the row's batching mode; :func:`band`
turns the residuals into the multiplicative error band that
:data:`cfgexplorer.roofline.ERROR_BAND` stores.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from typing import Any

from cfgexplorer.paths import data_dir
from cfgexplorer.roofline import (
    BAND_QUANTILES,
    AnalyticalEstimator,
    Estimate,
    EstimateRequest,
    Estimator,
)

CSV_NAME = "serving_calibration.csv"
METRICS = ("ttft_ms", "itl_ms", "e2e_s", "output_tok_s")


@dataclass(frozen=True)
class PerfRow:
    """One measured operating point of the calibration CSV."""

    id: str
    model: str
    engine: str
    gpu: str
    tp: int
    weights: str
    kv_dtype: str
    input_len: int
    output_len: int
    concurrency: int
    static: bool
    quality: str
    queueing: bool  # the notes say concurrency exceeded the engine's batch (not modelled)
    measured: dict[str, float]


def load_rows() -> list[PerfRow]:
    """Read the calibration CSV shipped in ``data/measurements/``."""
    path = data_dir() / "measurements" / CSV_NAME
    rows = []
    with path.open(newline="", encoding="utf-8") as fh:
        for raw in csv.DictReader(fh):
            notes = raw["notes"]
            quality = notes.split(";", 1)[0].removeprefix("quality=").strip()
            rows.append(
                PerfRow(
                    id=raw["id"],
                    model=raw["model_id"],
                    engine=raw["engine"],
                    gpu=raw["gpu"],
                    tp=int(raw["tp"]),
                    weights=raw["dtype_weights"],
                    kv_dtype=raw["kv_dtype"] or "",
                    input_len=int(raw["input_len"]),
                    output_len=int(raw["output_len"]),
                    concurrency=int(raw["concurrency"]),
                    static="static batching" in raw["engine"],
                    quality=quality,
                    queueing="queueing" in notes,
                    measured={
                        "ttft_ms": float(raw["ttft_ms"]),
                        "itl_ms": float(raw["itl_ms"]),
                        "e2e_s": float(raw["e2e_ms"]) / 1e3,
                        "output_tok_s": float(raw["output_tok_s"]),
                    },
                )
            )
    return rows


def request_for(row: PerfRow, engine: str = "trtllm") -> EstimateRequest:
    """The estimate request that reproduces one calibration row."""
    from cfgexplorer import load_model
    from cfgexplorer.gpus import get_gpu

    spec = load_model(row.model)
    kv = "fp8" if row.kv_dtype == "fp8" else "auto"
    return EstimateRequest(
        spec=spec,
        gpu=get_gpu(row.gpu),
        input_len=row.input_len,
        output_len=row.output_len,
        concurrency=row.concurrency,
        tp=row.tp,
        quantization="fp8" if row.weights == "fp8" else None,
        kv_cache_dtype=kv,
        engine=engine,
        batching="static" if row.static else "continuous",
        arrivals="synchronized",  # NIM's GenAI-Perf and gptSessionBenchmark: lockstep clients
        kv_max_concurrency=float("inf"),  # measured rows ran; capacity is not in question
    )


@dataclass(frozen=True)
class Comparison:
    """Predicted against measured for one row; ratio = measured / predicted."""

    row: PerfRow
    estimate: Estimate
    predicted: dict[str, float]
    ratio: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.row.id,
            "gpu": self.row.gpu,
            "tp": self.row.tp,
            "weights": self.row.weights,
            "isl": self.row.input_len,
            "osl": self.row.output_len,
            "concurrency": self.row.concurrency,
            "batching": "static" if self.row.static else "continuous",
            "measured": self.row.measured,
            "predicted": {k: round(v, 4) for k, v in self.predicted.items()},
            "ratio": {k: round(v, 4) for k, v in self.ratio.items()},
        }


def compare(estimator: Estimator | None = None, engine: str = "trtllm") -> list[Comparison]:
    """Predict every calibration row and pair it with its measurement."""
    est = estimator or AnalyticalEstimator()
    out = []
    for row in load_rows():
        e = est.estimate(request_for(row, engine))
        predicted = {
            "ttft_ms": e.ttft_ms,
            "itl_ms": e.itl_ms,
            "e2e_s": e.e2e_s,
            "output_tok_s": e.output_tok_s,
        }
        ratio = {k: row.measured[k] / predicted[k] for k in METRICS}
        out.append(Comparison(row, e, predicted, ratio))
    return out


def quantile(values: list[float], q: float) -> float:
    """Linear-interpolated quantile (numpy's default method) of a non-empty list."""
    data = sorted(values)
    pos = (len(data) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def band(comparisons: list[Comparison]) -> dict[str, tuple[float, float]]:
    """Multiplicative error band per metric: quantiles of measured / predicted (log space)."""
    out = {}
    for metric in METRICS:
        logs = [math.log(c.ratio[metric]) for c in comparisons]
        lo = math.exp(quantile(logs, BAND_QUANTILES[0]))
        hi = math.exp(quantile(logs, BAND_QUANTILES[1]))
        out[metric] = (round(lo, 2), round(hi, 2))
    return out


def summary(comparisons: list[Comparison]) -> dict[str, dict[str, float]]:
    """Per metric: mean and median absolute percentage error, worst error, and the bias."""
    out = {}
    for metric in METRICS:
        errors = [abs(c.predicted[metric] / c.row.measured[metric] - 1) for c in comparisons]
        logs = [math.log(c.ratio[metric]) for c in comparisons]
        out[metric] = {
            "rows": len(comparisons),
            "mape_pct": round(100 * sum(errors) / len(errors), 1),
            "median_ape_pct": round(100 * quantile(errors, 0.5), 1),
            "max_ape_pct": round(100 * max(errors), 1),
            "geo_mean_ratio": round(math.exp(sum(logs) / len(logs)), 3),
        }
    return out
