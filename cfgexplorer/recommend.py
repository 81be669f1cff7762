"""The recommender: GPU types x counts x TP x concurrency, under latency SLOs and costs.

For every GPU type (the catalog or a list), every GPU count up to a limit,
every TP size vLLM accepts that divides the count (the rest as data-parallel
replicas) and a concurrency ladder up to the KV-cache limit, the estimator
predicts TTFT, ITL, E2E and throughput. Latency SLOs are checked against the
upper edge of the estimate's error band. Each GPU type gets its best-latency
point (one request per replica) and its highest-throughput point that meets
every SLO, with costs; GPU types that cannot serve get a reason.

Plain functions and frozen dataclasses; the dashboard calls :func:`recommend`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cfgexplorer.errors import InvalidDeploymentError, UserError
from cfgexplorer.roofline import (
    ARRIVALS,
    DEFAULT_ARRIVALS,
    DEFAULT_ENGINE,
    LATENCY_METRICS,
    AnalyticalEstimator,
    Estimate,
    EstimateRequest,
    Estimator,
    get_engine,
    provenance,
    validate_lengths,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from cfgexplorer.gpus import GPU
    from cfgexplorer.spec import ModelSpec

log = logging.getLogger(__name__)

# Per-replica concurrency levels tried below the KV limit (the limit itself is added).
CONCURRENCY_LADDER = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
DEFAULT_MAX_GPUS = 8
# Most GPUs one deployment may span in the search: 128 eight-GPU servers. Larger limits only
# add data-parallel copies of configurations already searched, at a cost in search time.
MAX_GPUS_LIMIT = 1024  # GPUs
# Sizing for a request rate bisects the per-replica rate that still meets every SLO, to this
# relative precision, after bracketing it by doubling or halving at most this many times.
SIZING_RATE_PRECISION = 1e-3  # dimensionless
SIZING_BRACKET_STEPS = 40  # halvings or doublings
# Replica counts tried above ceil(target / best rate) should the model not be monotone in the
# rate (it is in practice, so the first count is the answer).
SIZING_EXTRA_REPLICAS = 8  # replicas

# The CLI flag of each SLO, for messages.
_SLO_FLAGS = {"ttft_ms": "--max-ttft", "itl_ms": "--max-itl", "e2e_s": "--max-latency"}

SLO_NOTE = (
    "latency SLOs (TTFT, ITL, E2E) are checked against the upper edge of each estimate's "
    "error band, so a point that passes should meet them at the percentile the band covers"
)


@dataclass(frozen=True)
class RecommendRequest:
    """What to search: the model, the workload, the limits, the SLOs and the costs.

    ``concurrency`` lists total concurrencies per deployment (split evenly over
    its replicas); None uses the ladder up to the KV limit. ``request_rate``
    instead loads every deployment with that many requests per second (split
    evenly over its replicas; random arrivals only). ``arrivals`` is
    ``random``, ``synchronized`` or ``static`` (a static batch: all sequences start
    and stop together, as TensorRT-LLM's gptSessionBenchmark ran; see
    :mod:`cfgexplorer.roofline`). A workload longer than the model's maximum context
    is refused unless ``allow_long_max_model_len`` is set, as vLLM does. SLOs are
    None when not set. ``custom_costs`` maps GPU names to a cost per GPU-hour.
    """

    model: str
    input_len: int
    output_len: int
    max_gpus: int = DEFAULT_MAX_GPUS
    max_gpus_per_type: Mapping[str, int] = field(default_factory=dict)
    gpu_list: tuple[str, ...] | None = None
    max_ttft_ms: float | None = None
    max_itl_ms: float | None = None
    max_e2e_s: float | None = None
    custom_costs: Mapping[str, float] = field(default_factory=dict)
    target_rps: float | None = None
    target_concurrency: int | None = None
    tp: int | None = None
    concurrency: tuple[int, ...] | None = None
    quantization: str | None = None
    kv_cache_dtype: str = "auto"
    engine: str = DEFAULT_ENGINE
    engine_profile: str | None = None
    include_points: bool = False
    spec: ModelSpec | None = None
    arrivals: str = DEFAULT_ARRIVALS
    request_rate: float | None = None  # requests/s per deployment
    allow_long_max_model_len: bool = False

    def slos(self) -> dict[str, float]:
        """The SLOs that are set, keyed like the estimate's metrics."""
        pairs = (
            ("ttft_ms", self.max_ttft_ms),
            ("itl_ms", self.max_itl_ms),
            ("e2e_s", self.max_e2e_s),
        )
        return {k: float(v) for k, v in pairs if v is not None}

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "input_len": self.input_len,
            "output_len": self.output_len,
            "max_gpus": self.max_gpus,
            "max_gpus_per_type": dict(self.max_gpus_per_type),
            "gpu_list": list(self.gpu_list) if self.gpu_list else None,
            "max_ttft_ms": self.max_ttft_ms,
            "max_itl_ms": self.max_itl_ms,
            "max_e2e_s": self.max_e2e_s,
            "custom_gpu_costs": dict(self.custom_costs),
            "target_rps": self.target_rps,
            "target_concurrency": self.target_concurrency,
            "tp": self.tp,
            "concurrency": list(self.concurrency) if self.concurrency else None,
            "quantization": self.quantization,
            "kv_cache_dtype": self.kv_cache_dtype,
            "engine": get_engine(self.engine).name,
            "engine_profile": self.engine_profile,
            "arrivals": self.arrivals,
            "request_rate": self.request_rate,
        }


