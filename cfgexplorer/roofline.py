"""The performance model: a roofline per forward step, and continuous batching on top.

Per forward step on one GPU of a tensor-parallel group::

    step = max(linear FLOPs / (peak x eff(tokens)), weight bytes / (bandwidth x eff_bw))
         + max(attention FLOPs / (peak x eff), KV bytes / (bandwidth x eff_bw))
         + TP all-reduces (two per layer, ring cost over the interconnect, plus latency)
         + a fixed per-step overhead

FLOPs and bytes come from the ModelSpec's real module shapes
(:func:`cfgexplorer.params.layer_params`): MoE layers count the active experts
for FLOPs and the expected number of distinct experts a batch touches for
bytes; attention FLOPs run over the actual (window-capped) context; MLA
decodes over its latent cache. Linear layers and attention are separate
kernels, so each gets its own roofline and the two are added.

Serving with continuous batching, one of two arrival models:

- ``random`` (the default; Poisson-like traffic from many independent users,
  what vLLM's ``bench serve --request-rate`` and inference-perf send). The load
  is a request rate R per replica; concurrency C = R x E2E (Little's law), and
  whichever of the two is given, the other is solved for with a bounded
  iteration. Each prompt adds ``p`` of work to the steps it rides in (its
  prefill steps less the decode steps they replace), so prefill takes the
  fraction ``rho = R x p`` of the engine's time, and:

  - ITL = decode step at batch ``1 + C`` / (1 - rho): the steps a request
    decodes in are stretched by the prompts that arrive meanwhile;
  - TTFT = the rest of the step in progress + the prompt's own prefill steps
    + an M/D/1 wait ``rho x p / (2 (1 - rho))`` for the prompts ahead of it.

  Collisions are rare at moderate load and grow as rho approaches 1; a rate
  the replica cannot carry (rho >= 1, or more requests in flight than the
  scheduler or the KV cache holds) is reported as saturated, never as a
  runaway figure.
- ``synchronized`` (the calibration benchmarks' fixed-length closed-loop
  clients, which start and finish in lockstep): ITL = decode step at batch C
  plus the compute of the ``(C - 1) / output`` prompts arriving per step; TTFT
  = half a step of waiting plus the prefill of the prompt batched with the
  ``PREFILL_COLLISION_FRACTION x (C - 1)`` prompts that collide with it.

In both, prefill is chunked by the engine's token budget, E2E = TTFT +
(output - 1) x ITL and throughput = C x output / E2E.

The efficiencies are named constants per GPU generation and dtype, fitted
on ``data/measurements/serving_calibration.csv`` (TensorRT-LLM figures); the
engine difference is a separate, named factor. Every estimate carries the
model version and an error band from the calibration residuals.

Pure functions and dataclasses; no Panel, Param or HoloViews.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from cfgexplorer.errors import InvalidDeploymentError, UserError
from cfgexplorer.gpus import GPU, peak_tflops

if TYPE_CHECKING:
    from collections.abc import Mapping

    from cfgexplorer.quant import QuantScheme
    from cfgexplorer.spec import ModelSpec

MODEL_VERSION = "roofline-2"  # 2: arrival models, open-loop rates, measured vLLM factor
PROVENANCE_KIND = "estimated"

# --- constants ------------------------------------------------------------------------
# Efficiencies: fraction of the datasheet figure a serving engine reaches. Generations
# with calibration rows are fitted (scripts/perf_calibration_report.py --fit); the others
# borrow the nearest calibrated generation and say so in their source.

ACTIVATION_BYTES = 2  # bytes per activation element on the wire (bf16/fp16 all-reduce)
# NCCL ring all-reduce reaches ~80% of the link's one-way bandwidth as bus bandwidth
# (assumption from typical nccl-tests all_reduce_perf busbw on NVLink/PCIe systems).
ALLREDUCE_BUS_EFFICIENCY = 0.8  # dimensionless
# Extra latency of a small all-reduce over PCIe relative to NVLink/xGMI (assumption: NCCL
# over PCIe has no NVLink SHARP/LL128 fast path; no calibration rows).
PCIE_ALLREDUCE_LATENCY_FACTOR = 2.0  # dimensionless
# Synchronized arrivals only: fraction of the other C - 1 closed-loop clients whose prompts
# land in the same prefill batch as a new one; a property of the calibration benchmarks'
# lockstep fixed-length clients, not of random traffic (calibration fit; pinned by nim_02:
# TTFT 41 ms at C=25 against 8.9 ms at C=1).
PREFILL_COLLISION_FRACTION = 0.41  # dimensionless
# Time a served request spends outside the engine before its first token (HTTP, tokenizer,
# detokenizer) as a benchmark client measures it (calibration fit on the NIM C=1 rows).
FRONTEND_TTFT_MS = 3.1  # milliseconds
# Compute and memory traffic of one kernel overlap imperfectly when neither dominates; the
# step combines them as (c**p + m**p)**(1/p), the hard max as p grows (calibration fit:
# pinned by the 128-token prefills, which sit near the ridge point).
ROOFLINE_OVERLAP_EXPONENT = 1.25  # dimensionless
# Arrival models (see the module docstring); random is what vLLM users' traffic looks like.
ARRIVALS = ("random", "synchronized")
DEFAULT_ARRIVALS = "random"
# Bisection steps of the rate <-> concurrency solves: each halves the bracket, so 60 steps
# reach double precision on any bracket (numerical choice, not a measurement).
SOLVER_STEPS = 60  # iterations
# Steps of the monotone iteration C <- R x E2E(C) before falling back to bisection (numerical
# choice: it converges in a handful of steps below ~90% of saturation).
FIXED_POINT_STEPS = 40  # iterations
# Default vLLM scheduler limit on running sequences when the capacity plan gives none (vLLM's
# --max-num-seqs default on large GPUs).
DEFAULT_MAX_NUM_SEQS = 1024  # sequences


@dataclass(frozen=True)
class Efficiency:
    """Calibrated efficiencies of one GPU generation (dimensionless unless named)."""

    generation: str
    compute_16bit: float  # large-GEMM fraction of the dense 16-bit peak
    compute_8bit: float  # large-GEMM fraction of the dense fp8/int8 peak
    compute_4bit: float  # large-GEMM fraction of the dense fp4 peak
    bandwidth: float  # fraction of the datasheet memory bandwidth
    step_overhead_ms: float  # fixed cost of one engine step (launches, sampling, scheduling)
    allreduce_latency_us: float  # latency of one small all-reduce over NVLink/xGMI
    source: str

    def compute(self, dtype_class: str) -> float:
        """The large-GEMM efficiency for a matmul dtype class (16bit, 8bit, 4bit)."""
        return {
            "16bit": self.compute_16bit,
            "8bit": self.compute_8bit,
            "4bit": self.compute_4bit,
        }[dtype_class]


_HOPPER = Efficiency(
    generation="hopper",
    compute_16bit=0.64,
    compute_8bit=0.49,
    compute_4bit=0.49,
    bandwidth=0.79,
    step_overhead_ms=2.0,
    allreduce_latency_us=11.0,
    source=(
        "calibration fit (scripts/perf_calibration_report.py --fit) on the H100-SXM and "
        "H200-SXM rows of serving_calibration.csv; bandwidth and step overhead tied with "
        "ampere; fp4 untested, set to the fp8 value"
    ),
)
_AMPERE = Efficiency(
    generation="ampere",
    compute_16bit=0.73,
    compute_8bit=0.73,
    compute_4bit=0.73,
    bandwidth=0.79,
    step_overhead_ms=2.0,
    allreduce_latency_us=31.0,
    source=(
        "calibration fit (scripts/perf_calibration_report.py --fit) on the A100-SXM-80GB "
        "rows of serving_calibration.csv; bandwidth and step overhead tied with hopper; "
        "no fp8/fp4 units, so those classes equal the 16-bit value"
    ),
)


def _borrowed(base: Efficiency, generation: str, why: str) -> Efficiency:
    return replace(base, generation=generation, source=f"no calibration rows; {why}")


EFFICIENCY: Mapping[str, Efficiency] = MappingProxyType(
    {
        "hopper": _HOPPER,
        "ampere": _AMPERE,
        "turing": _borrowed(_AMPERE, "turing", "assumed equal to ampere (same kernel class)"),
        "ada": _borrowed(_AMPERE, "ada", "assumed equal to ampere (GDDR parts, no TMA/wgmma)"),
        "blackwell": _borrowed(_HOPPER, "blackwell", "assumed equal to hopper"),
        "cdna2": _borrowed(_AMPERE, "cdna2", "assumed equal to ampere"),
        "cdna3": _borrowed(_HOPPER, "cdna3", "assumed equal to hopper"),
        "cdna4": _borrowed(_HOPPER, "cdna4", "assumed equal to hopper"),
        "gaudi3": _borrowed(_HOPPER, "gaudi3", "assumed equal to hopper"),
    }
)
DEFAULT_EFFICIENCY = _borrowed(_AMPERE, "unknown", "unknown generation; assumed equal to ampere")


@dataclass(frozen=True)
class EngineFactor:
    """How much slower (>1) or faster than TensorRT-LLM a serving engine runs the same step."""

    name: str
    prefill_time: float  # multiplier on prefill (TTFT) step time, dimensionless
    decode_time: float  # multiplier on decode (ITL) step time, dimensionless
    max_num_batched_tokens: int  # prefill token budget per step, tokens
    source: str
    # Time outside the engine before the first token (API server, tokenizer, HTTP), ms;
    # None: the calibrated FRONTEND_TTFT_MS of the TensorRT-LLM/NIM rows.
    frontend_ttft_ms: float | None = None


# vLLM against the TensorRT-calibrated model, fitted on real vLLM measurements (scripts/
# perf_validation_report.py --fit; points in cfgexplorer/perf_validation.py): the decode
# multiplier rests on 6 ITL/E2E points (KubeCon NA 2025 stages 0-3, vLLM v0.11.0; llm-d exp-7
# H100 2 and 3 replicas, vLLM ~v0.8), the prefill one on the 2 exp-7 TTFTs (8k and 10k-token
# prompts), so it is the weaker figure. Cross-check: Spheron 'vLLM vs TensorRT-LLM vs SGLang:
# H100 Benchmarks (2026)', Llama 3.3 70B FP8: throughput 2100 vs 1850 tok/s and TTFT p50
# 105 vs 120 ms, x1.14 for both; that compares with a current TensorRT-LLM, while our
# reference is the TensorRT-LLM 0.9 / NIM 1.0 calibration, which 2025 vLLM matches.
VLLM_PREFILL_TIME = 1.05  # dimensionless, fit on the exp-7 H100 TTFTs
VLLM_DECODE_TIME = 0.97  # dimensionless, fit on the KubeCon and exp-7 ITL/E2E
# vLLM's API server, tokenizer and the benchmark's in-cluster HTTP hop before the first token:
# KubeCon stage-0 TTFT (31.1 ms, one request in flight, 204-token prompt) less the modelled
# prefill step (fit, scripts/perf_validation_report.py --fit).
VLLM_FRONTEND_TTFT_MS = 18.3  # milliseconds

ENGINES: Mapping[str, EngineFactor] = MappingProxyType(
    {
        "trtllm": EngineFactor(
            name="trtllm",
            prefill_time=1.0,
            decode_time=1.0,
            max_num_batched_tokens=8192,
            source=(
                "reference: the calibration data are TensorRT-LLM/NIM measurements; "
                "budget = TensorRT-LLM's default max_num_tokens (8192)"
            ),
        ),
        "vllm": EngineFactor(
            name="vllm",
            prefill_time=VLLM_PREFILL_TIME,
            decode_time=VLLM_DECODE_TIME,
            max_num_batched_tokens=8192,
            frontend_ttft_ms=VLLM_FRONTEND_TTFT_MS,
            source=(
                f"measured on real vLLM runs relative to the TensorRT-calibrated model "
                f"(scripts/perf_validation_report.py --fit): prefill x{VLLM_PREFILL_TIME}, decode "
                f"x{VLLM_DECODE_TIME}, frontend {VLLM_FRONTEND_TTFT_MS} ms, on inference-perf's "
                "KubeCon NA 2025 sweep (vLLM v0.11.0, stages 0-3) and llm-d exp-7 H100 "
                "(2 and 3 replicas), Llama-3-8B class on H100, random arrivals; cross-check: "
                "Spheron's H100 benchmark (Llama 3.3 70B FP8) puts vLLM at x1.14 of "
                "TensorRT-LLM for both; budget = vLLM's max_num_batched_tokens default on "
                "large GPUs"
            ),
        ),
        "sglang": EngineFactor(
            name="sglang",
            prefill_time=1.07,
            decode_time=1.09,
            max_num_batched_tokens=8192,
            source=(
                "same Spheron H100 benchmark: throughput 2100 vs 1920 tok/s (x1.09), TTFT p50 "
                "105 vs 112 ms (x1.07); budget = SGLang's chunked-prefill size (8192)"
            ),
        ),
    }
)
DEFAULT_ENGINE = "vllm"

# Error band: multiplicative quantiles (10th, 90th percentile) of measured / predicted on
# the 21 calibration rows without queueing, engine trtllm (scripts/perf_calibration_report.py
# recomputes them; tests/test_roofline.py checks them against the CSV). In-sample: the same
# rows fitted the efficiencies, so the error on new models and GPUs will be wider.
BAND_QUANTILES = (0.1, 0.9)
ERROR_BAND: Mapping[str, tuple[float, float]] = MappingProxyType(
    {
        "ttft_ms": (0.94, 1.11),
        "itl_ms": (0.89, 1.11),
        "e2e_s": (0.91, 1.10),
        "output_tok_s": (0.91, 1.10),
    }
)
# The same quantiles on the judged real vLLM points (engine vllm, random arrivals; scripts/
# perf_validation_report.py recomputes them; tests/test_perf_validation.py checks them): 2
# TTFT and 6 ITL/E2E/throughput points, in-sample for the vLLM factor fitted on them.
VLLM_VALIDATION_BAND: Mapping[str, tuple[float, float]] = MappingProxyType(
    {
        "ttft_ms": (0.82, 1.02),
        "itl_ms": (0.96, 1.08),
        "e2e_s": (0.96, 1.08),
        "output_tok_s": (0.97, 1.01),
    }
)
LATENCY_METRICS = ("ttft_ms", "itl_ms", "e2e_s")


def band_factors(engine: str) -> dict[str, tuple[float, float]]:
    """(lower, upper) multipliers of an engine's band: vLLM takes the wider of the calibration
    band and its own validation band; the others have only the calibration band."""
    if get_engine(engine).name != "vllm":
        return dict(ERROR_BAND)
    return {
        k: (min(lo, VLLM_VALIDATION_BAND[k][0]), max(hi, VLLM_VALIDATION_BAND[k][1]))
        for k, (lo, hi) in ERROR_BAND.items()
    }


def band_basis(engine: str) -> str:
    """What an engine's error band was measured on, in one sentence."""
    calibration = (
        f"{int(BAND_QUANTILES[0] * 100)}th-{int(BAND_QUANTILES[1] * 100)}th percentile of "
        "measured/predicted on the 21 TensorRT-LLM/NIM calibration rows (engine trtllm, "
        "synchronized clients, in-sample: they fitted the efficiencies)"
    )
    name = get_engine(engine).name
    if name == "vllm":
        return (
            f"the wider of the {calibration} and the same percentiles on the real vLLM "
            "validation points (KubeCon NA 2025 stages 0-3, llm-d exp-7 H100; random "
            "arrivals; in-sample: they fitted the vLLM factor; 2 TTFT, 6 ITL/E2E points)"
        )
    if name == "sglang":
        return f"the {calibration}; SGLang's factor is a third-party figure, not validated here"
    return f"the {calibration}"


