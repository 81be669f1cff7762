"""GPURecommender: the state of the recommend page (GPU choice under latency SLOs).

Every output comes from one call of :func:`cfgexplorer.recommend.recommend`
(the function behind ``cfgexplorer estimate``); the ranked table, the curves
and the exclusions are views of that one result.
"""

from __future__ import annotations

import difflib
import logging
from typing import Any, ClassVar

import pandas as pd
import param

from cfgexplorer import gpus
from cfgexplorer.errors import UserError
from cfgexplorer.models.base import ModelPageState
from cfgexplorer.models.capacity import DEFAULT_MODEL, catalog_ids

log = logging.getLogger(__name__)

RANK_COLUMNS = [
    "rank",
    "gpu",
    "num_gpus",
    "tp",
    "replicas",
    "concurrency",
    "output_tok_s",
    "output_tok_s_per_gpu",
    "ttft_ms",
    "itl_ms",
    "e2e_s",
    "cost_per_hour",
    "cost_per_million_output_tokens",
    "cost_source",
]
# Added when a target request rate is set: each GPU type sized for it (recommend's sizing).
SIZING_COLUMNS = {
    "tp": "tp_at_target",
    "replicas": "replicas_at_target",
    "num_gpus": "gpus_at_target",
    "cost_per_hour": "cost_per_hour_at_target",
}
POINT_COLUMNS = [
    "gpu",
    "num_gpus",
    "tp",
    "replicas",
    "concurrency",
    "ttft_ms",
    "itl_ms",
    "e2e_s",
    "output_tok_s",
    "output_tok_s_per_gpu",
    "itl_ms_lower",
    "itl_ms_upper",
    "ttft_ms_lower",
    "ttft_ms_upper",
    "meets_slo",
]


class GPURecommender(ModelPageState):
    """For each GPU type: the parallelism and concurrency that maximise throughput under SLOs."""

    model = param.Selector(
        default=DEFAULT_MODEL,
        objects=[DEFAULT_MODEL],
        check_on_set=False,
        doc="Model: a bundled catalog id or a Hugging Face Hub id.",
    )
    input_len = param.Integer(default=1000, bounds=(1, 1_000_000), doc="Prompt tokens per request.")
    output_len = param.Integer(default=200, bounds=(1, 1_000_000), doc="Output tokens per request.")
    max_gpus = param.Integer(default=8, bounds=(1, 64), doc="Most GPUs in one deployment.")
    gpu_list = param.ListSelector(
        default=[], objects=[], doc="GPU types to consider; none selected means every catalog GPU."
    )
    max_ttft_ms = param.Number(
        default=0.0, bounds=(0, 600_000), doc="Time-to-first-token SLO in ms; 0 means none."
    )
    max_itl_ms = param.Number(
        default=0.0, bounds=(0, 60_000), doc="Inter-token latency SLO in ms; 0 means none."
    )
    max_e2e_s = param.Number(
        default=0.0, bounds=(0, 86_400), doc="End-to-end latency SLO in seconds; 0 means none."
    )
    target_rps = param.Number(
        default=0.0, bounds=(0, 1_000_000), doc="Requests per second to serve; 0 means none."
    )
    custom_costs = param.List(
        default=[],
        item_type=str,
        bounds=(0, 64),
        doc="Own costs per GPU-hour as GPU:COST (e.g. H100:2.5); others use reference costs.",
    )
    quantization = param.Selector(
        default="none", objects=["none", "fp8"], doc="vLLM runtime quantization."
    )
    kv_cache_dtype = param.Selector(
        default="auto", objects=["auto", "fp8"], doc="KV-cache dtype of every deployment."
    )
    engine = param.Selector(
        default="vllm",
        objects=["vllm", "sglang", "trtllm"],
        doc="Serving engine whose measured speed factor the estimates assume.",
    )
    arrivals = param.Selector(
        default="random",
        objects=["random", "synchronized"],
        doc="How requests arrive: random (real traffic) or synchronized (benchmark clients).",
    )

    costs_message = param.String(
        default="",
        precedence=-1,
        doc="What is wrong with the first bad custom cost (one sentence), or empty.",
    )

    recommendation = param.Parameter(
        default=None,
        constant=True,
        precedence=-1,
        doc="The core Recommendation for the inputs, or None (see message).",
    )
    ranked = param.DataFrame(
        default=None,
        allow_None=True,
        constant=True,
        precedence=-1,
        doc="One row per GPU type that can serve: its best-throughput deployment, ranked.",
    )
    curves = param.DataFrame(
        default=None,
        allow_None=True,
        constant=True,
        precedence=-1,
        doc="Each GPU's operating points (its best deployment over concurrency) for the plots.",
    )
    excluded = param.DataFrame(
        default=None,
        allow_None=True,
        constant=True,
        precedence=-1,
        doc="GPU types that cannot serve the model, with the reason.",
    )

    url_params: ClassVar[tuple[str, ...]] = (
        "model",
        "input_len",
        "output_len",
        "max_gpus",
        "gpu_list",
        "max_ttft_ms",
        "max_itl_ms",
        "max_e2e_s",
        "target_rps",
        "custom_costs",
        "quantization",
        "kv_cache_dtype",
        "engine",
        "arrivals",
    )

    def __init__(self, **params: Any) -> None:
        late = {k: params.pop(k) for k in ("gpu_list",) if k in params}
        super().__init__(**params)
        self.param.model.objects = catalog_ids()
        self.param.gpu_list.objects = gpus.gpu_names()
        if late:
            self.param.update(late)
        self.param.watch(self._compute, [*self.url_params, "hf_token"])
        self._compute()

    def request(self) -> Any:
        """The core RecommendRequest for the current inputs (raises UserError on bad costs)."""
        from cfgexplorer.recommend import RecommendRequest

        costs = dict(gpus.parse_cost_override(text) for text in self.custom_costs)
        return RecommendRequest(
            model=str(self.model),
            input_len=self.input_len,
            output_len=self.output_len,
            max_gpus=self.max_gpus,
            gpu_list=tuple(self.gpu_list) or None,
            max_ttft_ms=self.max_ttft_ms or None,
            max_itl_ms=self.max_itl_ms or None,
            max_e2e_s=self.max_e2e_s or None,
            custom_costs=costs,
            target_rps=self.target_rps or None,
            quantization=None if self.quantization == "none" else self.quantization,
            kv_cache_dtype=self.kv_cache_dtype,
            engine=self.engine,
            arrivals=self.arrivals,
            include_points=True,
        )

    def parse_query_value(self, name: str, text: str) -> Any:
        """Like the base class; each custom cost must read as GPU:COST."""
        value = super().parse_query_value(name, text)
        if name == "custom_costs":
            for item in value:
                problem = cost_problem(item)
                if problem:
                    raise ValueError(f"has a cost that cannot be used: {problem}")
        return value

    def provenance(self) -> dict[str, Any]:
        """Where the estimates come from (model, version, calibration, error band)."""
        rec = self.recommendation
        return rec.to_dict()["provenance"] if rec is not None else {}

    def _compute(self, *_events: Any) -> None:
        from cfgexplorer.recommend import recommend

        problems = [p for p in map(cost_problem, self.custom_costs) if p]
        self.costs_message = f"Your costs: {problems[0]}." if problems else ""
        if problems:
            with param.edit_constant(self):
                self.param.update(recommendation=None, ranked=None, curves=None, excluded=None)
            self.message = "No ranking until your costs are fixed (see Your costs, on the left)."
            return
        try:
            req = self.request()
            spec = self.load_reference(str(self.model))
            from dataclasses import replace

            rec = recommend(replace(req, spec=spec))
        except UserError as exc:
            with param.edit_constant(self):
                self.param.update(recommendation=None, ranked=None, curves=None, excluded=None)
            self.message = str(exc)
            return
        ranked, curves = _tables(rec)
        excluded = pd.DataFrame(
            [{"gpu": g, "reason": r} for g, r in rec.failed.items()], columns=["gpu", "reason"]
        )
        with param.edit_constant(self):
            self.param.update(recommendation=rec, ranked=ranked, curves=curves, excluded=excluded)
        self.message = ""


