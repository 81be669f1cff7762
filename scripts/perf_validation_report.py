"""Predicted against measured serving performance on every usable real vLLM measurement.

Usage::

    python scripts/perf_validation_report.py              # table and error summary
    python scripts/perf_validation_report.py --json       # the same as JSON
    python scripts/perf_validation_report.py --fit        # refit the vLLM engine factor
    python scripts/perf_validation_report.py --engine trtllm   # the TensorRT-calibrated model

Every open-loop point is predicted with random arrivals at its measured request rate per
replica (``--engine vllm --arrivals random --request-rate R``); the LambdaLabs bursts as one
static batch. Throughput of an unsaturated open-loop point is the offered rate x OSL on both
sides, so it only checks that the model does not call the point saturated.

``--fit`` measures the vLLM factor relative to the TensorRT-calibrated model: the frontend
time from the KubeCon stage-0 TTFT (one request in flight, a 204-token prompt), then the
prefill and decode multipliers that minimise the squared log error of TTFT, ITL and E2E over
the judged 2025 points (KubeCon stages 0-3, exp-7 H100). The 2024 LambdaLabs runs (vLLM
v0.5.4) are shown but not fitted.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import replace
from types import MappingProxyType

from cfgexplorer import perf_validation as pv
from cfgexplorer import roofline as rl

# The metrics the fit weighs: throughput of an open-loop point is fixed by its rate.
FIT_METRICS = ("ttft_ms", "itl_ms", "e2e_s")
# Grid of the fit: multipliers from 0.7 to 1.4, first every 0.05, then every 0.01 around the
# best coarse point (numerical choice; the data do not resolve finer steps).
COARSE = [round(0.70 + 0.05 * i, 2) for i in range(15)]
FINE_STEP = 0.01


def _print_table(validations: list[pv.Validation]) -> None:
    header = f"{'id':20} {'isl':>5} {'osl':>4} {'rate/rep':>8} {'conc m/p':>13}  " + "  ".join(
        f"{m + ' meas/pred err':>30}" for m in pv.METRICS
    )
    print(header)
    for v in validations:
        p = v.point
        rate = "burst" if p.rate_per_replica is None else f"{p.rate_per_replica:.3g}"
        mc = p.measured_concurrency
        conc = f"{mc:6.1f}/{v.estimate.concurrency:<6.1f}" if mc else f"{'-':>6}/{p.burst:<6}"
        cells = []
        for m in pv.METRICS:
            if m not in p.measured:
                cells.append(f"{'-':>30}")
                continue
            err = v.predicted[m] / p.measured[m] - 1
            mark = " " if m in p.compared else "~"
            cells.append(f"{p.measured[m]:>10.4g} /{v.predicted[m]:>9.4g} {err:>+7.0%}{mark}")
        flag = "  SATURATED(pred)" if v.estimate.saturated else ""
        print(
            f"{p.id:20} {p.input_len:>5} {p.output_len:>4} {rate:>8} {conc:>13}  "
            + "  ".join(cells)
            + flag
        )
    print(
        "err = predicted / measured - 1; ~ = shown, not judged (see the point's note); "
        "conc = requests in flight per replica, measured (rate x E2E) / predicted"
    )


def _print_summary(title: str, summary: dict[str, dict[str, float]]) -> None:
    print(f"\n{title}")
    for metric, s in summary.items():
        print(
            f"  {metric:13} points {s['points']:>2}  MAPE {s['mape_pct']:>5.1f}%  "
            f"max {s['max_ape_pct']:>5.1f}%  geo-mean measured/predicted {s['geo_mean_ratio']:.3f}"
        )


def _constants(prefill: float, decode: float, frontend_ms: float) -> rl.ModelConstants:
    engines = dict(rl.ENGINES)
    engines["vllm"] = replace(
        engines["vllm"], prefill_time=prefill, decode_time=decode, frontend_ttft_ms=frontend_ms
    )
    return replace(rl.DEFAULT_CONSTANTS, engines=MappingProxyType(engines))


def _fit_points() -> list[pv.VllmPoint]:
    return [p for p in pv.load_points() if p.compared and not p.id.startswith("lambda")]


def _frontend(prefill: float, decode: float, stage0: pv.VllmPoint) -> float:
    """The frontend time that makes the stage-0 TTFT come out as measured."""
    est = rl.AnalyticalEstimator(constants=_constants(prefill, decode, 0.0))
    return stage0.measured["ttft_ms"] - est.estimate(pv.request_for(stage0)).ttft_ms


def _loss(prefill: float, decode: float, points: list[pv.VllmPoint], stage0: pv.VllmPoint):
    frontend = _frontend(prefill, decode, stage0)
    est = rl.AnalyticalEstimator(constants=_constants(prefill, decode, frontend))
    total = 0.0
    for p in points:
        e = est.estimate(pv.request_for(p))
        for m in FIT_METRICS:
            if m in p.compared:
                total += math.log(p.measured[m] / getattr(e, m)) ** 2
    return total, frontend


def fit() -> dict[str, float]:
    """Grid search of the vLLM prefill and decode multipliers (frontend from stage 0)."""
    points = _fit_points()
    stage0 = next(p for p in points if p.id == "kubecon_s0")
    best = min(
        ((_loss(a, b, points, stage0)[0], a, b) for a in COARSE for b in COARSE),
        key=lambda t: t[0],
    )
    _, a0, b0 = best
    fine = [round(x * FINE_STEP, 2) for x in range(-5, 6)]
    best = min(
        (
            (_loss(a0 + da, b0 + db, points, stage0)[0], a0 + da, b0 + db)
            for da in fine
            for db in fine
        ),
        key=lambda t: t[0],
    )
    loss, a, b = best
    frontend = _frontend(a, b, stage0)
    return {
        "prefill_time": round(a, 2),
        "decode_time": round(b, 2),
        "frontend_ttft_ms": round(frontend, 1),
        "loss": round(loss, 4),
        "points": [p.id for p in points],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default="vllm", help="engine factor to apply (vllm)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--fit", action="store_true", help="refit the vLLM factor and print it")
    args = parser.parse_args(argv)

    if args.fit:
        print(json.dumps(fit(), indent=2))
        return 0

    validations = pv.validate(engine=args.engine)
    judged = [v for v in validations if not v.point.id.startswith("lambda")]
    result = {
        "engine": args.engine,
        "arrivals": "random (LambdaLabs bursts: static batch)",
        "model_version": rl.MODEL_VERSION,
        "points": [v.to_dict() for v in validations],
        "summary_2025_points": pv.summary(judged),
        "summary_all_points": pv.summary(validations),
        "skipped": pv.skipped(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    _print_table(validations)
    _print_summary(
        f"2025 points (KubeCon stages 0-3, exp-7 H100), engine {args.engine}",
        result["summary_2025_points"],
    )
    _print_summary(
        "all judged points, with the 2024 LambdaLabs bursts", result["summary_all_points"]
    )
    print("\nnot covered:")
    for name, reason in result["skipped"].items():
        print(f"  {name}: {reason}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