def engine_frontend_ms(engine: EngineFactor, constants: ModelConstants) -> float:
    """The engine's time outside the model before the first token, milliseconds."""
    if engine.frontend_ttft_ms is None:
        return constants.frontend_ttft_ms
    return engine.frontend_ttft_ms


def get_engine(name: str, engines: Mapping[str, EngineFactor] | None = None) -> EngineFactor:
    """The engine factor for ``vllm``, ``sglang`` or ``trtllm`` (from ``engines`` if given).

    Raises
    ------
    InvalidDeploymentError
        For an engine the model has no factor for.
    """
    table = ENGINES if engines is None else engines
    key = (name or "").strip().lower().replace("-", "").replace("_", "")
    key = {"tensorrtllm": "trtllm", "trt": "trtllm", "nim": "trtllm"}.get(key, key)
    if key not in table:
        raise InvalidDeploymentError(f"unknown engine {name!r}; choose one of {', '.join(table)}")
    return table[key]


@dataclass(frozen=True)
class ModelConstants:
    """Every calibrated constant of the model in one place (the fit replaces these)."""

    efficiency: Mapping[str, Efficiency] = field(default_factory=lambda: EFFICIENCY)
    prefill_collision_fraction: float = PREFILL_COLLISION_FRACTION
    frontend_ttft_ms: float = FRONTEND_TTFT_MS
    overlap_exponent: float = ROOFLINE_OVERLAP_EXPONENT
    engines: Mapping[str, EngineFactor] = field(default_factory=lambda: ENGINES)

    def for_gpu(self, gpu: GPU) -> Efficiency:
        """The efficiency constants of a GPU's generation."""
        return self.efficiency.get(gpu.generation, DEFAULT_EFFICIENCY)

    def to_dict(self) -> dict[str, Any]:
        return {
            "efficiency": {k: asdict(v) for k, v in self.efficiency.items()},
            "prefill_collision_fraction": self.prefill_collision_fraction,
            "frontend_ttft_ms": self.frontend_ttft_ms,
            "overlap_exponent": self.overlap_exponent,
            "allreduce_bus_efficiency": ALLREDUCE_BUS_EFFICIENCY,
            "pcie_allreduce_latency_factor": PCIE_ALLREDUCE_LATENCY_FACTOR,
            "engines": {k: asdict(v) for k, v in self.engines.items()},
        }