def cost_problem(text: str) -> str:
    """Why one GPU:COST entry cannot be used, in the page's words, or '' when it can."""
    name, sep, cost_text = text.rpartition(":")
    name = name.strip()
    if not sep or not name or not cost_text.strip():
        return f"{text!r} is not GPU:COST; write it like H100:2.5"
    try:
        gpus.get_gpu(name)
    except UserError:
        names = gpus.gpu_names()
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.3)
        hint = f" (close: {', '.join(close)})" if close else ""
        return (
            f"{name!r} in {text!r} is not a GPU type of the catalog{hint}; "
            "use a name from the GPU types list, like H100:2.5"
        )
    try:
        gpus.parse_cost_override(text)
    except UserError:
        return (
            f"the cost in {text!r} must be a number, zero or more, in USD per GPU-hour; "
            "write it like H100:2.5"
        )
    return ""


def _tables(rec: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ranked table and the per-GPU curves of a Recommendation (selection only)."""
    rows, points = [], []
    for rank, result in enumerate(rec.results, start=1):
        d = result.to_dict(include_points=False)
        best = d["best_output_throughput"]
        cost = d["cost"]["best_output_throughput"]
        rows.append(
            {
                "rank": rank,
                "gpu": result.gpu,
                "num_gpus": best["num_gpus"],
                "tp": best["tp"],
                "replicas": best["replicas"],
                "concurrency": best["concurrency"],
                "output_tok_s": best["output_tok_s"],
                "output_tok_s_per_gpu": best["output_tok_s_per_gpu"],
                "ttft_ms": best["ttft_ms"],
                "itl_ms": best["itl_ms"],
                "e2e_s": best["e2e_s"],
                "cost_per_hour": cost["per_hour"],
                "cost_per_million_output_tokens": cost["per_million_output_tokens"],
                "cost_source": d["cost"]["source"],
            }
        )
        if rec.request.target_rps:
            sizing = result.sizing or {}
            rows[-1].update({col: sizing.get(key) for key, col in SIZING_COLUMNS.items()})
        chosen = (result.best_throughput.num_gpus, result.best_throughput.tp)
        for point in result.points:
            if (point.num_gpus, point.tp) != chosen:
                continue
            p = point.to_dict()
            p["gpu"] = result.gpu
            p["itl_ms_lower"] = round(point.estimate.band.lower["itl_ms"], 3)
            p["ttft_ms_lower"] = round(point.estimate.band.lower["ttft_ms"], 3)
            points.append(p)
    columns = RANK_COLUMNS + (list(SIZING_COLUMNS.values()) if rec.request.target_rps else [])
    ranked = pd.DataFrame(rows, columns=columns)
    curves = pd.DataFrame(points).reindex(columns=POINT_COLUMNS)
    return ranked, curves.sort_values(["gpu", "concurrency"], kind="stable")