@dataclass(frozen=True)
class Point:
    """One deployment at one total concurrency: ``num_gpus // tp`` replicas of one estimate."""

    estimate: Estimate
    num_gpus: int
    replicas: int
    meets_slo: bool
    violations: tuple[str, ...]

    @property
    def tp(self) -> int:
        return self.estimate.tp

    @property
    def concurrency(self) -> float:
        return self.estimate.concurrency * self.replicas

    @property
    def output_tok_s(self) -> float:
        return self.estimate.output_tok_s * self.replicas

    @property
    def request_rate_per_s(self) -> float:
        return self.estimate.request_rate_per_s * self.replicas

    def to_dict(self) -> dict[str, Any]:
        e = self.estimate
        return {
            "tp": e.tp,
            "num_gpus": self.num_gpus,
            "replicas": self.replicas,
            "concurrency": _num(self.concurrency),
            "ttft_ms": round(e.ttft_ms, 3),
            "itl_ms": round(e.itl_ms, 3),
            "e2e_s": round(e.e2e_s, 4),
            "output_tok_s": round(self.output_tok_s, 2),
            "output_tok_s_per_gpu": round(self.output_tok_s / self.num_gpus, 2),
            "request_rate_per_s": round(self.request_rate_per_s, 4),
            "feasible": e.feasible,
            "saturated": e.saturated,
            "meets_slo": self.meets_slo,
            "bound": e.bound,
            "prefill_bound": e.prefill_bound,
            "decode_bound": e.decode_bound,
            "prefill_intensity_flop_per_byte": round(e.prefill_intensity, 2),
            "decode_intensity_flop_per_byte": round(e.decode_intensity, 2),
            "ttft_ms_upper": round(e.upper("ttft_ms"), 3),
            "itl_ms_upper": round(e.upper("itl_ms"), 3),
            "e2e_s_upper": round(e.upper("e2e_s"), 4),
        }


def _num(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 3)


@dataclass(frozen=True)
class GPUResult:
    """The answer for one GPU type."""

    gpu: str
    cost_per_gpu_hour: float | None
    cost_source: str
    best_latency: Point
    best_throughput: Point
    cheapest: Point  # fewest GPU-hours per hour that still meets the SLOs
    memory: dict[str, Any]
    sizing: dict[str, Any] | None
    points: tuple[Point, ...]
    rejected_configs: dict[str, str]

    @property
    def cheapest_per_token(self) -> Point:
        """The SLO-meeting point with the fewest GPUs per output token/s (lowest cost per token).

        Every SLO-meeting point of this GPU type is considered, not only the
        highest-throughput one: a small deployment at a higher load often costs less per
        token than the largest one.
        """
        ok = [p for p in self.points if p.meets_slo] or [self.best_throughput]
        return min(
            ok,
            key=lambda p: (p.num_gpus / p.output_tok_s if p.output_tok_s else math.inf, p.num_gpus),
        )

    def cost_of(self, point: Point) -> dict[str, float | None]:
        """Cost per hour of a deployment and cost per million output tokens."""
        if self.cost_per_gpu_hour is None:
            return {"per_hour": None, "per_million_output_tokens": None}
        per_hour = self.cost_per_gpu_hour * point.num_gpus
        per_million = per_hour / (point.output_tok_s * 3600) * 1e6 if point.output_tok_s else None
        return {"per_hour": round(per_hour, 4), "per_million_output_tokens": _r(per_million)}

    def to_dict(self, include_points: bool) -> dict[str, Any]:
        best = self.best_throughput
        out = {
            "gpu": self.gpu,
            "num_gpus": best.num_gpus,
            "tp": best.tp,
            "replicas": best.replicas,
            "concurrency": _num(best.concurrency),
            "best_latency": self.best_latency.to_dict(),
            "best_output_throughput": best.to_dict(),
            "cost": {
                "per_gpu_hour": self.cost_per_gpu_hour,
                "source": self.cost_source,
                "best_output_throughput": self.cost_of(best),
                "best_latency": self.cost_of(self.best_latency),
                "cheapest_deployment": {
                    "num_gpus": self.cheapest.num_gpus,
                    "tp": self.cheapest.tp,
                    "replicas": self.cheapest.replicas,
                    "concurrency": _num(self.cheapest.concurrency),
                    **self.cost_of(self.cheapest),
                },
                "lowest_cost_per_million_tokens": {
                    "num_gpus": self.cheapest_per_token.num_gpus,
                    "tp": self.cheapest_per_token.tp,
                    "replicas": self.cheapest_per_token.replicas,
                    "concurrency": _num(self.cheapest_per_token.concurrency),
                    **self.cost_of(self.cheapest_per_token),
                },
            },
            "memory": self.memory,
            "rejected_configs": dict(self.rejected_configs),
        }
        if self.sizing is not None:
            out["sizing"] = self.sizing
        if include_points:
            out["points"] = [p.to_dict() for p in self.points]
        return out


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


