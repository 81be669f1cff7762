"""Predicted against measured serving performance for every row of the calibration CSV.

Usage::

    python scripts/perf_calibration_report.py            # table, error summary, error band
    python scripts/perf_calibration_report.py --json     # the same as JSON
    python scripts/perf_calibration_report.py --fit      # refit the efficiencies (prints them)
    python scripts/perf_calibration_report.py --engine vllm   # what the vLLM factor predicts

The band (10th-90th percentile of measured/predicted) is computed on the rows the model
claims to cover: rows whose notes say concurrency exceeded the engine's batch limit
(queueing the model cannot know about) are listed but left out of the band and the fit.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace
from types import MappingProxyType

from cfgexplorer import perf_calibration as pc
from cfgexplorer import roofline as rl


def _print_table(comparisons: list[pc.Comparison]) -> None:
    header = (
        f"{'id':10} {'gpu':15} {'tp':>2} {'w':4} {'isl':>5} {'osl':>5} {'conc':>4}  "
        + "  ".join(f"{m + ' meas/pred':>26}" for m in pc.METRICS)
    )
    print(header)
    for c in comparisons:
        r = c.row
        cells = "  ".join(
            f"{r.measured[m]:>10.4g} /{c.predicted[m]:>9.4g} {c.ratio[m]:>4.2f}" for m in pc.METRICS
        )
        flag = " *" if r.queueing else ""
        print(
            f"{r.id:10} {r.gpu:15} {r.tp:>2} {r.weights:4} {r.input_len:>5} {r.output_len:>5} "
            f"{r.concurrency:>4}  {cells}{flag}"
        )
    print("ratio = measured / predicted; * = engine batch exceeded (queueing), not in the band")


def _print_summary(title: str, summary: dict[str, dict[str, float]]) -> None:
    print(f"\n{title}")
    for metric, s in summary.items():
        print(
            f"  {metric:13} rows {s['rows']:>3}  MAPE {s['mape_pct']:>5.1f}%  "
            f"median {s['median_ape_pct']:>5.1f}%  max {s['max_ape_pct']:>5.1f}%  "
            f"geo-mean measured/predicted {s['geo_mean_ratio']:.3f}"
        )


def _loss(comparisons: list[pc.Comparison]) -> float:
    rows = [c for c in comparisons if not c.row.queueing]
    return sum(
        math.log(c.ratio[m]) ** 2 for c in rows for m in ("ttft_ms", "itl_ms", "output_tok_s")
    )


TIED = ("hopper", "ampere")


def _fit() -> rl.ModelConstants:
    """Coordinate descent on multiplicative steps of every calibrated constant."""
    shared: dict = {}
    names = {
        "hopper": (
            "compute_16bit",
            "compute_8bit",
            "allreduce_latency_us",
        ),
        "ampere": ("compute_16bit", "allreduce_latency_us"),
        # Tied across generations: too few rows to tell bandwidth from overhead per generation.
        "*": ("bandwidth", "step_overhead_ms"),
    }
    consts = rl.DEFAULT_CONSTANTS

    def evaluate(c: rl.ModelConstants) -> float:
        est = rl.AnalyticalEstimator(constants=c, _work=shared)
        return _loss(pc.compare(est))

    def with_value(c: rl.ModelConstants, gen: str | None, name: str, value: float):
        if gen is None:
            return replace(c, **{name: value})
        eff = dict(c.efficiency)
        for g in TIED if gen == "*" else (gen,):
            eff[g] = replace(eff[g], **{name: value})
        if gen == "ampere":
            eff[gen] = replace(eff[gen], compute_8bit=eff[gen].compute_16bit)
        return replace(c, efficiency=MappingProxyType(eff))

    params = [(g, n) for g, ns in names.items() for n in ns]
    params += [
        (None, "prefill_collision_fraction"),
        (None, "frontend_ttft_ms"),
        (None, "overlap_exponent"),
    ]
    best = evaluate(consts)
    step = 0.2
    while step > 0.005:
        improved = False
        for gen, name in params:
            source = consts.efficiency["hopper" if gen == "*" else gen] if gen else consts
            current = getattr(source, name)
            for factor in (1 + step, 1 / (1 + step)):
                value = current * factor
                if name.startswith(("compute", "bandwidth")) and value > 0.95:
                    continue
                trial = with_value(consts, gen, name, value)
                loss = evaluate(trial)
                if loss < best - 1e-9:
                    consts, best, improved = trial, loss, True
                    break
        if not improved:
            step /= 2
    print(f"fitted loss {best:.4f}", file=sys.stderr)
    return consts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default="trtllm", help="engine factor to apply (trtllm)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--fit", action="store_true", help="refit the constants and print them")
    args = parser.parse_args(argv)

    if args.fit:
        fitted = _fit()
        print(json.dumps(fitted.to_dict(), indent=2, default=str))
        return 0

    comparisons = pc.compare(engine=args.engine)
    modelled = [c for c in comparisons if not c.row.queueing]
    result = {
        "engine": args.engine,
        "model_version": rl.MODEL_VERSION,
        "rows": [c.to_dict() for c in comparisons],
        "summary_all_rows": pc.summary(comparisons),
        "summary_modelled_rows": pc.summary(modelled),
        "band": pc.band(modelled),
        "band_stored": {k: list(v) for k, v in rl.ERROR_BAND.items()},
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    _print_table(comparisons)
    _print_summary(
        f"all {len(comparisons)} rows (engine {args.engine})", result["summary_all_rows"]
    )
    _print_summary(f"{len(modelled)} modelled rows (no queueing)", result["summary_modelled_rows"])
    print(f"\nerror band (measured/predicted, {rl.BAND_QUANTILES}), modelled rows:")
    for metric, (lo, hi) in result["band"].items():
        lo_s, hi_s = rl.ERROR_BAND[metric]
        print(f"  {metric:13} x{lo:.2f} .. x{hi:.2f}   (stored in roofline.py: x{lo_s} .. x{hi_s})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