DEFAULT_CONSTANTS = ModelConstants()


def efficiency_for(gpu: GPU) -> Efficiency:
    """The efficiency constants of a GPU's generation."""
    return DEFAULT_CONSTANTS.for_gpu(gpu)


# --- the work of one forward step, per TP rank ------------------------------------------


@dataclass(frozen=True)
class AttentionGroup:
    """Layers that share an attention shape, as one TP rank sees them."""

    kind: str  # full, sliding, chunked, mla, linear, mamba
    layers: int
    heads: float  # query heads on this rank
    prefill_dim: int  # qk_dim + v_dim per head for prefill
    decode_dim: int  # qk_dim + v_dim per head for decode (MLA: absorbed into the latent)
    kv_bytes_per_token: int  # per layer on this rank
    window: int | None  # tokens of context a layer attends to at most
    state_bytes: int  # per sequence per layer (linear attention / Mamba)
    state_elems: int  # per sequence per layer on this rank


@dataclass(frozen=True)
class ModelWork:
    """Per-rank FLOPs and bytes of a model under one TP size, weight scheme and KV dtype."""

    model_id: str
    tp: int
    dtype_class: str  # matmul dtype class: 16bit, 8bit, 4bit
    compute_dtype: str  # dtype name passed to gpus.peak_tflops
    linear_flops_per_token: float  # dense + active experts, per rank
    lm_head_flops_per_token: float  # per logits row, per rank
    dense_weight_bytes: float  # read every step: attention, dense MLP, shared experts, router
    lm_head_bytes: float
    moe_layers: int
    experts: int
    experts_per_token: int
    expert_bytes: float  # one expert of one MoE layer on this rank
    attention: tuple[AttentionGroup, ...]
    allreduces_per_step: int  # two per layer when tp > 1
    hidden_size: int
    kv_dtype: str

    @property
    def weight_bytes(self) -> float:
        """Every weight of the decoder layers and LM head on this rank (no embedding)."""
        return (
            self.dense_weight_bytes
            + self.lm_head_bytes
            + self.moe_layers * self.experts * self.expert_bytes
        )

    def expert_bytes_read(self, tokens: float) -> float:
        """Expected bytes of distinct experts a step of ``tokens`` tokens touches."""
        if not self.moe_layers or tokens <= 0:
            return 0.0
        e, k = self.experts, self.experts_per_token
        distinct = e * (1.0 - (1.0 - k / e) ** tokens)
        return self.moe_layers * distinct * self.expert_bytes


def _matmul_dtype(quant: QuantScheme) -> tuple[str, str]:
    """(dtype name for the peak, dtype class) of the linear layers' matmuls."""
    method = quant.method.lower()
    if quant.weight_bits == 8 and ("fp8" in method or method in ("compressed-tensors",)):
        return "fp8", "8bit"
    if quant.weight_bits == 8 and "int8" in method:
        return "int8", "8bit"
    if method == "nvfp4":
        return "fp4", "4bit"
    # Weight-only int4/mxfp4 and unquantized checkpoints multiply at 16 bit.
    return "bf16", "16bit"