@dataclass(frozen=True)
class Recommendation:
    """Every GPU type's result, the overall bests, the exclusions and the provenance."""

    request: RecommendRequest
    results: tuple[GPUResult, ...]
    failed: dict[str, str]
    notes: tuple[str, ...]

    def best(self) -> dict[str, Any]:
        """The overall winners, one per criterion (None when no GPU qualifies)."""
        res = self.results
        if not res:
            return dict.fromkeys(
                (
                    "highest_throughput",
                    "lowest_ttft",
                    "lowest_itl",
                    "lowest_e2e_latency",
                    "lowest_cost",
                    "lowest_cost_per_million_tokens",
                )
            )

        def entry(r: GPUResult, p: Point, metric: str, value: Any) -> dict[str, Any]:
            return {
                "gpu": r.gpu,
                "num_gpus": p.num_gpus,
                "tp": p.tp,
                "replicas": p.replicas,
                "concurrency": _num(p.concurrency),
                "metric": metric,
                "value": value,
            }

        out: dict[str, Any] = {}
        r = max(res, key=lambda r: (r.best_throughput.output_tok_s, -r.best_throughput.num_gpus))
        out["highest_throughput"] = entry(
            r, r.best_throughput, "output_tok_s", round(r.best_throughput.output_tok_s, 2)
        )
        for key, metric in (
            ("lowest_ttft", "ttft_ms"),
            ("lowest_itl", "itl_ms"),
            ("lowest_e2e_latency", "e2e_s"),
        ):
            r = min(res, key=lambda r, m=metric: getattr(r.best_latency.estimate, m))
            value = getattr(r.best_latency.estimate, metric)
            out[key] = entry(r, r.best_latency, metric, round(value, 4))
        costed = [r for r in res if r.cost_per_gpu_hour is not None]
        if self.request.target_rps or self.request.target_concurrency:
            sized = [r for r in costed if r.sizing and r.sizing.get("cost_per_hour") is not None]
            if sized:
                r = min(sized, key=lambda r: r.sizing["cost_per_hour"])
                out["lowest_cost"] = {
                    "gpu": r.gpu,
                    "num_gpus": r.sizing["num_gpus"],
                    "tp": r.sizing["tp"],
                    "metric": "cost_per_hour_at_target",
                    "value": r.sizing["cost_per_hour"],
                }
            else:
                out["lowest_cost"] = None
        elif costed:
            r = min(costed, key=lambda r: r.cost_of(r.cheapest)["per_hour"])
            out["lowest_cost"] = entry(
                r, r.cheapest, "cost_per_hour", r.cost_of(r.cheapest)["per_hour"]
            )
        else:
            out["lowest_cost"] = None
        if costed:
            # Over every SLO-meeting point of every GPU type, not each type's fastest point.
            r = min(
                costed,
                key=lambda r: (
                    r.cost_of(r.cheapest_per_token)["per_million_output_tokens"] or math.inf
                ),
            )
            point = r.cheapest_per_token
            out["lowest_cost_per_million_tokens"] = entry(
                r,
                point,
                "cost_per_million_output_tokens",
                r.cost_of(point)["per_million_output_tokens"],
            )
        else:
            out["lowest_cost_per_million_tokens"] = None
        return out

    def to_dict(self) -> dict[str, Any]:
        from cfgexplorer.gpus import COST_DISCLAIMER, COST_LABEL

        prov = provenance(self.request.engine, self.request.arrivals)
        return {
            "input_parameters": self.request.to_dict(),
            "estimated_best_performance": self.best(),
            "gpu_results": {
                r.gpu: r.to_dict(self.request.include_points or bool(self.request.concurrency))
                for r in self.results
            },
            "failed_gpus": dict(self.failed),
            "slo_basis": SLO_NOTE,
            "costs": {"label": COST_LABEL, "disclaimer": COST_DISCLAIMER, "unit": "per GPU-hour"},
            "provenance": prov,
            "notes": list(self.notes),
        }


