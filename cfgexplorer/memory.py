"""The capacity model: vLLM's start-up memory accounting, term by term.

Per GPU, vLLM 0.x computes::

    available KV = gpu_memory_utilization * device_total
                   - weights - activation peak - non-torch memory

then lays the pool out in blocks of ``block_size`` tokens per KV-cache group
and prints "GPU KV cache size: N tokens" and "Maximum concurrency for L
tokens per request: Cx". Each term here is modelled from the ModelSpec and
the deployment (never looked up), with the constants of an engine profile
(``data/engine_profiles.yaml``) calibrated on that release's own logs.

Pure functions and dataclasses only; no Panel, Param or HoloViews.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

import yaml

from cfgexplorer.errors import InvalidDeploymentError, UserError
from cfgexplorer.gpus import GPU
from cfgexplorer.params import (
    Linear,
    ParamBreakdown,
    count_params,
    is_quantized,
    linear_bytes,
)
from cfgexplorer.paths import data_dir
from cfgexplorer.quant import INT8_W8A8, QuantScheme, runtime_fp8
from cfgexplorer.spec import (
    CHUNKED,
    DTYPE_BYTES,
    FULL,
    LINEAR,
    MAMBA,
    MLA,
    NONE,
    SLIDING,
    LayerAttention,
    ModelSpec,
    normalise_dtype,
)

GIB = 2**30  # bytes
VOCAB_PADDING = 64  # vLLM pads the vocabulary of embedding and LM head to a multiple of 64
LOGITS_BYTES = 4  # the sampler works on float32 logits
KV_DTYPES = ("auto", "fp8", "fp8_e4m3", "fp8_e5m2", "bfloat16", "float16", "float32")
QUANTIZATION_CHOICES = ("fp8",)


# --- engine profiles -------------------------------------------------------------


@dataclass(frozen=True)
class EngineProfile:
    """A vLLM release's defaults and the calibrated constants of the capacity model."""

    name: str
    vllm_version: str
    description: str
    is_default: bool
    defaults: dict[str, Any]
    constants: dict[str, float]
    sources: dict[str, str]
    kv_tokens_formula: str = "blocks_per_group"

    def c(self, name: str) -> float:
        return float(self.constants[name])

    def scheduler_defaults(self, device_gib: float, gpu_name: str = "") -> tuple[int, int]:
        """(max_num_batched_tokens, max_num_seqs) the OpenAI server picks on this GPU."""
        d = self.defaults
        excluded = any(n in gpu_name.lower() for n in d.get("small_defaults_gpu_names", []))
        if device_gib >= float(d.get("large_gpu_threshold_gib", 70)) and not excluded:
            return int(d["max_num_batched_tokens_large_gpu"]), int(d["max_num_seqs_large_gpu"])
        return int(d["max_num_batched_tokens_small_gpu"]), int(d["max_num_seqs_small_gpu"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "vllm_version": self.vllm_version,
            "description": self.description,
            "default": self.is_default,
            "defaults": self.defaults,
            "kv_tokens_formula": self.kv_tokens_formula,
            "constants": {
                k: {"value": v, "source": self.sources.get(k, "")}
                for k, v in self.constants.items()
            },
        }


@cache
def engine_profiles() -> dict[str, EngineProfile]:
    """Every engine profile shipped in ``data/engine_profiles.yaml``."""
    raw = yaml.safe_load((data_dir() / "engine_profiles.yaml").read_text())
    out = {}
    for name, item in raw.items():
        consts = item.get("constants") or {}
        out[name] = EngineProfile(
            name=name,
            vllm_version=str(item.get("vllm_version", "")),
            description=" ".join(str(item.get("description", "")).split()),
            is_default=bool(item.get("default")),
            defaults=dict(item.get("defaults") or {}),
            constants={k: float(v["value"]) for k, v in consts.items()},
            sources={k: str(v.get("source", "")) for k, v in consts.items()},
            kv_tokens_formula=str(item.get("kv_tokens_formula", "blocks_per_group")),
        )
    return out


def get_profile(name: str | None = None) -> EngineProfile:
    """The named engine profile, or the default one."""
    profiles = engine_profiles()
    if name is None:
        return next(p for p in profiles.values() if p.is_default)
    key = name.strip().lower()
    if key not in profiles:
        raise InvalidDeploymentError(
            f"unknown engine profile {name!r}; choose one of {', '.join(profiles)}"
        )
    return profiles[key]


# --- the deployment ----------------------------------------------------------------


@dataclass(frozen=True)
class Deployment:
    """What ``vllm serve`` is asked to do; None means the engine profile's default."""

    tp: int = 1
    pp: int = 1
    dp: int = 1
    enable_expert_parallel: bool = False
    gpu_memory_utilization: float | None = None
    max_model_len: int | None = None
    dtype: str = "auto"
    quantization: str | None = None
    kv_cache_dtype: str = "auto"
    block_size: int | None = None
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    allow_long_max_model_len: bool = False
    gpus_available: int | None = None  # GPUs the engine can see; None = as many as needed


def validate(spec: ModelSpec, gpu: GPU, dep: Deployment) -> None:
    """Reject what vLLM would reject before loading anything, one sentence each."""
    for name in ("tp", "pp", "dp"):
        value = getattr(dep, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidDeploymentError(f"{name} must be a whole number >= 1, got {value!r}")
    util = dep.gpu_memory_utilization
    if util is not None and (not isinstance(util, int | float) or isinstance(util, bool)):
        raise InvalidDeploymentError(
            f"gpu_memory_utilization must be a number in (0, 1], got {util!r}"
        )
    if util is not None and not (0 < util <= 1):
        raise InvalidDeploymentError(
            f"gpu_memory_utilization must be in (0, 1], got {util}; 0.9 is vLLM's default"
        )
    for name in ("max_model_len", "block_size", "max_num_seqs", "max_num_batched_tokens"):
        value = getattr(dep, name)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise InvalidDeploymentError(f"{name} must be a whole number >= 1, got {value!r}")
        limit = SCHEDULER_LIMITS.get(name)
        if value is not None and limit is not None and value > limit:
            raise InvalidDeploymentError(
                f"{name} {value:,} is above {limit:,}, beyond any model or GPU; check the number"
            )
    if dep.block_size is not None and dep.block_size not in (1, 8, 16, 32, 64, 128, 256):
        raise InvalidDeploymentError(
            f"block_size {dep.block_size} is not one vLLM accepts; use 1, 8, 16 (default), 32, "
            "64, 128 or 256"
        )
    if dep.kv_cache_dtype not in KV_DTYPES:
        raise InvalidDeploymentError(
            f"kv_cache_dtype {dep.kv_cache_dtype!r} is not one of {', '.join(KV_DTYPES)}"
        )
    if dep.kv_cache_dtype.startswith("fp8") and gpu.fp8_kv_cache is False:
        raise InvalidDeploymentError(
            f"{gpu.name} cannot store an fp8 KV cache in vLLM; use --kv-cache-dtype auto"
        )
    if dep.quantization is not None and dep.quantization not in QUANTIZATION_CHOICES:
        raise InvalidDeploymentError(
            f"--quantization {dep.quantization} is not modelled; use fp8 or leave it unset "
            "(a pre-quantized checkpoint is detected from its config)"
        )
    if dep.quantization and spec.quant.is_quantized and not spec.quant.method.startswith("fp8"):
        raise InvalidDeploymentError(
            f"{spec.model_id} is already quantized ({spec.quant.method}) and vLLM refuses "
            f"--quantization {dep.quantization} for it; drop --quantization"
        )
    _check_gpu_support(spec, gpu, dep)
    mns, mbt = dep.max_num_seqs, dep.max_num_batched_tokens
    if mns and mbt and mbt < mns:
        raise InvalidDeploymentError(
            f"max_num_batched_tokens ({mbt}) must be at least max_num_seqs ({mns}), as vLLM "
            "requires; raise one or lower the other"
        )
    if dep.dtype not in ("auto", "bfloat16", "float16", "float32", "half", "float", "bf16", "fp16"):
        raise InvalidDeploymentError(
            f"dtype {dep.dtype!r} is not one of auto, bfloat16, float16, float32"
        )
    if (
        dep.max_model_len
        and dep.max_model_len > spec.max_position_embeddings
        and not (dep.allow_long_max_model_len)
    ):
        raise InvalidDeploymentError(
            f"max_model_len {dep.max_model_len} exceeds {spec.model_id}'s maximum of "
            f"{spec.max_position_embeddings} tokens; lower it, or pass "
            "--allow-long-max-model-len as vLLM requires (VLLM_ALLOW_LONG_MAX_MODEL_LEN=1)"
        )
    if spec.num_layers < dep.pp:
        raise InvalidDeploymentError(
            f"pp={dep.pp} exceeds the {spec.num_layers} layers of {spec.model_id}"
        )
    if dep.gpus_available is not None and dep.tp * dep.pp * dep.dp > dep.gpus_available:
        raise InvalidDeploymentError(
            f"tp x pp x dp = {dep.tp * dep.pp * dep.dp} GPUs are needed but only "
            f"{dep.gpus_available} are available; lower the parallelism or add GPUs"
        )
    ep = bool(dep.enable_expert_parallel)
    reason = tp_rejection(spec, dep.tp, ep)
    if reason:
        valid = [t for t in candidate_tp_sizes(64) if tp_rejection(spec, t, ep) is None]
        raise InvalidDeploymentError(
            f"tp={dep.tp} does not work for {spec.model_id}: {reason}; valid sizes up to 64: "
            f"{', '.join(map(str, valid)) or 'none'}"
        )


# Compute capability from which vLLM runs bfloat16 and FP8 weights on NVIDIA GPUs.
MIN_CC_BF16 = 8.0  # vLLM: "Bfloat16 is only supported on GPUs with compute capability >= 8.0"
MIN_CC_FP8_WEIGHTS = 8.0  # FP8 weights run natively from 8.9, through Marlin from 8.0
FP8_WEIGHT_GENERATIONS = ("cdna3", "cdna4", "gaudi3")  # non-NVIDIA parts with FP8 weights


def _compute_capability(gpu: GPU) -> float | None:
    try:
        return float(gpu.compute_capability) if gpu.compute_capability else None
    except (TypeError, ValueError):
        return None


# Activation dtypes vLLM's quantization methods run with (their get_supported_act_dtypes):
# MXFP4 (gpt-oss) is bfloat16 only; the other weight formats take bfloat16 or float16, and
# only bitsandbytes also takes float32. Methods the planner does not know are not checked.
ACT_DTYPES_BY_QUANT_METHOD = {
    "mxfp4": ("bfloat16",),
    "fp8": ("bfloat16", "float16"),
    "fp8-block": ("bfloat16", "float16"),
    "compressed-tensors": ("bfloat16", "float16"),
    "nvfp4": ("bfloat16", "float16"),
    "modelopt-fp8": ("bfloat16", "float16"),
    "modelopt-int4": ("bfloat16", "float16"),
    "gptq": ("bfloat16", "float16"),
    "awq": ("bfloat16", "float16"),
    "bitsandbytes": ("bfloat16", "float16", "float32"),
}
# 4-bit float weights (MXFP4, NVFP4) need Ampere or newer: native on Blackwell, Marlin below.
MIN_CC_FP4_WEIGHTS = 8.0  # vLLM's Mxfp4Config / ModelOptNvFp4Config minimum capability


VLLM_DEFAULT_BLOCK_SIZE = 16  # tokens; vLLM's CacheConfig default on CUDA GPUs

# Upper bounds on scheduler sizes; larger values are typing mistakes, not deployments.
SCHEDULER_LIMITS = {
    "max_model_len": 100_000_000,  # tokens; 10x the longest context published (10M)
    "max_num_batched_tokens": 100_000_000,  # tokens per step; as above
    "max_num_seqs": 1_000_000,  # sequences; ~1,000x vLLM's default of 1024
}


def _check_dtype_for_quantization(spec: ModelSpec, dep: Deployment) -> None:
    """Refuse an explicit --dtype the checkpoint's (or --quantization's) kernels cannot run."""
    if dep.dtype == "auto":
        return
    method = "fp8" if dep.quantization == "fp8" else spec.quant.method
    allowed = ACT_DTYPES_BY_QUANT_METHOD.get(method)
    dtype = normalise_dtype(dep.dtype, default=spec.dtype)
    if allowed is None or dtype in allowed:
        return
    raise InvalidDeploymentError(
        f"vLLM runs {method} weights with {' or '.join(allowed)} activations, not {dtype}; "
        f"use --dtype {allowed[0]} or auto"
    )


def _check_gpu_support(spec: ModelSpec, gpu: GPU, dep: Deployment) -> None:
    """Refuse dtypes and weight formats the GPU cannot run in vLLM."""
    _check_dtype_for_quantization(spec, dep)
    cc = _compute_capability(gpu)
    if spec.quant.method in ("mxfp4", "nvfp4") and cc is not None and cc < MIN_CC_FP4_WEIGHTS:
        raise InvalidDeploymentError(
            f"{gpu.name} (compute capability {cc:g}) cannot run {spec.quant.method} weights in "
            "vLLM, which needs compute capability 8.0 or newer; choose an Ampere or newer GPU"
        )
    if dep.dtype in ("bfloat16", "bf16") and cc is not None and cc < MIN_CC_BF16:
        raise InvalidDeploymentError(
            f"{gpu.name} (compute capability {cc:g}) cannot run bfloat16 in vLLM; use "
            "--dtype float16 or auto"
        )
    int8_w8a8 = INT8_W8A8 in spec.quant.description  # vLLM runs these from cc 7.5 (Turing)
    fp8_weights = (
        dep.quantization == "fp8"
        or spec.quant.method.startswith(("fp8", "modelopt-fp8"))
        or (
            spec.quant.method == "compressed-tensors"
            and spec.quant.weight_bits == 8
            and not int8_w8a8
        )
    )
    if not fp8_weights or gpu.custom:
        return
    supported = (cc is not None and cc >= MIN_CC_FP8_WEIGHTS) or (
        cc is None and gpu.generation in FP8_WEIGHT_GENERATIONS
    )
    if not supported:
        raise InvalidDeploymentError(
            f"{gpu.name} cannot run 8-bit quantized weights in vLLM; choose an Ampere or newer "
            "NVIDIA GPU or an MI300-class AMD GPU, or an unquantized checkpoint"
        )


def candidate_tp_sizes(max_tp: int) -> list[int]:
    return list(range(1, max_tp + 1))


def padded_vocab(vocab: int) -> int:
    """The vocabulary size vLLM allocates for embedding and LM head."""
    return -(-vocab // VOCAB_PADDING) * VOCAB_PADDING


def tp_rejection(spec: ModelSpec, tp: int, expert_parallel: bool = False) -> str | None:
    """Why vLLM would refuse this TP size for the model, or None if it accepts it.

    With ``expert_parallel`` the routed experts are spread whole over the ranks instead of
    split by TP, so their width need not divide (attention and dense layers still do).
    """
    if tp < 1:
        return "TP must be >= 1"
    heads = spec.num_attention_heads
    if heads % tp:
        return f"{heads} attention heads are not divisible by {tp}"
    kv_counts = {la.num_kv_heads for la in spec.layers if la.kind in (FULL, SLIDING, CHUNKED)}
    for kv in kv_counts:
        if kv and kv % tp and tp % kv:
            return f"{kv} KV heads neither divide by {tp} nor divide {tp}"
    vocab = padded_vocab(spec.vocab_size)
    if vocab % tp:
        # The vocab-parallel embedding and LM head split the padded vocabulary.
        return f"vocabulary {spec.vocab_size} (padded to {vocab}) is not divisible by {tp}"
    widths = {w for w in spec.mlp_intermediate if w}
    if spec.moe and not expert_parallel:
        widths.add(spec.moe.expert_intermediate_size)
    if spec.moe and spec.moe.shared_expert_intermediate_size:
        widths.add(spec.moe.shared_expert_intermediate_size)
    for w in sorted(widths):
        if w % tp:
            return f"MLP/expert width {w} is not divisible by {tp}"
    block = spec.quant.block
    if block:
        # Block-quantized weights shard whole blocks: each rank's share of a width must
        # be a multiple of the block (vLLM: "... is not divisible by weight quantization
        # block_n").
        for w in sorted(widths):
            if (w // tp) % block[0]:
                return (
                    f"each rank's share of width {w} ({w // tp}) is not a multiple of the "
                    f"{block[0]}-wide FP8 weight blocks"
                )
    return None


def valid_tp_sizes(
    spec: ModelSpec, max_tp: int = 8, expert_parallel: bool = False
) -> dict[str, Any]:
    """Every TP size up to ``max_tp`` with vLLM's verdict and, if rejected, why."""
    valid, rejected = [], {}
    for tp in candidate_tp_sizes(max_tp):
        reason = tp_rejection(spec, tp, expert_parallel)
        if reason:
            rejected[str(tp)] = reason
        else:
            valid.append(tp)
    return {"valid": valid, "rejected": rejected}


# --- weights -----------------------------------------------------------------------


def pp_layer_ranges(num_layers: int, pp: int) -> list[tuple[int, int]]:
    """Layer ranges per pipeline stage as vLLM partitions them.

    Layers divide evenly; the remainder goes one each to the stages before
    the last, counting backwards from the second-to-last (the last stage
    also holds the LM head).
    """
    per = num_layers // pp
    parts = [per] * pp
    remaining = num_layers % pp
    for i in range(2, remaining + 2):
        parts[-i] += 1
    out, start = [], 0
    for n in parts:
        out.append((start, start + n))
        start += n
    return out


def linear_rank_bytes(
    spec: ModelSpec,
    quant: QuantScheme,
    lin: Linear,
    quantized: bool,
    tp: int,
    ep_size: int,
) -> float:
    """Bytes of one linear on one TP rank (experts split by EP when enabled)."""
    if lin.tp == "replicated":
        rows, cols, count = lin.rows, lin.cols, lin.count
    elif lin.tp == "row":
        rows, cols, count = lin.rows, -(-lin.cols // tp), lin.count
    elif lin.tp == "expert":
        if ep_size > 1:
            rows, cols, count = lin.rows, lin.cols, -(-lin.count // ep_size)
        elif lin.width_axis == "rows":  # gate/up: the expert width is the output dimension
            rows, cols, count = -(-lin.rows // tp), lin.cols, lin.count
        else:
            rows, cols, count = lin.rows, -(-lin.cols // tp), lin.count
    else:
        rows, cols, count = -(-lin.rows // tp), lin.cols, lin.count
    align = quant.expert_width_alignment
    if lin.kind == "experts" and quantized and align > 1:
        if lin.width_axis == "rows":  # gate and up stacked: two expert widths
            rows = 2 * (-(-(rows // 2) // align) * align)
        else:
            cols = -(-cols // align) * align
    return linear_bytes(spec, quant, Linear(lin.kind, rows, cols, count), quantized)


def kv_replicated_rows(spec: ModelSpec, la: LayerAttention, lin: Linear, tp: int) -> Linear:
    """K/V projections keep one head per rank when TP exceeds the KV heads."""
    if la.kind in (FULL, SLIDING, CHUNKED) and la.num_kv_heads and tp > la.num_kv_heads:
        kv_rows = {la.num_kv_heads * la.head_dim, la.num_kv_heads * la.v_head_dim}
        if lin.rows in kv_rows and lin.tp == "column" and lin.kind == "attn":
            per_head = lin.rows // la.num_kv_heads
            return replace(lin, rows=per_head * tp)  # one head on each of the tp ranks
    return lin


@dataclass(frozen=True)
class StageWeights:
    """Weights of one pipeline stage on one of its TP ranks."""

    stage: int
    layers: tuple[int, int]
    weights_bytes: float
    has_embedding: bool
    has_lm_head: bool


def stage_weights(
    spec: ModelSpec,
    dep: Deployment,
    quant: QuantScheme,
    breakdown: ParamBreakdown,
    dtype_bytes: int,
) -> list[StageWeights]:
    """Per-stage weight bytes on one GPU, by vLLM's TP, PP and EP sharding rules."""
    tp, pp = dep.tp, dep.pp
    ep_size = tp * dep.dp if dep.enable_expert_parallel and spec.moe else 1
    layer_bytes = _rank_layer_bytes(spec, quant, breakdown, tp, ep_size, dtype_bytes)
    stages = _assemble_stages(spec, quant, breakdown, tp, pp, dtype_bytes, layer_bytes)
    return stages


def _rank_layer_bytes(
    spec: ModelSpec,
    quant: QuantScheme,
    breakdown: ParamBreakdown,
    tp: int,
    ep_size: int,
    dtype_bytes: int,
) -> list[float]:
    """Bytes of every decoder layer on one TP rank, memoised on the (immutable) spec."""
    memo = spec.__dict__.setdefault("_rank_layer_bytes", {})
    key = (quant, tp, ep_size, dtype_bytes)
    if key in memo:
        return memo[key]
    sized = spec if dtype_bytes == spec.dtype_bytes else _with_dtype_bytes(spec, dtype_bytes)
    layer_bytes: list[float] = []
    for i, lp in enumerate(breakdown.layers):
        la = spec.layers[i]
        total = 0.0
        kinds = {m.kind for m in lp.linears}
        quantized = {k: is_quantized(quant, k, i, "model.layers") for k in kinds}
        for lin in lp.linears:
            lin = kv_replicated_rows(spec, la, lin, tp)
            total += linear_rank_bytes(sized, quant, lin, quantized[lin.kind], tp, ep_size)
        for kind, count in lp.small.items():
            per = 4 if kind == "state_params" else dtype_bytes
            shard = tp if kind in ("bias", "conv", "state_params", "expert_bias") else 1
            total += count * per / shard
        layer_bytes.append(total)
    memo[key] = layer_bytes
    return layer_bytes


def _assemble_stages(
    spec: ModelSpec,
    quant: QuantScheme,
    breakdown: ParamBreakdown,
    tp: int,
    pp: int,
    dtype_bytes: int,
    layer_bytes: list[float],
) -> list[StageWeights]:
    """Add embedding, head, norms and rotary tables to each stage's layers."""
    sized = spec if dtype_bytes == spec.dtype_bytes else _with_dtype_bytes(spec, dtype_bytes)
    vocab_rank = padded_vocab(spec.vocab_size) // tp
    embed_bytes = vocab_rank * spec.hidden_size * dtype_bytes
    head_bytes = 0.0
    if not spec.tie_word_embeddings:
        head_lin = Linear("lm_head", vocab_rank, spec.hidden_size)
        head_q = is_quantized(quant, "lm_head", None, "")
        head_bytes = linear_bytes(sized, quant, head_lin, head_q)
    norm_bytes = spec.hidden_size * dtype_bytes
    # vLLM keeps one cos/sin table of max_position x rotary_dim per stage, in the model dtype.
    rope_bytes = spec.max_position_embeddings * spec.rotary_dim * dtype_bytes
    vision_bytes = breakdown.vision_params * dtype_bytes / tp

    stages = []
    for s, (a, b) in enumerate(pp_layer_ranges(spec.num_layers, pp)):
        first, last = s == 0, s == pp - 1
        total = sum(layer_bytes[a:b]) + (rope_bytes if b > a else 0)
        if first:
            total += embed_bytes + vision_bytes
        if last:
            total += norm_bytes + (head_bytes if not spec.tie_word_embeddings else 0.0)
            if spec.tie_word_embeddings and not first:
                total += embed_bytes  # the tied head needs the embedding on the last stage
        stages.append(StageWeights(s, (a, b), total, first, last))
    return stages


def _with_dtype_bytes(spec: ModelSpec, dtype_bytes: int) -> ModelSpec:
    dtype = {4: "float32", 2: "bfloat16"}.get(dtype_bytes, spec.dtype)
    return replace(spec, dtype=dtype)


# --- KV cache ------------------------------------------------------------------------


def kv_dtype_bytes(kv_cache_dtype: str, model_dtype: str) -> int:
    """Bytes per cached value: auto follows the model dtype, never the weight quantization."""
    if kv_cache_dtype in ("auto", None):
        return DTYPE_BYTES[model_dtype]
    return DTYPE_BYTES.get(kv_cache_dtype, 1 if kv_cache_dtype.startswith("fp8") else 2)


def layer_kv_bytes_per_token(la: LayerAttention, tp: int, kv_bytes: int) -> int:
    """Bytes one token occupies in one layer's cache on one TP rank (0 for state layers)."""
    if la.kind == MLA:
        return la.head_dim * kv_bytes + la.extra_bytes_per_token
    if la.kind in (FULL, SLIDING, CHUNKED):
        heads = max(1, la.num_kv_heads // tp) if la.num_kv_heads >= tp else 1
        return heads * (la.head_dim + la.v_head_dim) * kv_bytes
    return 0


def layer_state_bytes(spec: ModelSpec, la: LayerAttention, tp: int, model_dtype_bytes: int) -> int:
    """Bytes of one sequence's fixed state in a linear-attention or Mamba layer, per rank."""
    if la.kind not in (LINEAR, MAMBA):
        return 0
    ssm_bytes = spec.mixer_dims.get("ssm_state_bytes") or model_dtype_bytes
    return (la.conv_state_elems // tp) * model_dtype_bytes + (la.ssm_state_elems // tp) * ssm_bytes


@dataclass(frozen=True)
class KVGroup:
    """Layers of one kind that share a block table (vLLM's KV-cache group)."""

    kind: str
    window: int | None
    num_layers: int  # layers this group holds (after padding to the group size)
    page_bytes: int  # bytes of one block of one layer
    block_size: int  # tokens per block (a state group holds one sequence per block)


@dataclass(frozen=True)
class KVLayout:
    """How vLLM lays out the KV pool of one GPU."""

    groups: tuple[KVGroup, ...]
    group_size: int  # layers per group; blocks are counted per group_size layers
    uniform: bool
    bytes_per_token: int  # full-context bytes per token summed over this rank's layers
    state_bytes_per_seq: int
    block_size: int  # the attention block size in effect
    notes: tuple[str, ...] = ()


def kv_layout(
    spec: ModelSpec,
    layer_range: tuple[int, int],
    tp: int,
    kv_bytes: int,
    model_dtype_bytes: int,
    block_size: int,
    mamba_alignment: int,
) -> KVLayout:
    """Group this rank's layers the way vLLM's hybrid KV-cache manager does."""
    a, b = layer_range
    layers = [la for la in spec.layers[a:b] if la.kind != NONE]
    notes: list[str] = []
    per_type: dict[tuple[str, int | None, int], int] = {}
    state_bytes = 0
    token_bytes = 0
    for la in layers:
        tok = layer_kv_bytes_per_token(la, tp, kv_bytes)
        st = layer_state_bytes(spec, la, tp, model_dtype_bytes)
        token_bytes += tok
        state_bytes += st
        kind = la.kind if la.kind != MLA else FULL
        key = (kind, la.window if kind in (SLIDING, CHUNKED) else None, tok or st)
        per_type[key] = per_type.get(key, 0) + 1
    if not per_type:
        return KVLayout((), 0, True, 0, 0, block_size, ("this stage has no cached layers",))

    attn_keys = [k for k in per_type if k[0] not in (LINEAR, MAMBA)]
    state_keys = [k for k in per_type if k[0] in (LINEAR, MAMBA)]
    block = block_size
    if state_keys and attn_keys:
        # vLLM enlarges the attention block until one attention page holds a state page.
        max_state = max(k[2] for k in state_keys)
        min_tok = min(k[2] for k in attn_keys)
        aligned = mamba_alignment * -(-max_state // (mamba_alignment * min_tok))
        if aligned > block:
            notes.append(
                f"attention block size raised to {aligned} tokens so that one page holds a "
                "linear-attention/Mamba state, as vLLM does"
            )
            block = aligned
    pages = {}
    for key in per_type:
        kind, _, unit = key
        pages[key] = unit * block if kind not in (LINEAR, MAMBA) else unit
    max_page = max(pages.values())
    block_sizes = {}
    for key, page in pages.items():
        kind = key[0]
        if kind in (LINEAR, MAMBA):
            block_sizes[key] = 1
            pages[key] = max_page  # padded to the attention page
        else:
            ratio = max_page // page if page and max_page % page == 0 else 1
            block_sizes[key] = block * ratio
            pages[key] = page * ratio

    uniform = len(per_type) == 1
    counts = list(per_type.values())
    min_n, max_n = min(counts), max(counts)
    group_size = max_n if max_n < min_n * 1.25 else min_n
    if uniform:
        group_size = counts[0]
    groups = []
    for key, n in per_type.items():
        n_groups = -(-n // group_size)
        for _ in range(n_groups):
            groups.append(KVGroup(key[0], key[1], group_size, pages[key], block_sizes[key]))
    return KVLayout(
        groups=tuple(groups),
        group_size=group_size,
        uniform=uniform,
        bytes_per_token=token_bytes,
        state_bytes_per_seq=state_bytes,
        block_size=block,
        notes=tuple(notes),
    )


def _group_max_bytes(group: KVGroup, max_model_len: int, mbt: int) -> int:
    """vLLM's worst-case bytes of one request in one layer of a group."""
    bs = group.block_size
    if group.kind == SLIDING and group.window:
        tokens = min(group.window - 1 + mbt, max_model_len)
        return (-(-tokens // bs) + 1) * group.page_bytes
    if group.kind == CHUNKED and group.window:
        tokens = min(group.window + mbt, max_model_len)
        return -(-tokens // bs) * group.page_bytes
    if group.kind in (LINEAR, MAMBA):
        return group.page_bytes
    return -(-max_model_len // bs) * group.page_bytes


def blocks_and_concurrency(
    layout: KVLayout, pool_bytes: float, max_model_len: int, mbt: int, formula: str
) -> tuple[int, int, float]:
    """(num_blocks, tokens as vLLM prints them, max concurrency at max_model_len)."""
    if not layout.groups or pool_bytes <= 0:
        return 0, 0, 0.0
    page = layout.groups[0].page_bytes
    if layout.uniform:
        num_blocks = int(pool_bytes // (page * layout.group_size))
        per_request = -(-max_model_len // layout.groups[0].block_size)
        if layout.groups[0].kind in (LINEAR, MAMBA):
            per_request = 1
        concurrency = num_blocks / per_request
        tokens = num_blocks * layout.groups[0].block_size
        if formula == "concurrency":
            tokens = int(concurrency * max_model_len)
        return num_blocks, tokens, concurrency
    num_blocks = int(pool_bytes // page // layout.group_size)
    per_request_bytes = layout.group_size * sum(
        _group_max_bytes(g, max_model_len, mbt) for g in layout.groups
    )
    per_request_blocks = -(-per_request_bytes // (page * layout.group_size))
    concurrency = num_blocks / per_request_blocks
    # A state group's block spans a whole sequence (vLLM sets its block size to max_model_len).
    min_block = min(
        g.block_size if g.kind not in (LINEAR, MAMBA) else max_model_len for g in layout.groups
    )
    if formula == "concurrency":
        tokens = int(concurrency * max_model_len)
    else:
        tokens = num_blocks // len(layout.groups) * min_block
    return num_blocks, tokens, concurrency


def kv_needed_bytes(layout: KVLayout, max_model_len: int, mbt: int) -> int:
    """Bytes one request of max_model_len tokens needs on this rank (vLLM's start-up check)."""
    if not layout.groups:
        return 0
    return layout.group_size * sum(_group_max_bytes(g, max_model_len, mbt) for g in layout.groups)


# --- activation and non-torch memory -----------------------------------------------


@dataclass(frozen=True)
class ActivationTerms:
    forward_bytes: float
    sampler_bytes: float
    pp_receive_bytes: float


def activation_terms(
    spec: ModelSpec,
    dep: Deployment,
    profile: EngineProfile,
    dtype_bytes: int,
    mbt: int,
    max_num_seqs: int,
) -> ActivationTerms:
    """The forward and sampler peaks of vLLM's profiling run on one GPU."""
    tp = dep.tp
    h = spec.hidden_size
    widest = max((w for w in spec.mlp_intermediate if w), default=0) / tp
    forward = profile.c("forward_per_mlp_element") * mbt * widest * dtype_bytes
    if spec.moe:
        # The fused MoE keeps top_k copies of the batch's hidden states (gathered inputs,
        # per-expert outputs before the weighted sum), independent of TP.
        moe_term = mbt * spec.moe.experts_per_token * h * dtype_bytes
        forward = max(forward, profile.c("forward_moe_hidden_copies") * moe_term)
    forward += profile.c("forward_per_hidden_element") * mbt * h * dtype_bytes
    # The sampler pass covers one row per request of the profiled batch: at most
    # max_num_seqs, and never more rows than the batch has tokens.
    rows = min(max_num_seqs, mbt)
    sampler = profile.c("sampler_logits_copies") * rows * spec.vocab_size * LOGITS_BYTES
    sampler += profile.c("sampler_per_hidden_element") * mbt * h * dtype_bytes
    receive = 2 * mbt * h * dtype_bytes
    return ActivationTerms(forward, sampler, receive)


def stage_activation(terms: ActivationTerms, stage: int, pp: int) -> tuple[float, str]:
    """Activation peak of one stage and which pass sets it."""
    if pp == 1:
        if terms.forward_bytes >= terms.sampler_bytes:
            return terms.forward_bytes, "forward pass"
        return terms.sampler_bytes, "sampler"
    if stage == pp - 1:
        last = terms.sampler_bytes + terms.pp_receive_bytes
        if terms.forward_bytes > last:
            return terms.forward_bytes, "forward pass"
        return last, "sampler + received activations"
    return terms.forward_bytes, "forward pass"


def non_torch_gib(dep: Deployment, profile: EngineProfile) -> float:
    """CUDA context growth and communication buffers during the profiling run."""
    if dep.tp > 1:
        return profile.c("non_torch_tp_base_gib") + profile.c("non_torch_per_tp_rank_gib") * dep.tp
    if dep.pp > 1:
        return profile.c("non_torch_pp_gib")
    return profile.c("non_torch_single_gib")


# --- the plan ----------------------------------------------------------------------


@dataclass
class StagePlan:
    """One pipeline stage's budget on one of its GPUs (GiB unless named otherwise)."""

    stage: int
    layers: tuple[int, int]
    weights_gib: float
    activation_gib: float
    activation_source: str
    non_torch_gib: float
    kv_pool_gib: float
    kv_bytes_per_token: int
    kv_blocks: int
    kv_tokens: int
    max_concurrency: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "layers": [self.layers[0], self.layers[1] - 1]
            if self.layers[1] > self.layers[0]
            else [],
            "weights_gib": round(self.weights_gib, 3),
            "activation_gib": round(self.activation_gib, 3),
            "activation_source": self.activation_source,
            "non_torch_gib": round(self.non_torch_gib, 3),
            "kv_pool_gib": round(self.kv_pool_gib, 3),
            "kv_bytes_per_token": self.kv_bytes_per_token,
            "kv_blocks": self.kv_blocks,
            "kv_tokens": self.kv_tokens,
            "max_concurrency": round(self.max_concurrency, 2),
        }


@dataclass
class Plan:
    """A capacity plan: per-GPU memory, KV pool, verdicts and the vllm serve line."""

    model_id: str
    gpu: str
    deployment: Deployment
    profile: EngineProfile
    device_total_gib: float
    utilization: float
    budget_gib: float
    weights_gib: float
    activation_gib: float
    non_torch_gib: float
    kv_pool_gib: float
    kv_dtype: str
    kv_bytes_per_token: int
    kv_state_bytes_per_seq: int
    block_size: int
    kv_blocks: int
    kv_tokens: int
    max_concurrency: float
    max_model_len: int
    max_num_seqs: int
    max_num_batched_tokens: int
    fits: bool
    problems: list[str]
    dominant_term: str
    max_model_len_that_fits: int | None
    valid_tp: dict[str, Any]
    stages: list[StagePlan]
    vllm_args: list[str]
    notes: list[str] = field(default_factory=list)
    weights_total_gib: float = 0.0
    num_gpus: int = 1
    worst_stage: int = 0
    kv_groups: list[dict[str, Any]] = field(default_factory=list)
    serve_target: str = ""  # the model argument of `vllm serve`; model_id when empty
    vllm_env: dict[str, str] = field(default_factory=dict)  # set before `vllm serve`

    @property
    def unused_gib(self) -> float:
        return max(self.device_total_gib - self.budget_gib, 0.0)

    def to_dict(self) -> dict[str, Any]:
        dep = self.deployment
        return {
            "model": self.model_id,
            "gpu": self.gpu,
            "engine_profile": self.profile.name,
            "deployment": {
                "tp": dep.tp,
                "pp": dep.pp,
                "dp": dep.dp,
                "enable_expert_parallel": dep.enable_expert_parallel,
                "num_gpus": self.num_gpus,
                "gpu_memory_utilization": self.utilization,
                "max_model_len": self.max_model_len,
                "dtype": dep.dtype,
                "quantization": dep.quantization,
                "kv_cache_dtype": self.kv_dtype,
                "block_size": self.block_size,
                "max_num_seqs": self.max_num_seqs,
                "max_num_batched_tokens": self.max_num_batched_tokens,
            },
            "memory_gib": {
                "device_total": round(self.device_total_gib, 3),
                "budget": round(self.budget_gib, 3),
                "weights": round(self.weights_gib, 3),
                "activation": round(self.activation_gib, 3),
                "non_torch": round(self.non_torch_gib, 3),
                "kv_pool": round(self.kv_pool_gib, 3),
                "unused": round(self.unused_gib, 3),
                "weights_all_gpus": round(self.weights_total_gib, 3),
            },
            "kv_cache": {
                "dtype": self.kv_dtype,
                "bytes_per_token": self.kv_bytes_per_token,
                "state_bytes_per_sequence": self.kv_state_bytes_per_seq,
                "block_size": self.block_size,
                "blocks": self.kv_blocks,
                "tokens": self.kv_tokens,
                "max_concurrency": round(self.max_concurrency, 2),
                "max_concurrency_all_replicas": round(self.max_concurrency * dep.dp, 2),
                "groups": self.kv_groups,
            },
            "fits": self.fits,
            "problems": list(self.problems),
            "dominant_term": self.dominant_term,
            "max_model_len_that_fits": self.max_model_len_that_fits,
            "valid_tp": self.valid_tp,
            "stages": [s.to_dict() for s in self.stages],
            "worst_stage": self.worst_stage,
            "vllm_args": list(self.vllm_args),
            "vllm_env": dict(self.vllm_env),
            "vllm_serve": "".join(f"{k}={v} " for k, v in self.vllm_env.items())
            + "vllm serve "
            + " ".join([shlex.quote(self.serve_target or self.model_id), *self.vllm_args]),
            "notes": list(self.notes),
        }


def plan(
    spec: ModelSpec,
    gpu: GPU,
    dep: Deployment | None = None,
    profile: EngineProfile | str | None = None,
) -> Plan:
    """Plan one deployment of ``spec`` on ``gpu`` as vLLM would account for it.

    Raises
    ------
    InvalidDeploymentError
        For settings vLLM rejects before loading (bad TP, lengths, dtypes).
    """
    dep = dep or Deployment()
    if isinstance(gpu, str):
        from cfgexplorer.gpus import get_gpu

        gpu = get_gpu(gpu)
    if profile is not None and not isinstance(profile, EngineProfile | str):
        raise InvalidDeploymentError(
            f"engine profile must be a name such as 'vllm-0.19', got {profile!r}"
        )
    prof = profile if isinstance(profile, EngineProfile) else get_profile(profile)
    validate(spec, gpu, dep)
    notes: list[str] = list(spec.notes)

    device_gib = float(gpu.memory_gib_reported)
    util = dep.gpu_memory_utilization or float(prof.defaults["gpu_memory_utilization"])
    budget_gib = util * device_gib
    default_mbt, default_mns = prof.scheduler_defaults(device_gib, gpu.name)
    max_model_len = dep.max_model_len or spec.max_position_embeddings
    mns = dep.max_num_seqs or default_mns
    mbt = dep.max_num_batched_tokens or default_mbt
    if mbt < mns:  # vLLM's scheduler config refuses this, defaults included
        which = "" if dep.max_num_seqs else f", {prof.name}'s default on {gpu.name}"
        raise InvalidDeploymentError(
            f"max_num_batched_tokens ({mbt}) must be at least max_num_seqs ({mns}{which}), "
            f"as vLLM requires; raise max_num_batched_tokens or set max_num_seqs <= {mbt}"
        )
    block_size = dep.block_size or int(prof.defaults["block_size"])

    dtype = normalise_dtype(dep.dtype if dep.dtype != "auto" else None, default=spec.dtype)
    if dep.dtype == "auto" and spec.dtype == "float32":
        dtype = "bfloat16"
        notes.append("a float32 checkpoint is served in bfloat16 by dtype=auto, as vLLM does")
    cc = _compute_capability(gpu)
    if dep.dtype == "auto" and dtype == "bfloat16" and cc is not None and cc < MIN_CC_BF16:
        dtype = "float16"
        notes.append(f"{gpu.name} has no bfloat16: vLLM serves the model in float16")
    dtype_bytes = DTYPE_BYTES[dtype]
    kv_dtype = dep.kv_cache_dtype
    modelopt_kv = (
        kv_dtype == "auto"
        and spec.quant.kv_cache_dtype == "fp8"
        and spec.quant.producer == "modelopt"
        and bool(prof.defaults.get("kv_auto_follows_modelopt"))
        and gpu.fp8_kv_cache is not False
    )
    if dep.enable_expert_parallel and not spec.moe:
        notes.append(
            f"--enable-expert-parallel has no effect: {spec.model_id} has no experts (vLLM "
            "accepts the flag and shards the model by TP only)"
        )
    if modelopt_kv:
        kv_dtype = "fp8_e4m3"
        notes.append(
            f"kv_cache_dtype auto takes the checkpoint's FP8 KV cache (ModelOpt "
            f"kv_cache_quant_algo), as {prof.name} does"
        )
    elif kv_dtype == "auto" and spec.quant.kv_cache_dtype == "fp8":
        notes.append("the checkpoint declares an fp8 KV cache; pass --kv-cache-dtype fp8 to use it")
    kv_bytes = kv_dtype_bytes(kv_dtype, dtype)

    quant = spec.quant
    if dep.quantization == "fp8":
        if spec.quant.is_quantized:
            notes.append(
                f"--quantization fp8 ignored for sizing: the checkpoint is already "
                f"{spec.quant.method}"
            )
        else:
            quant = runtime_fp8(spec.quant)
    breakdown = spec.params if quant is spec.quant else count_params(spec, quant)
    stages_w = stage_weights(spec, dep, quant, breakdown, dtype_bytes)

    terms = activation_terms(spec, dep, prof, dtype_bytes, mbt, mns)
    nt_gib = non_torch_gib(dep, prof)
    alignment = int(prof.defaults.get("mamba_attention_block_alignment", 16))

    stage_plans: list[StagePlan] = []
    layouts: list[KVLayout] = []
    for sw in stages_w:
        act_bytes, act_src = stage_activation(terms, sw.stage, dep.pp)
        pool_gib = budget_gib - sw.weights_bytes / GIB - act_bytes / GIB - nt_gib
        layout = kv_layout(spec, sw.layers, dep.tp, kv_bytes, dtype_bytes, block_size, alignment)
        layouts.append(layout)
        blocks, tokens, conc = blocks_and_concurrency(
            layout, max(pool_gib, 0.0) * GIB, max_model_len, mbt, prof.kv_tokens_formula
        )
        stage_plans.append(
            StagePlan(
                stage=sw.stage,
                layers=sw.layers,
                weights_gib=sw.weights_bytes / GIB,
                activation_gib=act_bytes / GIB,
                activation_source=act_src,
                non_torch_gib=nt_gib,
                kv_pool_gib=pool_gib,
                kv_bytes_per_token=layout.bytes_per_token,
                kv_blocks=blocks,
                kv_tokens=tokens,
                max_concurrency=conc,
            )
        )
        for n in layout.notes:
            if n not in notes:
                notes.append(n)

    # The engine is limited by its worst rank: the fewest blocks.
    worst = min(
        range(len(stage_plans)),
        key=lambda i: (stage_plans[i].kv_blocks, stage_plans[i].kv_pool_gib),
    )
    ws = stage_plans[worst]
    layout = layouts[worst]
    problems: list[str] = []
    weights_max = max(s.weights_gib for s in stage_plans)
    if weights_max > budget_gib:
        problems.append(
            f"the weights alone need {weights_max:.2f} GiB per GPU, more than the "
            f"{budget_gib:.2f} GiB budget ({util:g} x {device_gib:.2f} GiB); add GPUs (tp/pp), "
            "quantize, or raise gpu_memory_utilization"
        )
    elif ws.kv_pool_gib <= 0:
        problems.append(
            f"no memory left for the KV cache ({ws.kv_pool_gib:.2f} GiB after weights, "
            "activation and non-torch memory); raise gpu_memory_utilization, lower "
            "max_num_batched_tokens / max_num_seqs, or add GPUs"
        )
    # The search stops at the model's maximum, or at the longer length a user allowed.
    length_cap = spec.max_position_embeddings
    if dep.allow_long_max_model_len:
        length_cap = max(length_cap, max_model_len)
    mml_fit = _max_len_that_fits(layout, ws.kv_pool_gib * GIB, mbt, block_size, length_cap)
    needed = kv_needed_bytes(layout, max_model_len, mbt)
    if not problems and needed > ws.kv_pool_gib * GIB:
        problems.append(
            f"max_model_len {max_model_len} needs {needed / GIB:.2f} GiB of KV cache for one "
            f"request, more than the {ws.kv_pool_gib:.2f} GiB available; the largest length "
            f"that fits is {mml_fit}; lower max_model_len or add memory"
        )
    state_groups = [g for g in layout.groups if g.kind in (LINEAR, MAMBA)]
    if not problems and state_groups and ws.kv_blocks < mns:
        text = (
            f"max_num_seqs ({mns}) exceeds the {ws.kv_blocks} sequences whose "
            "linear-attention/Mamba state fits; lower --max-num-seqs"
        )
        if prof.defaults.get("mamba_blocks_must_cover_max_num_seqs"):
            problems.append(text)
        else:
            notes.append(text + " (this release only queues the extra requests)")

    terms_gib = {"weights": weights_max, "activation": ws.activation_gib, "non_torch": nt_gib}
    dominant = max(terms_gib, key=terms_gib.get)
    if dep.pp > 1:
        notes.append(
            f"pipeline stage {worst} limits the engine (fewest KV blocks); every stage is listed"
        )
    if spec.num_mtp_layers:
        notes.append("multi-token-prediction layers are not loaded (no speculative decoding)")
    if spec.vision:
        notes.append(
            f"vision/audio tower of {spec.vision.params / 1e9:.2f} B parameters is loaded on the "
            "first stage, split by TP; the encoder's own profiling pass is not modelled (vLLM may "
            "report a larger activation peak unless --limit-mm-per-prompt sets the images to 0)"
        )
    notes.append(
        f"activation = max(forward pass over {mbt} tokens, sampler over {mns} sequences x "
        f"{spec.vocab_size} vocabulary float32 logits), constants from profile {prof.name}"
    )

    args = vllm_args(spec, dep, util, max_model_len, kv_dtype, block_size, prof)
    weights_total = sum(s.weights_gib for s in stage_plans) * dep.tp * dep.dp
    return Plan(
        model_id=spec.model_id,
        serve_target=spec.serve_target,
        vllm_env=(
            {"VLLM_ALLOW_LONG_MAX_MODEL_LEN": "1"}
            if dep.allow_long_max_model_len and max_model_len > spec.max_position_embeddings
            else {}
        ),
        gpu=gpu.name,
        deployment=dep,
        profile=prof,
        device_total_gib=device_gib,
        utilization=util,
        budget_gib=budget_gib,
        weights_gib=ws.weights_gib,
        activation_gib=ws.activation_gib,
        non_torch_gib=nt_gib,
        kv_pool_gib=ws.kv_pool_gib,
        kv_dtype=kv_dtype if kv_dtype != "auto" else f"auto ({dtype})",
        kv_bytes_per_token=layout.bytes_per_token,
        kv_state_bytes_per_seq=layout.state_bytes_per_seq,
        block_size=layout.block_size,
        kv_blocks=ws.kv_blocks,
        kv_tokens=ws.kv_tokens,
        max_concurrency=ws.max_concurrency,
        max_model_len=max_model_len,
        max_num_seqs=mns,
        max_num_batched_tokens=mbt,
        fits=not problems,
        problems=problems,
        dominant_term=dominant,
        max_model_len_that_fits=mml_fit,
        valid_tp=valid_tp_sizes(spec, 8, bool(dep.enable_expert_parallel)),
        stages=stage_plans,
        vllm_args=args,
        notes=notes,
        weights_total_gib=weights_total,
        num_gpus=dep.tp * dep.pp * dep.dp,
        worst_stage=worst,
        kv_groups=[
            {
                "kind": g.kind,
                "window": g.window,
                "layers": g.num_layers,
                "block_size": g.block_size,
                "page_bytes": g.page_bytes,
            }
            for g in layout.groups
        ],
    )


def _max_len_that_fits(
    layout: KVLayout, pool_bytes: float, mbt: int, block_size: int, model_max: int
) -> int | None:
    """The largest max_model_len whose one-request KV need fits the pool (vLLM's estimate)."""
    if not layout.groups or pool_bytes <= 0:
        return None if pool_bytes <= 0 else model_max
    if kv_needed_bytes(layout, model_max, mbt) <= pool_bytes:
        return model_max
    lo, hi = 0, model_max
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if kv_needed_bytes(layout, mid, mbt) <= pool_bytes:
            lo = mid
        else:
            hi = mid - 1
    return lo or None


def vllm_args(
    spec: ModelSpec,
    dep: Deployment,
    util: float,
    max_model_len: int,
    kv_dtype: str,
    block_size: int,
    prof: EngineProfile,
) -> list[str]:
    """The ``vllm serve`` arguments that realise the plan (defaults left out)."""
    args = []
    if dep.tp > 1:
        args += ["--tensor-parallel-size", str(dep.tp)]
    if dep.pp > 1:
        args += ["--pipeline-parallel-size", str(dep.pp)]
    if dep.dp > 1:
        args += ["--data-parallel-size", str(dep.dp)]
    if dep.enable_expert_parallel:
        args.append("--enable-expert-parallel")
    args += ["--max-model-len", str(max_model_len)]
    args += ["--gpu-memory-utilization", f"{util:g}"]
    if dep.dtype != "auto":
        args += ["--dtype", dep.dtype]
    if dep.quantization:
        args += ["--quantization", dep.quantization]
    if kv_dtype != "auto":
        args += ["--kv-cache-dtype", kv_dtype]
    # A profile may default to another size than vLLM (vllm-0.11's rows ran --block-size 128):
    # the line names any size vLLM would not pick by itself.
    if block_size != VLLM_DEFAULT_BLOCK_SIZE or dep.block_size:
        args += ["--block-size", str(block_size)]
    if dep.max_num_seqs:
        args += ["--max-num-seqs", str(dep.max_num_seqs)]
    if dep.max_num_batched_tokens:
        args += ["--max-num-batched-tokens", str(dep.max_num_batched_tokens)]
    return args


# --- searches ------------------------------------------------------------------------


def max_model_len_for(
    spec: ModelSpec, gpu: GPU, dep: Deployment, profile: str | None = None
) -> int | None:
    """The largest max_model_len that fits this deployment (None if nothing fits)."""
    probe = replace(dep, max_model_len=min(spec.max_position_embeddings, 4096))
    result = plan(spec, gpu, probe, profile)
    if any("weights alone" in p or "no memory left" in p for p in result.problems):
        return None
    return result.max_model_len_that_fits


def smallest_parallelism(
    spec: ModelSpec,
    gpu: GPU,
    max_model_len: int | None = None,
    concurrency: int = 1,
    max_gpus: int = 64,
    base: Deployment | None = None,
    profile: str | None = None,
) -> Plan | None:
    """The smallest TP x PP that serves ``concurrency`` requests of ``max_model_len`` tokens.

    Fewest GPUs first; at an equal count a TP group that fits in one server (the GPU's
    typical server size) wins over one that spans servers, then the one with fewer stages.
    """
    base = base or Deployment()
    per_server = gpu.gpus_per_server or 8
    options = []
    for tp in (1, 2, 4, 8, 16, 32):
        for pp in (1, 2, 3, 4, 6, 8, 16):
            usable = tp_rejection(spec, tp, base.enable_expert_parallel) is None
            if tp * pp <= max_gpus and usable and pp <= spec.num_layers:
                # Fewest GPUs first; at equal count keep TP inside one server, then less PP.
                options.append((tp * pp, tp > per_server, pp, tp))
    for _, _, pp, tp in sorted(options):
        dep = replace(base, tp=tp, pp=pp, max_model_len=max_model_len)
        try:
            result = plan(spec, gpu, dep, profile)
        except UserError:
            continue
        if result.fits and result.max_concurrency >= concurrency:
            return result
    return None


def concurrency_curve(
    spec: ModelSpec, gpu: GPU, dep: Deployment, lengths: list[int], profile: str | None = None
) -> list[dict[str, float]]:
    """Max concurrency against max_model_len, for the dashboard's curve."""
    out = []
    for length in lengths:
        if length > spec.max_position_embeddings and not dep.allow_long_max_model_len:
            continue
        result = plan(spec, gpu, replace(dep, max_model_len=length), profile)
        out.append(
            {
                "max_model_len": length,
                "max_concurrency": result.max_concurrency,
                "kv_tokens": result.kv_tokens,
                "fits": result.fits,
            }
        )
    return out


def describe_formulas(p: Plan) -> list[str]:
    """The formulas and constants behind a plan, for the 'how this is computed' panel."""
    prof = p.profile
    c = prof.constants
    return [
        f"budget = gpu_memory_utilization x device_total = {p.utilization:g} x "
        f"{p.device_total_gib:.2f} GiB = {p.budget_gib:.2f} GiB",
        f"kv_pool = budget - weights - activation - non_torch = {p.budget_gib:.2f} - "
        f"{p.weights_gib:.2f} - {p.activation_gib:.2f} - {p.non_torch_gib:.2f} = "
        f"{p.kv_pool_gib:.2f} GiB",
        f"sampler peak = {c['sampler_logits_copies']:g} x max_num_seqs x vocab x 4 B "
        f"+ {c['sampler_per_hidden_element']:g} x max_num_batched_tokens x hidden x dtype",
        f"forward peak = {c['forward_per_mlp_element']:g} x max_num_batched_tokens x MLP width "
        f"per rank x dtype (MoE: {c['forward_moe_hidden_copies']:g} x tokens x top_k x "
        "hidden x dtype)",
        f"non_torch = {non_torch_gib(p.deployment, prof):.2f} GiB (TP1 "
        f"{c['non_torch_single_gib']:g}, PP-only {c['non_torch_pp_gib']:g}, TP>1 "
        f"{c['non_torch_tp_base_gib']:g} + {c['non_torch_per_tp_rank_gib']:g} x tp)",
        f"KV bytes per token per GPU = {p.kv_bytes_per_token} (sum over layers of "
        "2 x kv_heads_per_rank x head_dim x kv_dtype bytes; MLA: latent x bytes)",
        f"blocks = kv_pool // (block_size x bytes per token) = {p.kv_blocks}; tokens = "
        f"{p.kv_tokens}; max concurrency = blocks / blocks per request = "
        f"{p.max_concurrency:.2f}",
    ]