def model_work(
    spec: ModelSpec,
    tp: int = 1,
    quantization: str | None = None,
    kv_cache_dtype: str = "auto",
) -> ModelWork:
    """FLOPs and bytes of one forward step of ``spec`` on one of ``tp`` ranks.

    Parameters
    ----------
    spec
        The model.
    tp
        Tensor-parallel size (must be one vLLM accepts for the model).
    quantization
        ``"fp8"`` for vLLM's runtime FP8 of an unquantized checkpoint, else None.
    kv_cache_dtype
        ``auto`` (model dtype) or an fp8 variant.

    Raises
    ------
    InvalidDeploymentError
        For a TP size the model cannot be split by.
    """
    from cfgexplorer.memory import (
        kv_dtype_bytes,
        kv_replicated_rows,
        layer_kv_bytes_per_token,
        layer_state_bytes,
        linear_rank_bytes,
        padded_vocab,
        tp_rejection,
    )
    from cfgexplorer.params import Linear as Lin
    from cfgexplorer.params import is_quantized, layer_params, linear_bytes
    from cfgexplorer.quant import runtime_fp8
    from cfgexplorer.spec import CHUNKED, FULL, LINEAR, MAMBA, MLA, NONE, SLIDING

    reason = tp_rejection(spec, tp)
    if reason:
        raise InvalidDeploymentError(f"tp={tp} does not work for {spec.model_id}: {reason}")
    quant = runtime_fp8(spec.quant) if quantization == "fp8" else spec.quant
    compute_dtype, dtype_class = _matmul_dtype(quant)
    kv_bytes = kv_dtype_bytes(kv_cache_dtype, spec.dtype)
    dtype_bytes = spec.dtype_bytes
    moe = spec.moe

    flops = 0.0
    dense_bytes = 0.0
    expert_bytes_by_layer: list[float] = []
    groups: dict[tuple[Any, ...], int] = {}
    for i, la in enumerate(spec.layers):
        lp, _ = layer_params(spec, i)
        quantized = {
            k: is_quantized(quant, k, i, "model.layers") for k in {m.kind for m in lp.linears}
        }
        layer_expert_bytes = 0.0
        for lin in lp.linears:
            lin = kv_replicated_rows(spec, la, lin, tp)
            nbytes = linear_rank_bytes(spec, quant, lin, quantized[lin.kind], tp, 1)
            per_matrix = lin.rows * lin.cols
            if lin.tp == "replicated":
                shard = 1
            else:
                shard = tp
            if lin.kind == "experts" and moe:
                flops += 2.0 * per_matrix * moe.experts_per_token / shard
                layer_expert_bytes += nbytes / lin.count
            else:
                flops += 2.0 * per_matrix * lin.count / shard
                dense_bytes += nbytes
        if layer_expert_bytes:
            expert_bytes_by_layer.append(layer_expert_bytes)

        if la.kind == NONE:
            continue
        heads = la.num_heads / tp
        if la.kind == MLA and spec.mla:
            m = spec.mla
            prefill_dim = (m.qk_nope_head_dim + m.qk_rope_head_dim) + m.v_head_dim
            decode_dim = (m.kv_lora_rank + m.qk_rope_head_dim) + m.kv_lora_rank
        elif la.kind in (FULL, SLIDING, CHUNKED):
            prefill_dim = decode_dim = la.head_dim + la.v_head_dim
        else:
            prefill_dim = decode_dim = 0
        window = la.window if la.kind in (SLIDING, CHUNKED) else None
        kv_tok = layer_kv_bytes_per_token(la, tp, kv_bytes)
        state = layer_state_bytes(spec, la, tp, dtype_bytes) if la.kind in (LINEAR, MAMBA) else 0
        elems = (la.conv_state_elems + la.ssm_state_elems) // tp
        key = (la.kind, heads, prefill_dim, decode_dim, kv_tok, window, state, elems)
        groups[key] = groups.get(key, 0) + 1

    vocab_rank = padded_vocab(spec.vocab_size) / tp
    head_lin = Lin("lm_head", int(vocab_rank), spec.hidden_size)
    head_quantized = (not spec.tie_word_embeddings) and is_quantized(quant, "lm_head", None, "")
    lm_head_bytes = linear_bytes(spec, quant, head_lin, head_quantized)

    attention = tuple(
        AttentionGroup(
            kind=k[0],
            layers=n,
            heads=k[1],
            prefill_dim=k[2],
            decode_dim=k[3],
            kv_bytes_per_token=k[4],
            window=k[5],
            state_bytes=k[6],
            state_elems=k[7],
        )
        for k, n in groups.items()
    )
    expert_bytes = (
        sum(expert_bytes_by_layer) / len(expert_bytes_by_layer) if expert_bytes_by_layer else 0.0
    )
    return ModelWork(
        model_id=spec.model_id,
        tp=tp,
        dtype_class=dtype_class,
        compute_dtype=compute_dtype,
        linear_flops_per_token=flops,
        lm_head_flops_per_token=2.0 * vocab_rank * spec.hidden_size,
        dense_weight_bytes=dense_bytes,
        lm_head_bytes=lm_head_bytes,
        moe_layers=len(expert_bytes_by_layer),
        experts=moe.num_experts if moe else 0,
        experts_per_token=moe.experts_per_token if moe else 0,
        expert_bytes=expert_bytes,
        attention=attention,
        allreduces_per_step=2 * spec.num_layers if tp > 1 else 0,
        hidden_size=spec.hidden_size,
        kv_dtype=kv_cache_dtype,
    )


# --- one step on one GPU --------------------------------------------------------------


@dataclass(frozen=True)
class StepTime:
    """Time of one forward step on one GPU, by part (milliseconds) with its FLOPs and bytes."""

    linear_compute_ms: float
    weights_ms: float
    attention_compute_ms: float
    kv_ms: float
    comm_ms: float
    overhead_ms: float
    flops: float
    bytes: float
    overlap_exponent: float = ROOFLINE_OVERLAP_EXPONENT

    @property
    def total_ms(self) -> float:
        p = self.overlap_exponent
        return (
            soft_max(self.linear_compute_ms, self.weights_ms, p)
            + soft_max(self.attention_compute_ms, self.kv_ms, p)
            + self.comm_ms
            + self.overhead_ms
        )

    @property
    def bound(self) -> str:
        """``compute`` or ``memory``: which side of the roofline dominates the step."""
        compute = self.linear_compute_ms + self.attention_compute_ms
        memory = self.weights_ms + self.kv_ms
        return "compute" if compute > memory else "memory"

    @property
    def intensity(self) -> float:
        """Arithmetic intensity, FLOPs per byte moved."""
        return self.flops / self.bytes if self.bytes else math.inf

    def to_dict(self) -> dict[str, Any]:
        return {
            "total_ms": round(self.total_ms, 4),
            "linear_compute_ms": round(self.linear_compute_ms, 4),
            "weights_ms": round(self.weights_ms, 4),
            "attention_compute_ms": round(self.attention_compute_ms, 4),
            "kv_ms": round(self.kv_ms, 4),
            "comm_ms": round(self.comm_ms, 4),
            "overhead_ms": round(self.overhead_ms, 4),
            "bound": self.bound,
            "arithmetic_intensity_flop_per_byte": round(self.intensity, 2),
        }


@dataclass(frozen=True)
class Hardware:
    """The figures of one GPU the step model needs, with its efficiencies applied."""

    name: str
    peak_flops: float  # FLOP/s of the linear layers' matmul dtype (dense)
    peak_flops_16bit: float  # FLOP/s for attention
    bandwidth_bytes_s: float  # effective, bytes/s
    link_bytes_s: float  # effective all-reduce bus bandwidth, bytes/s
    allreduce_latency_s: float
    eff: Efficiency
    dtype_class: str  # the class actually used (fp8 falls back to 16bit without fp8 units)
    overlap_exponent: float = ROOFLINE_OVERLAP_EXPONENT


def hardware(gpu: GPU, work: ModelWork, constants: ModelConstants = DEFAULT_CONSTANTS) -> Hardware:
    """Resolve a GPU's peaks for a model's matmul dtype, with efficiencies.

    Raises
    ------
    InvalidDeploymentError
        When the GPU has no compute or bandwidth figures (a custom GPU).
    """
    peak = peak_tflops(gpu, work.compute_dtype)
    peak16 = peak_tflops(gpu, "bf16")
    if not peak or not peak16 or not gpu.memory_bandwidth_gbps:
        raise InvalidDeploymentError(
            f"{gpu.name} has no TFLOPS or bandwidth figures, so its speed cannot be estimated; "
            "pick a catalog GPU"
        )
    dtype_class = work.dtype_class
    if dtype_class == "8bit" and work.compute_dtype == "fp8" and not gpu.fp8_tflops:
        dtype_class = "16bit"
    if dtype_class == "4bit" and not gpu.fp4_tflops:
        dtype_class = "16bit"
    eff = constants.for_gpu(gpu)
    latency_us = eff.allreduce_latency_us
    if (gpu.interconnect_kind or "").lower().startswith("pcie"):
        latency_us *= PCIE_ALLREDUCE_LATENCY_FACTOR
    return Hardware(
        name=gpu.name,
        peak_flops=peak * 1e12,
        peak_flops_16bit=peak16 * 1e12,
        bandwidth_bytes_s=gpu.memory_bandwidth_gbps * 1e9 * eff.bandwidth,
        link_bytes_s=(gpu.interconnect_gbps or 16.0) * 1e9 * ALLREDUCE_BUS_EFFICIENCY,
        allreduce_latency_s=latency_us * 1e-6,
        eff=eff,
        dtype_class=dtype_class,
        overlap_exponent=constants.overlap_exponent,
    )