# --- the search -----------------------------------------------------------------------


def gpu_counts(limit: int) -> list[int]:
    """GPU counts tried: powers of two up to ``limit``, and ``limit`` itself."""
    counts = [1 << i for i in range(limit.bit_length()) if (1 << i) <= limit]
    if limit not in counts:
        counts.append(limit)
    return counts


def check_slos(estimate: Estimate, slos: Mapping[str, float]) -> tuple[str, ...]:
    """The SLOs an estimate violates at its band's upper edge (empty when it meets all)."""
    out = []
    for metric in LATENCY_METRICS:
        if metric in slos and estimate.upper(metric) > slos[metric]:
            out.append(
                f"{metric} {estimate.upper(metric):.4g} (upper edge; estimate "
                f"{getattr(estimate, metric):.4g}) > {slos[metric]:g}"
            )
    return tuple(out)


def validate_request(req: RecommendRequest) -> None:
    """Reject bad numbers with one sentence each.

    Raises
    ------
    InvalidDeploymentError
        For non-positive lengths, limits, SLOs, targets or concurrencies.
    """
    validate_lengths(req.input_len, req.output_len)
    if not isinstance(req.max_gpus, int) or not 1 <= req.max_gpus <= MAX_GPUS_LIMIT:
        raise InvalidDeploymentError(
            f"--max-gpus must be a whole number from 1 to {MAX_GPUS_LIMIT}, got {req.max_gpus}"
        )
    for name, value in req.max_gpus_per_type.items():
        if not isinstance(value, int) or not 1 <= value <= MAX_GPUS_LIMIT:
            raise InvalidDeploymentError(
                f"GPU limit for {name} must be a whole number from 1 to {MAX_GPUS_LIMIT}, "
                f"got {value!r}"
            )
    for name, value in req.slos().items():
        if not (value > 0 and math.isfinite(value)):
            raise InvalidDeploymentError(
                f"{_SLO_FLAGS[name]} must be a finite number more than 0, got {value:g}"
            )
    if req.target_rps is not None and not (req.target_rps > 0 and math.isfinite(req.target_rps)):
        raise InvalidDeploymentError(
            f"--target-rps must be a finite number more than 0, got {req.target_rps:g}"
        )
    if req.target_concurrency is not None and req.target_concurrency < 1:
        raise InvalidDeploymentError(
            f"--target-concurrency must be >= 1, got {req.target_concurrency}"
        )
    for c in req.concurrency or ():
        if not isinstance(c, int) or c < 1:
            raise InvalidDeploymentError(f"concurrency levels must be whole numbers >= 1, got {c}")
    if req.tp is not None and (not isinstance(req.tp, int) or req.tp < 1):
        raise InvalidDeploymentError(f"--tp must be a whole number >= 1, got {req.tp}")
    if req.arrivals not in RECOMMEND_ARRIVALS:
        raise InvalidDeploymentError(
            f"--arrivals must be {', '.join(RECOMMEND_ARRIVALS)}, got {req.arrivals!r}"
        )
    if req.request_rate is not None:
        if not req.request_rate > 0 or not math.isfinite(req.request_rate):
            raise InvalidDeploymentError(
                f"--request-rate must be a finite number more than 0, got {req.request_rate:g}"
            )
        if req.concurrency:
            raise InvalidDeploymentError("give --request-rate or --concurrency, not both")
    if req.arrivals != "random" and (req.request_rate or req.target_rps):
        raise InvalidDeploymentError(
            f"{req.arrivals} clients are counted, not timed: use --concurrency or "
            f"--target-concurrency with --arrivals {req.arrivals}, or --arrivals random"
        )
    get_engine(req.engine)
    if req.engine_profile is not None:
        from cfgexplorer.memory import get_profile

        get_profile(req.engine_profile)  # an unknown name is one sentence, before any search


# How clients load a deployment: the estimator's arrival models plus a static batch.
RECOMMEND_ARRIVALS = (*ARRIVALS, "static")