def soft_max(compute: float, memory: float, p: float) -> float:
    """The roofline's max of compute and memory time, smoothed: (c**p + m**p)**(1/p)."""
    if compute <= 0 or memory <= 0:
        return max(compute, memory)
    hi, lo = max(compute, memory), min(compute, memory)
    return hi * (1.0 + (lo / hi) ** p) ** (1.0 / p)


def _attended(context: float, window: int | None) -> float:
    return min(context, window) if window else context


def _prefill_attended(new: float, prior: float, window: int | None) -> float:
    """Sum over ``new`` causal query tokens (after ``prior`` cached ones) of their context."""
    if not window:
        return new * prior + new * (new + 1) / 2
    total = 0.0
    grow = max(0.0, min(new, window - prior))  # tokens whose context is still under the window
    total += grow * prior + grow * (grow + 1) / 2
    total += (new - grow) * window
    return total


def step_time(
    work: ModelWork,
    hw: Hardware,
    decode_seqs: float = 0.0,
    decode_context: float = 0.0,
    prefill_tokens: float = 0.0,
    prefill_seqs: float = 0.0,
    overhead: bool = True,
) -> StepTime:
    """One forward step: ``decode_seqs`` sequences at ``decode_context`` tokens of context,
    plus ``prefill_tokens`` prompt tokens of ``prefill_seqs`` fresh sequences.

    Parameters
    ----------
    work, hw
        The model's per-rank work and the GPU.
    decode_seqs
        Sequences generating one token each in this step.
    decode_context
        Mean context length of those sequences (tokens).
    prefill_tokens
        Prompt tokens processed in this step (all sequences together).
    prefill_seqs
        Number of prompts those tokens belong to (>= 1 when prefill_tokens > 0).
    overhead
        Include the fixed per-step overhead.
    """
    tokens = decode_seqs + prefill_tokens
    logits_rows = decode_seqs + prefill_seqs
    linear_flops = tokens * work.linear_flops_per_token + logits_rows * work.lm_head_flops_per_token
    weight_bytes = work.dense_weight_bytes + work.lm_head_bytes + work.expert_bytes_read(tokens)
    linear_compute = linear_flops / (hw.peak_flops * hw.eff.compute(hw.dtype_class))

    per_prompt = prefill_tokens / prefill_seqs if prefill_seqs else 0.0
    attn_flops = 0.0
    kv_bytes = 0.0
    for g in work.attention:
        if g.state_elems:
            # Linear attention / Mamba: update and read a fixed state per token.
            attn_flops += g.layers * tokens * 4.0 * g.state_elems
            kv_bytes += g.layers * (decode_seqs + prefill_seqs) * 2.0 * g.state_bytes
            continue
        dec_ctx = _attended(decode_context, g.window)
        pre_ctx = prefill_seqs * _prefill_attended(per_prompt, 0.0, g.window)
        attn_flops += (
            g.layers
            * 2.0
            * g.heads
            * (g.decode_dim * decode_seqs * dec_ctx + g.prefill_dim * pre_ctx)
        )
        # Decode reads each sequence's cached context; prefill writes its new tokens.
        kv_bytes += g.layers * g.kv_bytes_per_token * (decode_seqs * dec_ctx + prefill_tokens)
    eff16 = hw.eff.compute_16bit
    attention_compute = attn_flops / (hw.peak_flops_16bit * eff16)

    comm = 0.0
    if work.allreduces_per_step and work.tp > 1:
        message = tokens * work.hidden_size * ACTIVATION_BYTES
        ring = 2.0 * (work.tp - 1) / work.tp * message / hw.link_bytes_s
        comm = work.allreduces_per_step * (ring + hw.allreduce_latency_s)

    return StepTime(
        linear_compute_ms=linear_compute * 1e3,
        weights_ms=weight_bytes / hw.bandwidth_bytes_s * 1e3,
        attention_compute_ms=attention_compute * 1e3,
        kv_ms=kv_bytes / hw.bandwidth_bytes_s * 1e3,
        comm_ms=comm * 1e3,
        overhead_ms=hw.eff.step_overhead_ms if overhead else 0.0,
        flops=linear_flops + attn_flops,
        bytes=weight_bytes + kv_bytes,
        overlap_exponent=hw.overlap_exponent,
    )


# --- requests and estimates -----------------------------------------------------------


@dataclass(frozen=True)
class EstimateRequest:
    """One operating point: a model on ``tp`` GPUs of one type, at a load per replica.

    The load is ``concurrency`` (requests in flight per replica, one TP group)
    or, when ``request_rate`` is set, a request rate per replica in requests
    per second, from which the concurrency follows (Little's law). ``batching``
    is ``continuous`` (vLLM/SGLang/in-flight batching) or ``static`` (all
    sequences start together, as TensorRT-LLM's gptSessionBenchmark measured).
    ``arrivals`` is ``random`` (Poisson-like traffic) or ``synchronized``
    (fixed-length closed-loop clients, as the calibration benchmarks ran).
    ``kv_max_concurrency`` is the KV-cache limit from the capacity planner;
    None lets the estimator plan it.
    """

    spec: ModelSpec
    gpu: GPU
    input_len: int
    output_len: int
    concurrency: float = 1
    tp: int = 1
    quantization: str | None = None
    kv_cache_dtype: str = "auto"
    engine: str = DEFAULT_ENGINE
    engine_profile: str | None = None
    batching: str = "continuous"
    max_num_seqs: int | None = None
    kv_max_concurrency: float | None = None
    arrivals: str = DEFAULT_ARRIVALS
    request_rate: float | None = None  # requests/s per replica; None: use concurrency


@dataclass(frozen=True)
class ErrorBand:
    """Expected spread of the truth around an estimate, from the calibration residuals."""

    lower: dict[str, float]
    upper: dict[str, float]
    factors: dict[str, tuple[float, float]]
    basis: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "lower": {k: _round(v) for k, v in self.lower.items()},
            "upper": {k: _round(v) for k, v in self.upper.items()},
            "factors": {k: [lo, hi] for k, (lo, hi) in self.factors.items()},
            "basis": self.basis,
        }


def _round(value: float, digits: int = 4) -> float:
    if not math.isfinite(value):
        return value
    return float(f"{value:.{digits}g}") if abs(value) < 1 else round(value, 3)