def recommend(req: RecommendRequest, estimator: Estimator | None = None) -> Recommendation:
    """Search every GPU type, count, TP and concurrency, and rank what meets the SLOs.

    Parameters
    ----------
    req
        The search.
    estimator
        The performance backend; an :class:`AnalyticalEstimator` by default.

    Returns
    -------
    Recommendation
        Per-GPU results, overall bests, exclusions with reasons, provenance.

    Raises
    ------
    UserError
        For an unknown model or GPU, a malformed cost, or bad numbers.
    """
    from cfgexplorer import load_model
    from cfgexplorer.gpus import cost_provenance, get_gpu, list_gpus, resolve_costs

    validate_request(req)
    spec = req.spec or load_model(req.model)
    length = req.input_len + req.output_len
    if length > spec.max_position_embeddings and not req.allow_long_max_model_len:
        raise InvalidDeploymentError(
            f"{req.input_len} input + {req.output_len} output tokens exceed {spec.model_id}'s "
            f"maximum context of {spec.max_position_embeddings} tokens, and vLLM rejects such "
            "requests; shorten the workload, or pass --allow-long-max-model-len if the model's "
            "RoPE scaling really extends it"
        )
    gpus = [get_gpu(n) for n in req.gpu_list] if req.gpu_list else list_gpus()
    gpus = list({g.name: g for g in gpus}.values())
    limits = {get_gpu(name).name: n for name, n in req.max_gpus_per_type.items()}
    costs = resolve_costs(dict(req.custom_costs))
    est = estimator or AnalyticalEstimator()

    results: list[GPUResult] = []
    failed: dict[str, str] = {}
    for gpu in gpus:
        limit = limits.get(gpu.name, req.max_gpus)
        try:
            outcome = _search_gpu(req, spec, gpu, limit, est)
        except UserError as exc:
            failed[gpu.name] = str(exc)
            continue
        if isinstance(outcome, str):
            failed[gpu.name] = outcome
            continue
        best_latency, best_tp, cheapest, points, memory, rejected, sizing = outcome
        cost = costs.get(gpu.name)
        source = cost_provenance(gpu.name, dict(req.custom_costs))
        if sizing is not None and cost is not None and sizing.get("num_gpus"):
            sizing["cost_per_hour"] = round(sizing["num_gpus"] * cost, 4)
        results.append(
            GPUResult(
                gpu=gpu.name,
                cost_per_gpu_hour=cost,
                cost_source=source,
                best_latency=best_latency,
                best_throughput=best_tp,
                cheapest=cheapest,
                memory=memory,
                sizing=sizing,
                points=tuple(points),
                rejected_configs=rejected,
            )
        )
    results.sort(key=lambda r: -r.best_throughput.output_tok_s)

    notes = [
        SLO_NOTE,
        f"throughput scales by data-parallel replicas: num_gpus / tp copies of one TP group; "
        f"each request needs about {req.input_len + req.output_len} tokens of KV cache",
        "not modelled: pipeline parallelism, expert-parallel all-to-all, speculative "
        "decoding, prefix caching",
    ]
    return Recommendation(req, tuple(results), failed, tuple(notes))


_Outcome = tuple[Point, Point, Point, list[Point], dict[str, Any], dict[str, str], Any]


def _search_gpu(
    req: RecommendRequest, spec: ModelSpec, gpu: GPU, limit: int, est: Estimator
) -> _Outcome | str:
    """Search one GPU type; a string is the reason it is excluded."""
    from cfgexplorer.memory import tp_rejection

    if not gpu.memory_bandwidth_gbps or not (gpu.bf16_tflops or gpu.fp16_tflops):
        return "no TFLOPS or bandwidth figures in the catalog, so speed cannot be estimated"
    counts = gpu_counts(limit)
    per_server = gpu.gpus_per_server or 8
    tps = sorted({t for n in counts for t in range(1, n + 1) if n % t == 0 and t <= per_server})
    if req.tp is not None:
        tps = [t for t in tps if t == req.tp]
        if not tps:
            return _tp_unusable(req.tp, spec, counts, per_server)
    rejected: dict[str, str] = {}
    valid = []
    for tp in tps:
        reason = tp_rejection(spec, tp)
        if reason:
            rejected[f"tp={tp}"] = reason
        else:
            valid.append(tp)
    if not valid:
        return f"no valid TP up to {max(tps)}: " + "; ".join(
            f"{k}: {v}" for k, v in rejected.items()
        )

    slos = req.slos()
    points: list[Point] = []
    memory: dict[str, Any] = {}
    per_tp_estimates: dict[int, list[Estimate]] = {}
    bases: dict[int, EstimateRequest] = {}
    for tp in valid:
        base = EstimateRequest(
            spec=spec,
            gpu=gpu,
            input_len=req.input_len,
            output_len=req.output_len,
            tp=tp,
            quantization=req.quantization,
            kv_cache_dtype=req.kv_cache_dtype,
            engine=req.engine,
            engine_profile=req.engine_profile,
            arrivals="synchronized" if req.arrivals == "static" else req.arrivals,
            batching="static" if req.arrivals == "static" else "continuous",
        )
        kv_limit, why = est.kv_limit(base)
        if why or not kv_limit or kv_limit < 1:
            rejected[f"tp={tp}"] = why or (
                f"the KV cache holds {kv_limit or 0:.2f} requests of "
                f"{req.input_len + req.output_len} tokens, fewer than one"
            )
            continue
        plan = getattr(est, "plan", None)
        max_seqs = None
        if plan is not None:
            p = plan(base)
            max_seqs = p.max_num_seqs
            memory[f"tp={tp}"] = {
                "weights_gib": round(p.weights_gib, 3),
                "kv_pool_gib": round(p.kv_pool_gib, 3),
                "kv_tokens": p.kv_tokens,
                "max_concurrency": round(p.max_concurrency, 2),
            }
        base = _with(base, kv_max_concurrency=kv_limit, max_num_seqs=max_seqs)
        bases[tp] = base
        if req.request_rate is not None:
            # Open loop: every deployment carries the rate, split over its replicas.
            estimates = []
            for n in counts:
                if n % tp:
                    continue
                replicas = n // tp
                e = est.estimate(_with(base, request_rate=req.request_rate / replicas))
                estimates.append(e)
                violations = check_slos(e, slos)
                points.append(Point(e, n, replicas, e.feasible and not violations, violations))
            per_tp_estimates[tp] = estimates
            continue
        levels = _levels(req, tp, counts, kv_limit)
        estimates = [est.estimate(_with(base, concurrency=c)) for c in levels]
        per_tp_estimates[tp] = estimates
        for n in counts:
            if n % tp:
                continue
            replicas = n // tp
            for e in estimates:
                if req.concurrency and e.concurrency * replicas not in req.concurrency:
                    continue
                violations = check_slos(e, slos)
                meets = e.feasible and not violations
                points.append(Point(e, n, replicas, meets, violations))
    if not per_tp_estimates:
        reasons = {rejected.get(f"tp={tp}") for tp in valid}
        if len(reasons) == 1 and None not in reasons and len(valid) > 1:
            # The same reason at every size is not about size (a dtype the GPU lacks...).
            return f"cannot serve this model at any TP: {reasons.pop()}"
        # The largest TP tried needs the least memory per GPU: its shortfall is the one to quote.
        largest = max(valid)
        return (
            f"does not fit at any TP up to {largest} with {limit} GPUs: at tp={largest}, "
            f"{rejected.get(f'tp={largest}', 'no memory for the KV cache')}"
        )

    singles = [p for p in points if p.replicas == 1 and p.estimate.concurrency == 1]
    if req.request_rate is not None:  # one load for all: the best latency is any point's
        singles = points
    elif not singles:  # --concurrency without 1: take the lowest level of each TP
        singles = [
            Point(es[0], tp, 1, not check_slos(es[0], slos), check_slos(es[0], slos))
            for tp, es in per_tp_estimates.items()
        ]
    ok = [p for p in points if p.meets_slo]
    if not ok:
        return _no_point_reason(req, singles, points, slos)
    ok_singles = [p for p in singles if p.meets_slo] or singles
    best_latency = min(ok_singles, key=lambda p: (p.estimate.e2e_s, p.num_gpus))
    # Rounded: open-loop points at one rate tie on throughput up to the solver's precision.
    best_tp = max(ok, key=lambda p: (round(p.output_tok_s, 6), -p.num_gpus, -p.tp))
    cheapest = min(ok, key=lambda p: (p.num_gpus, -p.output_tok_s))
    if req.target_rps is not None and req.arrivals == "random":
        sizing = _sizing_at_rate(req, bases, ok, est, slos)
    elif req.target_concurrency is not None:
        sizing = _sizing_at_concurrency(req, bases, ok, est, slos)
    else:
        sizing = _sizing(req, ok)
    return best_latency, best_tp, cheapest, points, memory, rejected, sizing


def _tp_unusable(tp: int, spec: ModelSpec, counts: list[int], per_server: int) -> str:
    """Why ``--tp`` rules out this GPU type: the model's shapes, the server size or the counts."""
    from cfgexplorer.memory import tp_rejection

    reason = tp_rejection(spec, tp)
    if reason:
        return f"--tp {tp} is not valid for this model: {reason}"
    if tp > per_server:
        return (
            f"--tp {tp} is more than the {per_server} GPUs of one server of this type "
            "(a TP group does not span servers)"
        )
    tried = ", ".join(str(n) for n in counts)
    return (
        f"--tp {tp} divides none of the GPU counts searched ({tried}); "
        f"raise --max-gpus to a multiple of {tp}"
    )