@dataclass(frozen=True)
class Estimate:
    """Predicted serving figures of one operating point, with provenance and an error band."""

    gpu: str
    tp: int
    concurrency: float
    input_len: int
    output_len: int
    engine: str
    ttft_ms: float
    itl_ms: float
    e2e_s: float
    output_tok_s: float  # per replica
    request_rate_per_s: float  # per replica
    prefill_bound: str
    decode_bound: str
    prefill_intensity: float  # FLOP/byte
    decode_intensity: float  # FLOP/byte
    feasible: bool
    infeasible_reason: str | None
    kv_max_concurrency: float | None
    band: ErrorBand
    decode_step: StepTime
    prefill_step: StepTime
    queued: bool = False
    notes: tuple[str, ...] = ()
    arrivals: str = DEFAULT_ARRIVALS
    prefill_utilization: float = 0.0  # fraction of engine time spent on prompts (random)
    colliding_prompts: float = 1.0  # prompts prefilled ahead of or with a new one, incl. it
    saturated: bool = False  # the request rate exceeds what the replica sustains
    sustainable_rate_per_s: float | None = None  # per replica, set when saturated

    @property
    def output_tok_s_per_gpu(self) -> float:
        return self.output_tok_s / self.tp

    @property
    def bound(self) -> str:
        """Which resource limits the run as a whole: the decode step's."""
        return self.decode_bound

    def upper(self, metric: str) -> float:
        """The band's upper edge of a latency metric (the figure SLOs are checked against)."""
        return self.band.upper[metric]

    def provenance(self) -> dict[str, Any]:
        return provenance(self.engine, self.arrivals)

    def to_dict(self) -> dict[str, Any]:
        return {
            "gpu": self.gpu,
            "tp": self.tp,
            "concurrency": self.concurrency,
            "input_len": self.input_len,
            "output_len": self.output_len,
            "engine": self.engine,
            "ttft_ms": _round(self.ttft_ms),
            "itl_ms": _round(self.itl_ms),
            "e2e_s": _round(self.e2e_s),
            "output_tok_s": _round(self.output_tok_s),
            "output_tok_s_per_gpu": _round(self.output_tok_s_per_gpu),
            "request_rate_per_s": _round(self.request_rate_per_s),
            "feasible": self.feasible,
            "infeasible_reason": self.infeasible_reason,
            "kv_max_concurrency": None
            if self.kv_max_concurrency is None
            else round(self.kv_max_concurrency, 2),
            "queued": self.queued,
            "arrivals": self.arrivals,
            "prefill_utilization": _round(self.prefill_utilization),
            "colliding_prompts": _round(self.colliding_prompts),
            "saturated": self.saturated,
            "sustainable_rate_per_s": None
            if self.sustainable_rate_per_s is None
            else _round(self.sustainable_rate_per_s),
            "prefill": {"bound": self.prefill_bound, **self.prefill_step.to_dict()},
            "decode": {"bound": self.decode_bound, **self.decode_step.to_dict()},
            "error_band": self.band.to_dict(),
            "provenance": self.provenance(),
            "notes": list(self.notes),
        }


ARRIVALS_TEXT = {
    "random": "random: Poisson-like traffic (requests arrive independently); prompts collide "
    "as often as the prefill utilization says",
    "synchronized": "synchronized: fixed-length closed-loop clients in lockstep, as the "
    "TensorRT-LLM/NIM calibration benchmarks ran",
    "static": "static batch: all sequences start together",
}


def provenance(engine: str, arrivals: str = DEFAULT_ARRIVALS) -> dict[str, Any]:
    """Where every estimate comes from: the model, its version, the arrival model and data."""
    factor = get_engine(engine)
    return {
        "kind": PROVENANCE_KIND,
        "model": "analytical roofline (cfgexplorer.roofline)",
        "model_version": MODEL_VERSION,
        "arrivals": ARRIVALS_TEXT.get(arrivals, arrivals),
        "engine": factor.name,
        "engine_factor": {
            "prefill_time": factor.prefill_time,
            "decode_time": factor.decode_time,
            "frontend_ttft_ms": factor.frontend_ttft_ms
            if factor.frontend_ttft_ms is not None
            else FRONTEND_TTFT_MS,
            "source": factor.source,
        },
        "calibration": "data/measurements/serving_calibration.csv (TensorRT-LLM and NIM)",
        "validation": "cfgexplorer/perf_validation.py: real vLLM runs "
        "(scripts/perf_validation_report.py prints predicted against measured)",
        "error_band": band_basis(engine),
    }


def error_band(
    ttft_ms: float, itl_ms: float, e2e_s: float, output_tok_s: float, engine: str = "trtllm"
) -> ErrorBand:
    """The band an engine's measurements put around a set of estimated figures."""
    values = {"ttft_ms": ttft_ms, "itl_ms": itl_ms, "e2e_s": e2e_s, "output_tok_s": output_tok_s}
    factors = band_factors(engine)
    lower = {k: v * factors[k][0] for k, v in values.items()}
    upper = {k: v * factors[k][1] for k, v in values.items()}
    return ErrorBand(
        lower=lower,
        upper=upper,
        factors=factors,
        basis=band_basis(engine) + "; latency SLOs are compared with the upper edge",
    )


def validate_lengths(input_len: Any, output_len: Any, concurrency: Any = 1) -> None:
    """Reject lengths and concurrency that are not positive whole numbers.

    Raises
    ------
    InvalidDeploymentError
        With one sentence naming the bad value.
    """
    for name, value in (("input length", input_len), ("output length", output_len)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidDeploymentError(
                f"{name} must be a whole number of tokens >= 1, got {value!r}"
            )
    if not isinstance(concurrency, int | float) or not concurrency >= 1:
        raise InvalidDeploymentError(f"concurrency must be >= 1, got {concurrency!r}")


class Estimator(ABC):
    """Anything that turns an :class:`EstimateRequest` into an :class:`Estimate`.

    Callers (the recommender, the CLI, the dashboard) depend on this interface
    only, so a backend built on profiled data (AIConfigurator, llm-optimizer)
    can replace the analytical one.
    """

    name: str = "estimator"

    @abstractmethod
    def estimate(self, request: EstimateRequest) -> Estimate:
        """Estimate one operating point."""

    def kv_limit(self, request: EstimateRequest) -> tuple[float | None, str | None]:
        """(requests of input+output tokens the KV cache holds per replica, why none fit)."""
        return request.kv_max_concurrency, None


@dataclass
class AnalyticalEstimator(Estimator):
    """The roofline model of this module, with per-instance caches of work tables and plans."""

    name: str = "analytical"
    constants: ModelConstants = DEFAULT_CONSTANTS
    _work: dict[tuple[Any, ...], ModelWork] = field(default_factory=dict, repr=False)
    _hw: dict[tuple[Any, ...], Hardware] = field(default_factory=dict, repr=False)
    _plans: dict[tuple[Any, ...], Any] = field(default_factory=dict, repr=False)

    def work(self, spec: ModelSpec, tp: int, quantization: str | None, kv: str) -> ModelWork:
        """The (cached) per-rank work table."""
        key = (id(spec), spec.model_id, tp, quantization, kv)
        if key not in self._work:
            self._work[key] = model_work(spec, tp, quantization, kv)
        return self._work[key]

    def plan(self, request: EstimateRequest) -> Any:
        """The (cached) capacity plan for a request's deployment at input+output tokens."""
        from cfgexplorer.memory import Deployment, plan

        length = request.input_len + request.output_len
        key = (
            id(request.spec),
            request.gpu.name,
            request.tp,
            length,
            request.quantization,
            request.kv_cache_dtype,
            request.engine_profile,
        )
        if key not in self._plans:
            dep = Deployment(
                tp=request.tp,
                max_model_len=length,
                kv_cache_dtype=request.kv_cache_dtype,
                quantization=request.quantization,
                allow_long_max_model_len=True,
            )
            self._plans[key] = plan(request.spec, request.gpu, dep, request.engine_profile)
        return self._plans[key]

    def kv_limit(self, request: EstimateRequest) -> tuple[float | None, str | None]:
        if request.kv_max_concurrency is not None:
            return request.kv_max_concurrency, None
        try:
            p = self.plan(request)
        except UserError as exc:
            return 0.0, str(exc)
        if not p.fits:
            return 0.0, p.problems[0] if p.problems else "does not fit"
        return float(p.max_concurrency), None

    def estimate(self, request: EstimateRequest) -> Estimate:
        """Estimate TTFT, ITL, E2E and throughput of one operating point.

        Raises
        ------
        InvalidDeploymentError
            For non-positive lengths, concurrency or request rate, an unknown
            engine, batching mode or arrival model, or a GPU without
            performance figures.
        """
        validate_load(request)
        engine = get_engine(request.engine, self.constants.engines)
        work = self.work(request.spec, request.tp, request.quantization, request.kv_cache_dtype)
        hw_key = (request.gpu.name, id(work))
        if hw_key not in self._hw:
            self._hw[hw_key] = hardware(request.gpu, work, self.constants)
        hw = self._hw[hw_key]

        kv_limit, kv_reason = self.kv_limit(request)
        if request.batching == "static":
            load = _static(work, hw, engine, request)
        elif request.arrivals == "synchronized":
            load = _synchronized(work, hw, engine, request, self.constants)
        else:
            load = _random(work, hw, engine, request, self.constants, kv_limit)

        osl = request.output_len
        e2e_s = (load.ttft_ms + (osl - 1) * load.itl_ms) / 1e3
        conc = load.concurrency
        tok_s = conc * osl / e2e_s
        feasible, reason = True, None
        if kv_reason:
            feasible, reason = False, kv_reason
        elif load.saturated:
            feasible = False
            reason = (
                f"request rate {request.request_rate:g}/s is above the "
                f"{load.sustainable_rate_per_s:.3g}/s one replica sustains with {conc:g} "
                "requests in flight (its scheduler or KV-cache limit): the queue grows "
                "without bound"
            )
        elif kv_limit is not None and conc > kv_limit + 1e-9:
            feasible = False
            reason = (
                f"concurrency {conc:g} exceeds the {kv_limit:.1f} requests of "
                f"{request.input_len + osl} tokens the KV cache holds"
            )
        return Estimate(
            gpu=request.gpu.name,
            tp=request.tp,
            concurrency=conc,
            input_len=request.input_len,
            output_len=osl,
            engine=engine.name,
            ttft_ms=load.ttft_ms,
            itl_ms=load.itl_ms,
            e2e_s=e2e_s,
            output_tok_s=tok_s,
            request_rate_per_s=conc / e2e_s,
            prefill_bound=load.prefill.bound,
            decode_bound=load.decode.bound,
            prefill_intensity=load.prefill.intensity,
            decode_intensity=load.decode.intensity,
            feasible=feasible,
            infeasible_reason=reason,
            kv_max_concurrency=kv_limit,
            band=error_band(load.ttft_ms, load.itl_ms, e2e_s, tok_s, engine.name),
            decode_step=load.decode,
            prefill_step=load.prefill,
            queued=load.queued,
            notes=load.notes,
            arrivals="static" if request.batching == "static" else request.arrivals,
            prefill_utilization=load.utilization,
            colliding_prompts=load.colliding,
            saturated=load.saturated,
            sustainable_rate_per_s=load.sustainable_rate_per_s,
        )


def validate_load(request: EstimateRequest) -> None:
    """Reject bad lengths, load, batching or arrival model with one sentence each.

    Raises
    ------
    InvalidDeploymentError
        Naming the bad value.
    """
    rate = request.request_rate
    if rate is None:
        validate_lengths(request.input_len, request.output_len, request.concurrency)
    else:
        validate_lengths(request.input_len, request.output_len)
        if not isinstance(rate, int | float) or not 0 < rate < math.inf:
            raise InvalidDeploymentError(f"request rate must be more than 0/s, got {rate!r}")
    if request.batching not in ("continuous", "static"):
        raise InvalidDeploymentError(
            f"batching must be continuous or static, got {request.batching!r}"
        )
    if request.arrivals not in ARRIVALS:
        raise InvalidDeploymentError(
            f"arrivals must be {' or '.join(ARRIVALS)}, got {request.arrivals!r}"
        )
    if rate is not None and (request.batching == "static" or request.arrivals != "random"):
        raise InvalidDeploymentError(
            "a request rate needs continuous batching with random arrivals; synchronized "
            "clients and static batches are described by their concurrency"
        )


@dataclass(frozen=True)
class _Load:
    """What one serving model found: figures per request and the load that produced them."""

    concurrency: float  # requests in flight per replica
    ttft_ms: float
    itl_ms: float
    prefill: StepTime
    decode: StepTime
    queued: bool = False
    notes: tuple[str, ...] = ()
    utilization: float = 0.0
    colliding: float = 1.0
    saturated: bool = False
    sustainable_rate_per_s: float | None = None


def _static(work: ModelWork, hw: Hardware, engine: EngineFactor, req: EstimateRequest) -> _Load:
    """All sequences start together: one prefill of C prompts, then decode steps at batch C."""
    c, isl, osl = float(req.concurrency), req.input_len, req.output_len
    prefill = step_time(work, hw, prefill_tokens=c * isl, prefill_seqs=c)
    decode = step_time(work, hw, decode_seqs=c, decode_context=isl + osl / 2)
    return _Load(
        concurrency=c,
        ttft_ms=prefill.total_ms * engine.prefill_time,
        itl_ms=decode.total_ms * engine.decode_time,
        prefill=prefill,
        decode=decode,
        notes=("static batching: all sequences start together",),
        colliding=c,
    )


def _synchronized(
    work: ModelWork,
    hw: Hardware,
    engine: EngineFactor,
    req: EstimateRequest,
    constants: ModelConstants,
) -> _Load:
    """Closed-loop lockstep clients with chunked prefill (see the module docstring)."""
    isl, osl = req.input_len, req.output_len
    max_seqs = req.max_num_seqs or DEFAULT_MAX_NUM_SEQS
    c_total = float(req.concurrency)
    c = min(c_total, float(max_seqs))
    notes = ["arrivals synchronized: fixed-length closed-loop clients in lockstep"]

    decode = step_time(work, hw, decode_seqs=c, decode_context=isl + osl / 2)
    # Prompts of the other requests start at (C - 1) / OSL per step; their compute is added.
    arrivals = (c - 1.0) / osl
    prompt = step_time(work, hw, prefill_tokens=isl, prefill_seqs=1, overhead=False)
    prompt_compute = prompt.linear_compute_ms + prompt.attention_compute_ms + prompt.comm_ms
    itl = (decode.total_ms + arrivals * prompt_compute) * engine.decode_time

    colliding = 1.0 + constants.prefill_collision_fraction * (c - 1.0)
    tokens = colliding * isl
    chunks = max(1, math.ceil(tokens / engine.max_num_batched_tokens))
    running = max(c - colliding, 0.0)
    prefill = step_time(
        work,
        hw,
        decode_seqs=running,
        decode_context=isl + osl / 2,
        prefill_tokens=tokens / chunks,
        prefill_seqs=colliding / chunks,
    )
    wait = 0.5 * decode.total_ms * (c - 1.0) / c
    ttft = (wait + chunks * prefill.total_ms) * engine.prefill_time
    ttft += engine_frontend_ms(engine, constants)

    queued = c_total > c
    if queued:
        # Closed loop beyond the scheduler's limit: requests wait for a free slot.
        service = ttft + (osl - 1) * itl
        ttft += (c_total / c - 1.0) * service
        notes.append(
            f"concurrency above max_num_seqs={max_seqs}: the rest wait in the queue (in TTFT)"
        )
    return _Load(
        concurrency=c_total,
        ttft_ms=ttft,
        itl_ms=itl,
        prefill=prefill,
        decode=decode,
        queued=queued,
        notes=tuple(notes),
        colliding=colliding,
    )


@dataclass(frozen=True)
class _RandomSteps:
    """Step times of random-arrival serving at one concurrency, engine factors applied (ms)."""

    concurrency: float  # mean requests in flight (Little's law), at most the scheduler limit
    decode: StepTime
    prefill: StepTime
    decode_ms: float  # one decode step at the batch a request sees
    prompt_ms: float  # the prompt's own prefill steps, with the running batch riding along
    marginal_ms: float  # what the prompt adds to those steps beyond decoding
    residual_ms: float  # the rest of the step in progress when a request arrives
    frontend_ms: float

    def figures(self, rate_per_s: float) -> tuple[float, float, float] | None:
        """(TTFT ms, ITL ms, prefill utilization) at an arrival rate; None when rho >= 1."""
        rho = rate_per_s * self.marginal_ms / 1e3
        if rho >= 1.0:
            return None
        itl = self.decode_ms / (1.0 - rho)
        wait = rho * self.marginal_ms / (2.0 * (1.0 - rho))  # M/D/1 queue of prompts ahead
        return self.frontend_ms + self.residual_ms + self.prompt_ms + wait, itl, rho

    def e2e_s(self, rate_per_s: float, osl: int) -> float:
        """Mean E2E latency at an arrival rate (inf at or beyond prefill saturation)."""
        f = self.figures(rate_per_s)
        if f is None:
            return math.inf
        return (f[0] + (osl - 1) * f[1]) / 1e3

    def rate_at(self, osl: int) -> float:
        """The arrival rate that keeps ``concurrency`` requests in flight: R x E2E(R) = C."""
        lo, hi = 0.0, self.concurrency / self.e2e_s(0.0, osl)
        for _ in range(SOLVER_STEPS):  # R x E2E(R) rises with R: bisection always converges
            mid = 0.5 * (lo + hi)
            if mid * self.e2e_s(mid, osl) > self.concurrency:
                hi = mid
            else:
                lo = mid
        return lo


def _random_steps(
    work: ModelWork,
    hw: Hardware,
    engine: EngineFactor,
    req: EstimateRequest,
    constants: ModelConstants,
    concurrency: float,
) -> _RandomSteps:
    """The step times of random arrivals at ``concurrency`` requests in flight."""
    isl, osl = req.input_len, req.output_len
    max_seqs = float(req.max_num_seqs or DEFAULT_MAX_NUM_SEQS)
    # Poisson arrivals: a request in flight sees on average C others (PASTA), so it decodes
    # in a batch of 1 + C, capped by the scheduler.
    batch = min(1.0 + concurrency, max_seqs)
    context = isl + osl / 2
    decode = step_time(work, hw, decode_seqs=batch, decode_context=context)
    chunks = max(1, math.ceil(isl / engine.max_num_batched_tokens))
    prefill = step_time(
        work,
        hw,
        decode_seqs=batch - 1.0,
        decode_context=context,
        prefill_tokens=isl / chunks,
        prefill_seqs=1.0 / chunks,
    )
    prompt = chunks * prefill.total_ms * engine.prefill_time
    marginal = max(chunks * (prefill.total_ms - decode.total_ms), 0.0) * engine.prefill_time
    decode_ms = decode.total_ms * engine.decode_time
    # A request arriving while the engine is busy waits for the step in progress; with C
    # requests in flight as a Poisson count the engine is idle a fraction exp(-C) of the time.
    residual = 0.5 * decode_ms * (1.0 - math.exp(-concurrency))
    return _RandomSteps(
        concurrency=concurrency,
        decode=decode,
        prefill=prefill,
        decode_ms=decode_ms,
        prompt_ms=prompt,
        marginal_ms=marginal,
        residual_ms=residual,
        frontend_ms=engine_frontend_ms(engine, constants),
    )


def _random(
    work: ModelWork,
    hw: Hardware,
    engine: EngineFactor,
    req: EstimateRequest,
    constants: ModelConstants,
    kv_limit: float | None,
) -> _Load:
    """Random (Poisson-like) arrivals at a concurrency or a request rate (module docstring)."""
    osl = req.output_len
    max_seqs = float(req.max_num_seqs or DEFAULT_MAX_NUM_SEQS)
    notes = ["arrivals random: Poisson-like traffic; collisions from the prefill utilization"]

    def steps_at(c: float) -> _RandomSteps:
        return _random_steps(work, hw, engine, req, constants, c)

    def load(steps: _RandomSteps, rate: float, **extra: Any) -> _Load:
        ttft, itl, rho = steps.figures(rate) or (math.inf, math.inf, 1.0)
        return _Load(
            concurrency=extra.pop("concurrency", steps.concurrency),
            ttft_ms=extra.pop("ttft_ms", ttft),
            itl_ms=itl,
            prefill=steps.prefill,
            decode=steps.decode,
            notes=tuple(notes),
            utilization=rho,
            colliding=1.0 + rho / (2.0 * (1.0 - rho)),
            **extra,
        )

    if req.request_rate is None:
        c_total = float(req.concurrency)
        steps = steps_at(min(c_total, max_seqs))
        rate = steps.rate_at(osl)
        if c_total <= max_seqs:
            return load(steps, rate)
        # More requests in flight than the scheduler runs: the rest wait for a free slot.
        ttft, itl, _ = steps.figures(rate) or (math.inf, math.inf, 1.0)
        service = ttft + (osl - 1) * itl
        notes.append(
            f"concurrency above max_num_seqs={max_seqs:g}: the rest wait in the queue (in TTFT)"
        )
        return load(
            steps,
            rate,
            concurrency=c_total,
            ttft_ms=ttft + (c_total / max_seqs - 1.0) * service,
            queued=True,
        )

    # Open loop: C = R x E2E(C). The iteration from C = 0 rises monotonically to the smallest
    # fixed point, or past the limit when the replica cannot carry the rate.
    rate = float(req.request_rate)
    cap = max_seqs if not kv_limit or not math.isfinite(kv_limit) else min(max_seqs, kv_limit)
    c, steps, found = 0.0, steps_at(0.0), False
    for _ in range(FIXED_POINT_STEPS):
        nxt = rate * steps.e2e_s(rate, osl)
        if nxt > cap:
            break
        if abs(nxt - c) <= 1e-9 * max(nxt, 1.0):
            c, found = nxt, True
            break
        c, steps = nxt, steps_at(nxt)
    else:
        # Slow convergence near saturation: bisect between the last iterate and the limit.
        top = steps_at(cap)
        if rate * top.e2e_s(rate, osl) <= cap:
            lo, hi = c, cap
            for _ in range(SOLVER_STEPS):
                mid = 0.5 * (lo + hi)
                if rate * steps_at(mid).e2e_s(rate, osl) > mid:
                    lo = mid
                else:
                    hi = mid
            c, found = hi, True
    if found:
        steps = steps_at(c)
        notes.append(f"concurrency {c:.3g} = request rate x E2E (Little's law)")
        return load(steps, rate)

    top = steps_at(cap)
    sustainable = top.rate_at(osl)
    notes.append(
        f"saturated: {rate:g} req/s exceeds the {sustainable:.3g} req/s sustained at "
        f"{cap:g} requests in flight; figures are at that limit and TTFT grows with time"
    )
    return load(top, sustainable, queued=True, saturated=True, sustainable_rate_per_s=sustainable)