def _no_point_reason(
    req: RecommendRequest,
    singles: list[Point],
    points: list[Point],
    slos: Mapping[str, float],
) -> str:
    """Why no point qualifies: every load infeasible (KV cache, saturation) or the SLOs."""
    if req.request_rate is not None:
        load = f"at {req.request_rate:g} req/s"
    elif req.concurrency:
        load = f"at concurrency {', '.join(str(c) for c in req.concurrency)}"
    else:
        load = "even at concurrency 1"
    feasible = [p for p in points if p.estimate.feasible]
    if not feasible:
        # No SLO is to blame: the load itself cannot be carried (KV cache or saturation).
        best = min(points or singles, key=lambda p: (-p.num_gpus, p.estimate.concurrency))
        why = best.estimate.infeasible_reason or "the load cannot be carried"
        return (
            f"no feasible point {load} (largest deployment: {best.num_gpus} GPU(s), "
            f"tp={best.tp}): {why}"
        )
    pool = [p for p in singles if p.estimate.feasible] or feasible
    fastest = min(pool, key=lambda p: p.estimate.e2e_s)
    detail = "; ".join(check_slos(fastest.estimate, slos))
    return f"SLO unmeetable {load} (best: {fastest.num_gpus} GPU(s), tp={fastest.tp}): {detail}"


def _levels(req: RecommendRequest, tp: int, counts: list[int], kv_limit: float) -> list[float]:
    """Per-replica concurrency levels for one TP size."""
    if req.concurrency:
        levels = set()
        for n in counts:
            if n % tp:
                continue
            replicas = n // tp
            for total in req.concurrency:
                if total % replicas == 0:
                    levels.add(total // replicas)
        return sorted(float(c) for c in levels)
    top = math.floor(kv_limit)
    levels = {float(c) for c in CONCURRENCY_LADDER if c <= top}
    levels.add(float(min(top, CONCURRENCY_LADDER[-1] * 2)))
    return sorted(levels)


def _with(base: EstimateRequest, **changes: Any) -> EstimateRequest:
    from dataclasses import replace

    return replace(base, **changes)


def _sizing_at_rate(
    req: RecommendRequest,
    bases: Mapping[int, EstimateRequest],
    ok: list[Point],
    est: Estimator,
    slos: Mapping[str, float],
) -> dict[str, Any] | None:
    """The fewest replicas and GPUs that carry ``target_rps`` of random traffic within the SLOs.

    For each TP size, the highest request rate one replica sustains while meeting every
    SLO is found by bisection on the open-loop estimate (concurrency follows from
    Little's law); the target split over ``ceil(target / that rate)`` replicas then
    meets the SLOs, which is checked.
    """
    target = float(req.target_rps or 0.0)
    best: dict[str, Any] | None = None
    for tp, base in bases.items():
        rates = [p.estimate.request_rate_per_s for p in ok if p.tp == tp and p.replicas == 1]
        if not rates:
            continue
        top = _max_rate_meeting_slos(base, est, slos, hint=max(rates))
        if top is None:
            continue
        found = _fewest_replicas(base, est, slos, "request_rate", target, top)
        if found is None:
            continue
        replicas, e = found
        candidate = _sizing_record(req, tp, replicas, e, "random")
        candidate.update(
            request_rate_per_replica=round(target / replicas, 4),
            max_request_rate_per_replica=round(top, 4),
            concurrency_per_replica=round(e.concurrency, 3),
            prefill_utilization=round(e.prefill_utilization, 3),
        )
        best = _fewer_gpus(best, candidate)
    return best


def _sizing_at_concurrency(
    req: RecommendRequest,
    bases: Mapping[int, EstimateRequest],
    ok: list[Point],
    est: Estimator,
    slos: Mapping[str, float],
) -> dict[str, Any] | None:
    """The fewest replicas and GPUs that hold ``target_concurrency`` requests within the SLOs.

    For each TP size, the most requests one replica holds while meeting every SLO is
    found by bisection between the best ladder point and the KV-cache limit (latency
    grows with concurrency); the target split evenly over ``ceil(target / that)``
    replicas is then estimated at its real per-replica load and checked.
    """
    target = float(req.target_concurrency or 0)
    best: dict[str, Any] | None = None
    for tp, base in bases.items():
        levels = [p.estimate.concurrency for p in ok if p.tp == tp and p.replicas == 1]
        if not levels:
            continue
        lo = max(levels)  # meets the SLOs: it is one of the ok points
        kv_limit, _why = est.kv_limit(base)
        hi = math.floor(kv_limit) if kv_limit and math.isfinite(kv_limit) else lo
        if hi > lo and _meets(est.estimate(_with(base, concurrency=hi)), slos):
            lo = hi
        while hi - lo > 1:  # integer bisection: lo meets the SLOs, hi does not
            mid = (lo + hi) // 2
            if _meets(est.estimate(_with(base, concurrency=mid)), slos):
                lo = mid
            else:
                hi = mid
        found = _fewest_replicas(base, est, slos, "concurrency", target, lo)
        if found is None:
            continue
        replicas, e = found
        candidate = _sizing_record(req, tp, replicas, e, req.arrivals)
        candidate.update(
            concurrency_per_replica=round(target / replicas, 3),
            max_concurrency_per_replica=_num(lo),
            request_rate_per_replica=round(e.request_rate_per_s, 4),
        )
        best = _fewer_gpus(best, candidate)
    return best


def _fewest_replicas(
    base: EstimateRequest,
    est: Estimator,
    slos: Mapping[str, float],
    load: str,
    target: float,
    per_replica_top: float,
) -> tuple[int, Estimate] | None:
    """The fewest replicas whose even share of ``target`` (a ``load`` field) meets the SLOs.

    Starts at ``ceil(target / per_replica_top)`` and tries a few more, since the top was
    found at one load level and the split share may land just past it.
    """
    first = max(1, math.ceil(target / per_replica_top - 1e-9))
    for replicas in range(first, first + SIZING_EXTRA_REPLICAS + 1):
        e = est.estimate(_with(base, **{load: target / replicas}))
        if _meets(e, slos):
            return replicas, e
    return None


def _sizing_record(
    req: RecommendRequest, tp: int, replicas: int, e: Estimate, arrivals: str
) -> dict[str, Any]:
    """The fields every sizing answer has: the target, the deployment and its latencies."""
    gpus = replicas * tp
    return {
        "target_rps": req.target_rps,
        "target_concurrency": req.target_concurrency,
        "arrivals": arrivals,
        "tp": tp,
        "replicas": replicas,
        "num_gpus": gpus,
        "ttft_ms": round(e.ttft_ms, 3),
        "itl_ms": round(e.itl_ms, 3),
        "e2e_s": round(e.e2e_s, 4),
        "output_tok_s": round(e.output_tok_s * replicas, 2),
        "within_max_gpus": gpus <= req.max_gpus,
    }


def _fewer_gpus(best: dict[str, Any] | None, candidate: dict[str, Any]) -> dict[str, Any]:
    """The sizing with fewer GPUs (then the smaller TP)."""
    if best is None or (candidate["num_gpus"], candidate["tp"]) < (best["num_gpus"], best["tp"]):
        return candidate
    return best


def _meets(estimate: Estimate, slos: Mapping[str, float]) -> bool:
    """True when an estimate is feasible and meets every SLO at its band's upper edge."""
    return estimate.feasible and not check_slos(estimate, slos)


def _max_rate_meeting_slos(
    base: EstimateRequest, est: Estimator, slos: Mapping[str, float], hint: float
) -> float | None:
    """The highest per-replica request rate that meets every SLO (None if even a trickle fails).

    Brackets the rate by doubling or halving from ``hint``, then bisects to
    ``SIZING_RATE_PRECISION``; latency grows with the rate, so the set of rates that
    meet the SLOs is an interval from zero.
    """

    def meets(rate: float) -> bool:
        return _meets(est.estimate(_with(base, request_rate=rate)), slos)

    lo, hi = None, None
    rate = hint
    for _ in range(SIZING_BRACKET_STEPS):
        if meets(rate):
            lo = rate
            if hi is not None:
                break
            rate *= 2
        else:
            hi = rate
            if lo is not None:
                break
            rate /= 2
    if lo is None:
        return None
    if hi is None:  # meets at every rate tried: the bracket's top is the answer
        return lo
    while (hi - lo) > SIZING_RATE_PRECISION * lo:
        mid = (lo + hi) / 2
        if meets(mid):
            lo = mid
        else:
            hi = mid
    return lo


def _sizing(req: RecommendRequest, ok: list[Point]) -> dict[str, Any] | None:
    """Replicas and GPUs needed to carry the target load within the SLOs (per TP size)."""
    if req.target_rps is None and req.target_concurrency is None:
        return None
    best: dict[str, Any] | None = None
    singles = [p for p in ok if p.replicas == 1]
    for p in singles:
        if req.target_rps is not None:
            replicas = math.ceil(req.target_rps / p.estimate.request_rate_per_s - 1e-9)
        else:
            replicas = math.ceil(req.target_concurrency / p.estimate.concurrency - 1e-9)
        gpus = replicas * p.tp
        candidate = {
            "target_rps": req.target_rps,
            "target_concurrency": req.target_concurrency,
            "tp": p.tp,
            "replicas": replicas,
            "num_gpus": gpus,
            "concurrency_per_replica": _num(p.estimate.concurrency),
            "request_rate_per_replica": round(p.estimate.request_rate_per_s, 4),
            "output_tok_s": round(p.estimate.output_tok_s * replicas, 2),
            "within_max_gpus": gpus <= req.max_gpus,
        }
        if best is None or (gpus, p.tp) < (best["num_gpus"], best["tp"]):
            best = candidate
    return best
