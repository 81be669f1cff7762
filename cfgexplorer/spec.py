"""ModelSpec: one normalised view of a model architecture.

A Hugging Face ``config.json`` comes in many dialects: nested ``text_config``
for multimodal models, ``layer_types`` or ``hybrid_override_pattern`` or
``sliding_window_pattern`` for mixed attention, MLA low-rank fields, a dozen
spellings of the MoE sizes. :func:`spec_from_config` reads any of them into
one frozen :class:`ModelSpec` holding exactly what the capacity and
performance models need. Parameter counts and weight bytes are derived in
:mod:`cfgexplorer.params`.

Plain dictionaries only: no transformers import here (the catalog path must
stay fast). Configs from the Hub or a local folder may first be filled with
transformers' defaults by :mod:`cfgexplorer.sources`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from cfgexplorer.errors import ModelConfigError, UnsupportedArchitectureError
from cfgexplorer.quant import QuantScheme, parse_quantization

# Attention kinds per layer.
FULL = "full"
SLIDING = "sliding"
CHUNKED = "chunked"
MLA = "mla"
LINEAR = "linear"  # gated delta net / linear attention: fixed state per sequence
MAMBA = "mamba"  # Mamba2 SSM: fixed state per sequence
NONE = "none"  # no token mixer (MLP-only block, or a no-op attention)

STATE_KINDS = (LINEAR, MAMBA)
KV_KINDS = (FULL, SLIDING, CHUNKED, MLA)

DTYPE_BYTES = {
    "float32": 4,
    "float16": 2,
    "bfloat16": 2,
    "float8_e4m3fn": 1,
    "fp8": 1,
    "fp8_e4m3": 1,
    "fp8_e5m2": 1,
    "fp8_ds_mla": 1,
}

_DTYPE_ALIASES = {
    "fp32": "float32",
    "float": "float32",
    "torch.float32": "float32",
    "fp16": "float16",
    "half": "float16",
    "torch.float16": "float16",
    "bf16": "bfloat16",
    "torch.bfloat16": "bfloat16",
}


def normalise_dtype(value: Any, default: str = "bfloat16") -> str:
    """Return a canonical torch dtype name (float32, float16, bfloat16)."""
    if value is None or value == "auto":
        return default
    text = str(value).lower()
    text = _DTYPE_ALIASES.get(text, text)
    if text not in ("float32", "float16", "bfloat16"):
        return default
    return text


@dataclass(frozen=True)
class LayerAttention:
    """The token mixer of one decoder layer, as the KV cache sees it.

    For full/sliding/chunked layers ``num_kv_heads`` x (``head_dim`` +
    ``v_head_dim``) values are cached per token; for MLA one latent of
    ``head_dim`` (= kv_lora_rank + qk_rope_head_dim) values; for linear and
    Mamba layers a fixed state of ``conv_state_elems + ssm_state_elems``
    values per sequence.
    """

    kind: str
    num_heads: int = 0
    num_kv_heads: int = 0
    head_dim: int = 0
    v_head_dim: int = 0
    window: int | None = None
    conv_state_elems: int = 0
    ssm_state_elems: int = 0
    extra_bytes_per_token: int = 0  # e.g. DeepSeek sparse-attention indexer keys (fp8 + scale)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        if self.kind in KV_KINDS:
            out.update(num_kv_heads=self.num_kv_heads, head_dim=self.head_dim)
            if self.v_head_dim != self.head_dim and self.kind != MLA:
                out["v_head_dim"] = self.v_head_dim
        if self.window:
            out["window"] = self.window
        if self.kind in STATE_KINDS:
            out.update(conv_state_elems=self.conv_state_elems, ssm_state_elems=self.ssm_state_elems)
        return out


@dataclass(frozen=True)
class MLAConfig:
    """Multi-head latent attention sizes (DeepSeek V2/V3, Kimi K2, GLM-4.7-Flash)."""

    kv_lora_rank: int
    qk_rope_head_dim: int
    qk_nope_head_dim: int
    v_head_dim: int
    q_lora_rank: int | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class MoEConfig:
    """Mixture-of-experts sizes; ``moe_layers`` are the layers with routed experts."""

    num_experts: int
    experts_per_token: int
    expert_intermediate_size: int
    num_shared_experts: int = 0
    shared_expert_intermediate_size: int = 0
    shared_expert_gate: bool = False
    router_bias: bool = False
    expert_bias: bool = False
    latent_size: int = 0  # experts work in a smaller latent space (Nemotron 3 Super)
    moe_layers: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["moe_layers"] = len(self.moe_layers)
        return out


@dataclass(frozen=True)
class VisionConfig:
    """A vision (or audio) tower: its parameters are extra weights the text model loads."""

    model_type: str
    params: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ModelSpec:
    """What the planner needs to know of a model, whatever its config looked like.

    Sizes are in elements unless a name says bytes; ``layers`` has one
    :class:`LayerAttention` per decoder layer.
    """

    model_id: str
    model_type: str
    architecture: str
    source: str  # "catalog", "local" or "hub"
    revision: str | None
    num_layers: int
    hidden_size: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool
    max_position_embeddings: int
    dtype: str
    layers: tuple[LayerAttention, ...]
    mlp_kinds: tuple[str, ...]  # per layer: "dense", "moe", "none"
    mlp_intermediate: tuple[int, ...]  # per layer dense MLP width (0 where none)
    mlp_gated: bool = True
    mla: MLAConfig | None = None
    moe: MoEConfig | None = None
    quant: QuantScheme = field(default_factory=QuantScheme)
    vision: VisionConfig | None = None
    num_mtp_layers: int = 0
    attention_bias: bool = False
    o_proj_bias: bool = False
    mlp_bias: bool = False
    qk_norm: bool = False
    norms_per_layer: int = 2
    norm_has_bias: bool = False
    lm_head_bias: bool = False
    attention_output_gate: bool = False
    attention_sinks: bool = False
    mixer_dims: dict[str, int] = field(default_factory=dict)  # linear-attention / Mamba sizes
    checkpoint_stores_tied_head: bool = False  # safetensors keep lm_head despite tying
    rotary_dim: int = 0  # dimensions rotated by RoPE (0: no rotary embedding)
    safetensors_params: dict[str, int] | None = None
    notes: tuple[str, ...] = ()
    local_path: str | None = None  # the folder vLLM would load a local model from

    # --- derived views -------------------------------------------------------
    @property
    def serve_target(self) -> str:
        """What ``vllm serve`` is given: the Hub id, or the folder holding a local model.

        An uploaded config comes without its folder, so the line names a placeholder path.
        """
        if self.local_path:
            return self.local_path
        if self.source == "upload":
            name = self.model_id.rstrip("/").rsplit("/", 1)[-1]
            return f"/path/to/{'model' if not name or name.endswith('.json') else name}"
        return self.model_id

    @property
    def attention_kinds(self) -> dict[str, int]:
        """Count of layers per attention kind."""
        counts: dict[str, int] = {}
        for layer in self.layers:
            counts[layer.kind] = counts.get(layer.kind, 0) + 1
        return counts

    @property
    def is_moe(self) -> bool:
        return self.moe is not None

    @property
    def is_hybrid(self) -> bool:
        """True when layers differ in how they cache (vLLM's hybrid KV-cache manager)."""
        return len({(la.kind, la.window) for la in self.layers if la.kind != NONE}) > 1

    @property
    def dtype_bytes(self) -> int:
        return DTYPE_BYTES[self.dtype]

    @property
    def params(self) -> Any:
        """Parameter breakdown (see :mod:`cfgexplorer.params`), computed once."""
        cached = self.__dict__.get("_params")
        if cached is None:
            from cfgexplorer.params import count_params

            cached = count_params(self)
            object.__setattr__(self, "_params", cached)
        return cached

    @property
    def params_total(self) -> int:
        """Parameters in the checkpoint (logical count: packed int4 unpacked).

        Exact from the safetensors headers when they are known and nothing is packed;
        computed from the architecture otherwise.
        """
        if self.safetensors_params and not self.quant.is_quantized:
            return sum(self.safetensors_params.values())
        return self.params.total

    @property
    def checkpoint_bytes(self) -> int | None:
        """Bytes of the safetensors files' tensors, when their headers are known."""
        if not self.safetensors_params:
            return None
        from cfgexplorer.sources import SAFETENSORS_DTYPE_BYTES

        return round(
            sum(
                n * SAFETENSORS_DTYPE_BYTES.get(d.upper(), 2)
                for d, n in self.safetensors_params.items()
            )
        )

    @property
    def params_active(self) -> int:
        """Parameters used per token (routed experts counted top-k only)."""
        return self.params.active

    @property
    def weight_bytes(self) -> int:
        """Bytes vLLM loads for the weights at the checkpoint's own precision."""
        return self.params.weight_bytes

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary (per-layer detail folded into counts)."""
        return {
            "model_id": self.model_id,
            "model_type": self.model_type,
            "architecture": self.architecture,
            "source": self.source,
            "revision": self.revision,
            "num_layers": self.num_layers,
            "hidden_size": self.hidden_size,
            "num_attention_heads": self.num_attention_heads,
            "num_kv_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "intermediate_size": self.intermediate_size,
            "vocab_size": self.vocab_size,
            "tie_word_embeddings": self.tie_word_embeddings,
            "max_position_embeddings": self.max_position_embeddings,
            "dtype": self.dtype,
            "attention": _attention_summary(self),
            "attention_kinds": self.attention_kinds,
            "mla": self.mla.to_dict() if self.mla else None,
            "moe": self.moe.to_dict() if self.moe else None,
            "quantization": self.quant.to_dict(),
            "vision": self.vision.to_dict() if self.vision else None,
            "num_mtp_layers": self.num_mtp_layers,
            "params_total": self.params_total,
            "params_active": self.params_active,
            "weight_bytes": self.weight_bytes,
            "weight_gib": round(self.weight_bytes / 2**30, 3),
            "params_by_module": self.params.by_module,
            "safetensors_params": self.safetensors_params,
            "checkpoint_bytes": self.checkpoint_bytes,
            "params_computed": self.params.total,
            "notes": list(self.notes) + list(self.params.notes),
        }


def _attention_summary(spec: ModelSpec) -> str:
    if spec.mla:
        return "MLA"
    kv, heads = spec.num_kv_heads, spec.num_attention_heads
    if kv == heads:
        base = "MHA"
    elif kv == 1:
        base = "MQA"
    else:
        base = f"GQA ({heads} query heads, {kv} KV heads)"
    kinds = spec.attention_kinds
    extras = [f"{n} {k}" for k, n in kinds.items() if k != FULL]
    return base + (" + " + ", ".join(extras) if extras else "")


# --- reading configs ---------------------------------------------------------

_TEXT_KEYS = ("text_config", "llm_config", "language_config", "thinker_config")
_VISION_KEYS = ("vision_config", "audio_config", "vision_tower_config")


def text_config_of(config: dict[str, Any]) -> dict[str, Any]:
    """The config of the language model that vLLM serves (nested or top level)."""
    for key in _TEXT_KEYS:
        nested = config.get(key)
        if isinstance(nested, dict) and (
            "hidden_size" in nested or "num_hidden_layers" in nested or "n_embd" in nested
        ):
            if key == "thinker_config" and isinstance(nested.get("text_config"), dict):
                return nested["text_config"]
            return nested
    return config


def _first(cfg: dict[str, Any], *names: str, default: Any = None) -> Any:
    for name in names:
        value = cfg.get(name)
        if value is not None:
            return value
    return default


def _require(cfg: dict[str, Any], model_id: str, **alternatives: tuple[str, ...]) -> dict:
    out = {}
    missing = []
    for label, names in alternatives.items():
        value = _first(cfg, *names)
        if value is None:
            missing.append(label)
        out[label] = value
    if missing:
        raise ModelConfigError(
            f"the config of {model_id} lacks {', '.join(missing)}; "
            "pass a complete config.json (or the model's Hub id)"
        )
    return out


def spec_from_config(
    config: dict[str, Any],
    *,
    model_id: str,
    source: str,
    revision: str | None = None,
    hf_quant_config: dict[str, Any] | None = None,
    safetensors_params: dict[str, int] | None = None,
) -> ModelSpec:
    """Normalise a config.json dictionary into a :class:`ModelSpec`.

    Raises
    ------
    ModelConfigError
        When required fields are missing or have impossible values.
    """
    if not isinstance(config, dict):
        raise ModelConfigError(f"the config of {model_id} is not a JSON object")
    check_sizes(text_config_of(config), model_id)
    try:
        spec = _spec_from_config(
            config,
            model_id=model_id,
            source=source,
            revision=revision,
            hf_quant_config=hf_quant_config,
            safetensors_params=None,
        )
        if not safetensors_params:
            return spec
        why = _implausible_counts(spec, safetensors_params)
        if why:
            note = f"safetensors parameter counts ignored: {why}; counts come from the config"
            return replace(spec, notes=(*spec.notes, note))
        return replace(spec, safetensors_params=dict(safetensors_params))
    except (TypeError, ValueError, OverflowError, ZeroDivisionError, AttributeError) as exc:
        raise ModelConfigError(
            f"the config of {model_id} has a value the planner cannot read ({exc}); "
            "check config.json against the model's published one"
        ) from exc


# Largest plausible value of each size field; beyond it the config is broken, not a model.
SIZE_LIMITS = {
    "num_hidden_layers": 10_000,
    "hidden_size": 1_000_000,
    "num_attention_heads": 100_000,
    "num_key_value_heads": 100_000,
    "head_dim": 100_000,
    "intermediate_size": 10_000_000,
    "moe_intermediate_size": 10_000_000,
    "vocab_size": 100_000_000,
    "max_position_embeddings": 10_000_000_000,
    "num_local_experts": 100_000,
    "n_routed_experts": 100_000,
    "num_experts": 100_000,
    "num_experts_per_tok": 100_000,
    "kv_lora_rank": 1_000_000,
    "sliding_window": 10_000_000_000,
}


def check_sizes(text: dict[str, Any], model_id: str) -> None:
    """Reject size fields that are not whole numbers or are implausibly large or negative."""
    for key, limit in SIZE_LIMITS.items():
        value = text.get(key)
        if value is None:
            continue
        whole = isinstance(value, int) and not isinstance(value, bool)
        if isinstance(value, float) and value.is_integer():
            whole = True
        if not whole:
            raise ModelConfigError(
                f"the config of {model_id} has {key}={value!r}, which is not a whole number; "
                "fix config.json"
            )
        if value < 0 or value > limit:
            raise ModelConfigError(
                f"the config of {model_id} has {key}={value}, outside 0..{limit:,}; fix config.json"
            )


def _spec_from_config(
    config: dict[str, Any],
    *,
    model_id: str,
    source: str,
    revision: str | None,
    hf_quant_config: dict[str, Any] | None,
    safetensors_params: dict[str, int] | None,
) -> ModelSpec:
    """The body of :func:`spec_from_config`, once the size fields are known to be sane."""
    text = text_config_of(config)
    notes: list[str] = []
    model_type = str(text.get("model_type") or config.get("model_type") or "unknown")
    top_type = str(config.get("model_type") or model_type)
    architectures = config.get("architectures") or text.get("architectures") or []
    architecture = architectures[0] if architectures else f"{top_type} (no architectures key)"

    if config.get("_cfgexplorer_unknown_type"):
        notes.append(
            f"model_type {top_type!r} is unknown to the installed transformers: the config was "
            "read as plain JSON; check that your vLLM release supports this architecture"
        )
    if "block_configs" in text:
        return _nemotron_nas(config, text, model_id, source, revision, hf_quant_config, notes)
    if model_type in UNMODELLED_STATE_SPACE_TYPES:
        raise UnsupportedArchitectureError(
            f"{model_id} is a {model_type} model, whose {UNMODELLED_STATE_SPACE_TYPES[model_type]} "
            "layout the planner does not read yet; its memory would be sized wrongly, so it "
            "is refused (Nemotron-H, Granite 4 and Qwen3-Next-style hybrids are supported)"
        )

    num_layers = _num_layers(text, model_id)
    _check_layer_pattern(text, num_layers, model_id)
    if "max_position_embeddings" in text and text["max_position_embeddings"] is None:
        raise ModelConfigError(
            f"the config of {model_id} sets max_position_embeddings to null; set the model's "
            "context length in config.json"
        )
    hidden = _first(text, "hidden_size", "n_embd", "d_model")
    heads = _first(text, "num_attention_heads", "n_head", "num_heads")
    if hidden is None or heads is None:
        missing = [
            n for n, v in (("hidden_size", hidden), ("num_attention_heads", heads)) if v is None
        ]
        raise ModelConfigError(
            f"the config of {model_id} lacks {', '.join(missing)}; "
            "pass a complete config.json (or the model's Hub id)"
        )
    hidden, heads = int(hidden), int(heads)
    kv_heads = int(_first(text, "num_key_value_heads", "n_head_kv", "num_kv_heads", default=heads))
    if heads > 0 and kv_heads > 0 and heads % kv_heads:
        raise ModelConfigError(
            f"the config of {model_id} has {heads} attention heads and {kv_heads} KV heads; "
            "grouped-query attention needs the heads to divide evenly into the KV heads, "
            "so fix num_attention_heads or num_key_value_heads in config.json"
        )
    head_dim = _first(text, "head_dim", "attention_head_dim", "kv_channels")
    if head_dim is not None and int(head_dim) == 0:
        raise ModelConfigError(
            f"the config of {model_id} has head_dim 0; remove it (hidden_size / heads is "
            "then used) or set the model's real head size"
        )
    head_dim = int(head_dim) if head_dim else hidden // max(heads, 1)
    vocab = _first(text, "vocab_size", "padded_vocab_size")
    if vocab is None:
        raise ModelConfigError(
            f"the config of {model_id} lacks vocab_size; pass a complete config.json"
        )
    for label, value in (
        ("num_hidden_layers", num_layers),
        ("hidden_size", hidden),
        ("num_attention_heads", heads),
        ("vocab_size", vocab),
    ):
        if int(value) <= 0:
            raise ModelConfigError(f"the config of {model_id} has {label}={value}; it must be > 0")

    intermediate = int(
        _first(text, "intermediate_size", "ffn_hidden_size", "n_inner", default=4 * hidden)
    )
    tie = bool(
        _first(text, "tie_word_embeddings", default=None)
        if "tie_word_embeddings" in text
        else config.get("tie_word_embeddings", model_type.startswith("gemma"))
    )
    max_pos = int(
        _first(
            text,
            "max_position_embeddings",
            "max_sequence_length",
            "seq_length",
            "n_positions",
            default=config.get("max_position_embeddings", 4096),
        )
    )
    if max_pos <= 0:
        raise ModelConfigError(
            f"the config of {model_id} has max_position_embeddings={max_pos}; it must be > 0, "
            "so set the model's context length in config.json"
        )
    max_pos = _rope_scaled_max_len(text, model_type, max_pos, notes)
    dtype = normalise_dtype(
        _first(text, "torch_dtype", "dtype", default=None)
        or _first(config, "torch_dtype", "dtype", default=None),
        default="bfloat16",
    )

    mla = _mla(text)
    layers = _layer_attention(
        text, top_type, model_type, num_layers, heads, kv_heads, head_dim, mla, notes
    )
    moe = _moe(text, model_type, num_layers, intermediate, notes)
    mlp_kinds, mlp_widths = _mlp_layout(text, model_type, num_layers, intermediate, moe, layers)

    quant_cfg = text.get("quantization_config") or config.get("quantization_config")
    quant = parse_quantization(quant_cfg, hf_quant_config)
    if not quant.known:
        notes.append(
            f"unknown quantization method {quant.method!r}: weights are sized at the "
            f"checkpoint dtype ({dtype})"
        )

    vision = _vision(config)
    mtp = int(
        _first(
            text, "num_nextn_predict_layers", "mtp_num_hidden_layers", "num_mtp_layers", default=0
        )
        or 0
    )
    if model_type == "qwen3_next" and "num_nextn_predict_layers" not in text:
        mtp = 1  # Qwen3-Next checkpoints carry one MTP layer their config does not declare

    gemma = model_type.startswith("gemma")
    norms = 4 if gemma and model_type not in ("gemma",) else 2
    if model_type.startswith("nemotron_h") or _hybrid_pattern(text) or model_type == "phi":
        norms = 1  # one pre-norm per block (phi runs attention and MLP in parallel)
    attention_bias = bool(
        text.get("attention_bias", False)
        or text.get("qkv_bias", False)
        or model_type in ("qwen2", "qwen2_moe", "qwen2_vl", "qwen2_5_vl_text", "phi")
    )
    o_bias = bool(text.get("attention_bias", False) or model_type == "phi")
    if model_type in ("qwen2", "qwen2_moe"):
        o_bias = False
    qk_norm = bool(
        text.get("use_qk_norm")
        or model_type.startswith(("qwen3", "gemma3", "gemma4", "olmo2", "minimax_m2"))
    )
    mlp_gated = not (
        model_type in ("phi", "gpt2", "starcoder2", "nemotron")
        or str(text.get("mlp_hidden_act", text.get("hidden_act", ""))) == "relu2"
    )

    return ModelSpec(
        model_id=model_id,
        model_type=top_type if top_type == model_type else f"{top_type}/{model_type}",
        architecture=architecture,
        source=source,
        revision=revision,
        num_layers=num_layers,
        hidden_size=hidden,
        num_attention_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=intermediate,
        vocab_size=int(vocab),
        tie_word_embeddings=tie,
        max_position_embeddings=max_pos,
        dtype=dtype,
        layers=tuple(layers),
        mlp_kinds=tuple(mlp_kinds),
        mlp_intermediate=tuple(mlp_widths),
        mlp_gated=mlp_gated,
        mla=mla,
        moe=moe,
        quant=quant,
        vision=vision,
        num_mtp_layers=mtp,
        attention_bias=attention_bias,
        o_proj_bias=o_bias,
        mlp_bias=bool(text.get("mlp_bias", False) or model_type == "phi"),
        qk_norm=qk_norm,
        norms_per_layer=norms,
        norm_has_bias=model_type == "phi",
        lm_head_bias=model_type == "phi",
        attention_output_gate=bool(text.get("attn_output_gate", model_type == "qwen3_next")),
        attention_sinks=model_type == "gpt_oss",
        mixer_dims=_mixer_dims(text, hidden),
        rotary_dim=_rotary_dim(text, head_dim, mla),
        safetensors_params=safetensors_params,
        notes=tuple(notes),
    )


# Unquantized checkpoints store every parameter: their safetensors count must agree with
# the architecture's within this factor (the catalog agrees within 1%), else one is wrong.
SAFETENSORS_COUNT_TOLERANCE = 2.0  # ratio; an assumption, far outside any real mismatch


def _implausible_counts(spec: ModelSpec, counts: dict[str, int]) -> str | None:
    """Why safetensors counts cannot be this model's, or None when they can."""
    bad = [d for d, n in counts.items() if not isinstance(n, int) or n < 0]
    total = sum(n for n in counts.values() if isinstance(n, int))
    if bad or total <= 0:
        return f"negative or empty counts ({', '.join(map(str, bad)) or 'total 0'})"
    if spec.quant.is_quantized:  # packed int4 and scales: element counts differ by design
        return None
    computed = spec.params.total
    low, high = computed / SAFETENSORS_COUNT_TOLERANCE, computed * SAFETENSORS_COUNT_TOLERANCE
    if not low <= total <= high:
        return f"they count {total:,} parameters, the architecture {computed:,}"
    return None


# RoPE types whose position limit vLLM does not scale (the config already states it).
ROPE_TYPES_NOT_SCALED = ("su", "longrope", "llama3", "default", "mrope")


def _rope_scaled_max_len(
    text: dict[str, Any], model_type: str, max_pos: int, notes: list[str]
) -> int:
    """The longest context vLLM derives: RoPE scaling multiplies the position limit.

    As vLLM does: for YaRN, original_max_position_embeddings x factor; for linear and
    dynamic scaling, max_position_embeddings x factor; Llama 3, LongRoPE and Gemma 3
    already state the scaled limit.
    """
    rope = text.get("rope_scaling") or text.get("rope_parameters")
    if not isinstance(rope, dict) or model_type.startswith("gemma3"):
        return max_pos
    rope_type = str(rope.get("rope_type") or rope.get("type") or "default")
    factor = rope.get("factor")
    if rope_type in ROPE_TYPES_NOT_SCALED or not isinstance(factor, int | float) or factor <= 1:
        return max_pos
    base = max_pos
    original = rope.get("original_max_position_embeddings")
    if rope_type == "yarn" and isinstance(original, int | float) and original > 0:
        base = int(original)
    scaled = int(base * factor)
    if scaled != max_pos:
        notes.append(
            f"{rope_type} RoPE scaling x{factor:g} gives a {scaled:,}-token context (vLLM's "
            f"limit), not max_position_embeddings {max_pos:,}"
        )
    return scaled


def _rotary_dim(text: dict[str, Any], head_dim: int, mla: MLAConfig | None) -> int:
    """How many dimensions of each head RoPE rotates."""
    if mla:
        return mla.qk_rope_head_dim
    rope = text.get("rope_parameters") or text.get("rope_scaling") or {}
    factor = text.get("partial_rotary_factor")
    if factor is None and isinstance(rope, dict):
        factor = rope.get("partial_rotary_factor")
    return int(head_dim * float(factor if factor is not None else 1.0))


def _mixer_dims(text: dict[str, Any], hidden: int) -> dict[str, int]:
    """Sizes of linear-attention and Mamba mixers, for the parameter count."""
    dims: dict[str, int] = {}
    if text.get("o_lora_rank"):
        # DeepSeek V4: low-rank query, one shared latent KV head, grouped low-rank output.
        dims.update(
            q_lora_rank=int(text.get("q_lora_rank") or 0),
            o_lora_rank=int(text["o_lora_rank"]),
            o_groups=int(text.get("o_groups") or 1),
        )
    ssm_dtype = str(_first(text, "mamba_ssm_cache_dtype", "mamba_ssm_dtype", default="") or "")
    if "32" in ssm_dtype:
        dims["ssm_state_bytes"] = 4  # the recurrent state is kept in float32
    if text.get("linear_num_value_heads") or text.get("linear_key_head_dim"):
        dims.update(
            linear_num_key_heads=int(text.get("linear_num_key_heads") or 16),
            linear_key_head_dim=int(text.get("linear_key_head_dim") or 128),
            linear_num_value_heads=int(text.get("linear_num_value_heads") or 32),
            linear_value_head_dim=int(text.get("linear_value_head_dim") or 128),
            linear_conv_kernel=int(text.get("linear_conv_kernel_dim") or 4),
        )
    layer_types = text.get("layer_types")
    mamba_layers = isinstance(layer_types, list) and any(
        isinstance(t, str) and "mamba" in t.lower() for t in layer_types
    )
    mamba_keys = ("ssm_state_size", "mamba_d_state", "mamba_n_heads", "mamba_num_heads")
    if (
        _hybrid_pattern(text)
        or text.get("layers_block_type")
        or mamba_layers
        or any(text.get(k) for k in mamba_keys)
    ):
        n_heads = int(_first(text, "mamba_num_heads", "mamba_n_heads", default=0) or 0)
        head_dim = int(_first(text, "mamba_head_dim", "mamba_d_head", default=64) or 64)
        expand = int(_first(text, "expand", "mamba_expand", default=2) or 2)
        inner = n_heads * head_dim if n_heads else expand * hidden
        state = int(_first(text, "ssm_state_size", "mamba_d_state", default=128))
        groups = int(_first(text, "n_groups", "mamba_n_groups", default=1))
        dims.update(
            mamba_inner=inner,
            mamba_groups_state=groups * state,
            mamba_heads=n_heads or inner // head_dim,
            mamba_kernel=int(_first(text, "conv_kernel", "mamba_d_conv", default=4)),
        )
    return dims


def _num_layers(text: dict[str, Any], model_id: str) -> int:
    value = _first(text, "num_hidden_layers", "n_layer", "num_layers", "n_layers")
    if value is None:
        for key in ("layers_block_type", "layer_types"):
            if isinstance(text.get(key), list):
                return len(text[key])
        pattern = _hybrid_pattern(text)
        if pattern:
            return len(pattern)
        raise ModelConfigError(
            f"the config of {model_id} lacks num_hidden_layers; pass a complete config.json"
        )
    return int(value)


# State-space families whose layer layout or mixer (Mamba-1, parallel attention+Mamba,
# attention at a period) is not read yet: refused rather than sized as attention.
UNMODELLED_STATE_SPACE_TYPES = {
    "mamba": "Mamba-1",
    "falcon_mamba": "Mamba-1",
    "mamba2": "pure Mamba-2",
    "jamba": "Mamba-1 with attention every attn_layer_period layers",
    "falcon_h1": "parallel attention and Mamba-2",
    "zamba": "Mamba with shared attention blocks",
    "zamba2": "Mamba-2 with shared attention blocks",
    "bamba": "Mamba-2 with attention at attn_layer_indices",
    "hymba": "parallel attention and Mamba",
    "plamo2": "Mamba with periodic attention",
    "lfm2": "short convolution and attention",
}
# layer_types values read exactly; other names are matched by their words, with a note.
KNOWN_LAYER_TYPES = (
    "full_attention",
    "attention",
    "sliding_attention",
    "chunked_attention",
    "linear_attention",
    "mamba",
)
HYBRID_PATTERN_SYMBOLS = {"M": "Mamba", "*": "attention", "-": "MLP", "E": "MoE"}
# layers_block_type names (newer transformers write linear_/full_attention for M and *).
BLOCK_TYPE_SYMBOLS = {
    "mamba": "M",
    "linear_attention": "M",
    "attention": "*",
    "full_attention": "*",
    "moe": "E",
    "mlp": "-",
}
LAYER_BLOCK_TYPES = tuple(BLOCK_TYPE_SYMBOLS)


def _check_layer_pattern(text: dict[str, Any], num_layers: int, model_id: str) -> None:
    """A hybrid layer pattern must name every layer, each with a known block type."""
    pattern = _hybrid_pattern(text)
    if pattern is not None:
        unknown = sorted(set(pattern) - set(HYBRID_PATTERN_SYMBOLS))
        if unknown:
            raise ModelConfigError(
                f"the config of {model_id} has hybrid_override_pattern symbols "
                f"{', '.join(map(repr, unknown))}; only M (Mamba), * (attention), - (MLP) "
                "and E (MoE) are known, so fix config.json"
            )
        if len(pattern) != num_layers:
            raise ModelConfigError(
                f"the config of {model_id} has a hybrid_override_pattern of {len(pattern)} "
                f"layers but num_hidden_layers {num_layers}; they must agree, so fix config.json"
            )
    block_types = text.get("layers_block_type")
    if pattern is None and isinstance(block_types, list):
        unknown = sorted({str(b) for b in block_types} - set(LAYER_BLOCK_TYPES))
        if unknown or len(block_types) != num_layers:
            raise ModelConfigError(
                f"the config of {model_id} has layers_block_type of {len(block_types)} entries "
                f"for {num_layers} layers"
                + (f" with unknown types {', '.join(map(repr, unknown))}" if unknown else "")
                + f"; each layer needs one of {', '.join(LAYER_BLOCK_TYPES)}, so fix config.json"
            )


def _layer_symbols(text: dict[str, Any]) -> str | None:
    """One symbol per layer (M, *, -, E) from hybrid_override_pattern or layers_block_type."""
    pattern = _hybrid_pattern(text)
    if pattern:
        return pattern
    block_types = text.get("layers_block_type")
    if isinstance(block_types, list):
        return "".join(BLOCK_TYPE_SYMBOLS[str(b)] for b in block_types)
    return None


def _hybrid_pattern(text: dict[str, Any]) -> str | None:
    pattern = text.get("hybrid_override_pattern")
    return pattern if isinstance(pattern, str) and pattern else None


def _mla(text: dict[str, Any]) -> MLAConfig | None:
    rank = text.get("kv_lora_rank")
    if not rank:
        return None
    return MLAConfig(
        kv_lora_rank=int(rank),
        qk_rope_head_dim=int(text.get("qk_rope_head_dim") or 64),
        qk_nope_head_dim=int(text.get("qk_nope_head_dim") or 128),
        v_head_dim=int(text.get("v_head_dim") or 128),
        q_lora_rank=int(text["q_lora_rank"]) if text.get("q_lora_rank") else None,
    )


def _mamba_state(text: dict[str, Any], hidden: int) -> tuple[int, int]:
    """Conv and SSM state elements per sequence of one Mamba2 layer (before TP)."""
    n_heads = int(_first(text, "mamba_num_heads", "mamba_n_heads", default=0) or 0)
    head_dim = int(_first(text, "mamba_head_dim", "mamba_d_head", default=0) or 0)
    if n_heads and head_dim:
        inner = n_heads * head_dim
    else:
        inner = int(_first(text, "mamba_expand", "expand", default=2)) * hidden
        head_dim = head_dim or 64
        n_heads = inner // head_dim
    state = int(_first(text, "ssm_state_size", "mamba_d_state", "state_size", default=128))
    groups = int(_first(text, "n_groups", "mamba_n_groups", default=1))
    kernel = int(_first(text, "conv_kernel", "mamba_d_conv", "mamba_conv_kernel", default=4))
    conv = (inner + 2 * groups * state) * (kernel - 1)
    ssm = n_heads * head_dim * state
    return conv, ssm


def _linear_attention_state(text: dict[str, Any]) -> tuple[int, int]:
    """Conv and recurrent state elements per sequence of one gated-delta-net layer."""
    k_heads = int(text.get("linear_num_key_heads") or 16)
    v_heads = int(text.get("linear_num_value_heads") or 32)
    k_dim = int(text.get("linear_key_head_dim") or 128)
    v_dim = int(text.get("linear_value_head_dim") or 128)
    kernel = int(text.get("linear_conv_kernel_dim") or 4)
    conv_dim = 2 * k_heads * k_dim + v_heads * v_dim
    return conv_dim * (kernel - 1), v_heads * k_dim * v_dim


def _layer_attention(
    text: dict[str, Any],
    top_type: str,
    model_type: str,
    num_layers: int,
    heads: int,
    kv_heads: int,
    head_dim: int,
    mla: MLAConfig | None,
    notes: list[str],
) -> list[LayerAttention]:
    """Decide, layer by layer, what the token mixer caches."""
    hidden = int(_first(text, "hidden_size", "n_embd", "d_model"))
    window = text.get("sliding_window")
    window = int(window) if window else None
    v_head_dim = int(text.get("v_head_dim") or head_dim) if not mla else head_dim

    def full() -> LayerAttention:
        return LayerAttention(FULL, heads, kv_heads, head_dim, v_head_dim)

    def sliding(size: int | None = None, kv: int | None = None) -> LayerAttention:
        return LayerAttention(
            SLIDING, heads, kv or kv_heads, head_dim, v_head_dim, window=size or window
        )

    if mla:
        latent = mla.kv_lora_rank + mla.qk_rope_head_dim
        indexer = 0
        if text.get("index_topk") or text.get("index_head_dim"):
            # DeepSeek sparse attention keeps an FP8 key per token for its indexer,
            # plus one FP32 scale per 128 values.
            idx_dim = int(text.get("index_head_dim") or 128)
            indexer = idx_dim + 4 * max(1, idx_dim // 128)
        return [
            LayerAttention(MLA, heads, 1, latent, latent, extra_bytes_per_token=indexer)
            for _ in range(num_layers)
        ]

    symbols = _layer_symbols(text)
    if symbols is not None:
        conv, ssm = _mamba_state(text, hidden)
        out = []
        for ch in symbols[:num_layers]:
            if ch == "M":
                out.append(LayerAttention(MAMBA, conv_state_elems=conv, ssm_state_elems=ssm))
            elif ch == "*":
                out.append(sliding() if window else full())
            else:
                out.append(LayerAttention(NONE))
        return out

    if model_type == "deepseek_v4":
        ratios = text.get("compress_ratios") or []
        notes.append(
            "DeepSeek V4 compressed attention is approximated: one 512-wide latent per "
            "token, divided by the layer's compression ratio"
        )
        out = []
        for i in range(num_layers):
            ratio = int(ratios[i]) if i < len(ratios) else 0
            out.append(
                LayerAttention(
                    SLIDING if ratio == 0 else MLA,
                    heads,
                    1,
                    head_dim // max(ratio, 1),
                    head_dim // max(ratio, 1),
                    window=window if ratio == 0 else None,
                )
            )
        return out

    layer_types = text.get("layer_types")
    if isinstance(layer_types, list) and layer_types:
        conv, ssm = (0, 0)
        if any("linear" in str(t) for t in layer_types):
            conv, ssm = _linear_attention_state(text)
        out = []
        global_kv = int(text.get("num_global_key_value_heads") or kv_heads)
        global_hd = int(text.get("global_head_dim") or head_dim)
        for t in layer_types[:num_layers]:
            t = str(t)
            if "linear" in t:
                out.append(LayerAttention(LINEAR, conv_state_elems=conv, ssm_state_elems=ssm))
            elif "mamba" in t:
                mconv, mssm = _mamba_state(text, hidden)
                out.append(LayerAttention(MAMBA, conv_state_elems=mconv, ssm_state_elems=mssm))
            elif "chunk" in t:
                out.append(
                    LayerAttention(
                        CHUNKED,
                        heads,
                        kv_heads,
                        head_dim,
                        v_head_dim,
                        window=int(text.get("attention_chunk_size") or 8192),
                    )
                )
            elif "sliding" in t or "local" in t:
                swa_kv = int(text.get("swa_num_key_value_heads") or kv_heads)
                out.append(sliding(kv=swa_kv))
            else:
                out.append(
                    LayerAttention(
                        FULL,
                        heads,
                        global_kv,
                        global_hd,
                        global_hd if global_hd != head_dim else v_head_dim,
                    )
                )
        if len(out) < num_layers:
            notes.append("layer_types is shorter than num_hidden_layers; the rest taken as full")
            out += [full() for _ in range(num_layers - len(out))]
        unread = sorted(
            {str(t) for t in layer_types[:num_layers]} - set(KNOWN_LAYER_TYPES),
        )
        if unread:
            notes.append(
                f"layer_types {', '.join(map(repr, unread))} not known to the planner: "
                "those layers are taken as full attention"
            )
        return out

    hybrid_list = text.get("hybrid_layer_pattern")
    if isinstance(hybrid_list, list) and hybrid_list:
        swa_kv = int(text.get("swa_num_key_value_heads") or kv_heads)
        swa_window = int(text.get("sliding_window_size") or window or 128)
        swa_hd = int(text.get("swa_head_dim") or head_dim)
        swa_vd = int(text.get("swa_v_head_dim") or v_head_dim)
        return [
            LayerAttention(SLIDING, heads, swa_kv, swa_hd, swa_vd, window=swa_window)
            if int(flag) == 1
            else full()
            for flag in hybrid_list[:num_layers]
        ]

    if model_type in ("qwen3_next",) or (
        text.get("full_attention_interval") and text.get("linear_num_value_heads")
    ):
        interval = int(text.get("full_attention_interval") or 4)
        conv, ssm = _linear_attention_state(text)
        return [
            full()
            if (i + 1) % interval == 0
            else LayerAttention(LINEAR, conv_state_elems=conv, ssm_state_elems=ssm)
            for i in range(num_layers)
        ]

    if model_type.startswith("llama4") or text.get("attention_chunk_size"):
        chunk = int(text.get("attention_chunk_size") or 8192)
        no_rope = text.get("no_rope_layers")
        interval = int(text.get("no_rope_layer_interval") or 4)
        if not isinstance(no_rope, list) or len(no_rope) != num_layers:
            no_rope = [int((i + 1) % interval != 0) for i in range(num_layers)]
        # Layers that use RoPE attend within a chunk; NoPE layers see everything.
        return [
            LayerAttention(CHUNKED, heads, kv_heads, head_dim, v_head_dim, window=chunk)
            if int(uses_rope)
            else full()
            for uses_rope in no_rope
        ]

    if model_type == "gemma2" and window:
        return [sliding() if i % 2 == 0 else full() for i in range(num_layers)]
    pattern_n = text.get("sliding_window_pattern")
    if model_type.startswith("gemma3") and window:
        n = int(pattern_n or 6)
        return [sliding() if (i + 1) % n != 0 else full() for i in range(num_layers)]

    if model_type.startswith(("qwen2", "qwen3")):
        if window and text.get("use_sliding_window"):
            start = int(text.get("max_window_layers") or 0)
            return [sliding() if i >= start else full() for i in range(num_layers)]
        return [full() for _ in range(num_layers)]

    sliding_types = ("mistral", "mixtral", "phi3", "starcoder2", "gemma")
    max_pos = int(_first(text, "max_position_embeddings", default=0) or 0)
    if window and model_type in sliding_types and (not max_pos or window < max_pos):
        return [sliding() for _ in range(num_layers)]
    if window and model_type not in sliding_types:
        notes.append(
            f"sliding_window={window} ignored: {model_type} does not use it without a layer pattern"
        )
    return [full() for _ in range(num_layers)]


def _moe(
    text: dict[str, Any], model_type: str, num_layers: int, intermediate: int, notes: list[str]
) -> MoEConfig | None:
    experts = _first(
        text, "n_routed_experts", "num_local_experts", "num_experts", "moe_num_experts", "n_experts"
    )
    if not experts or int(experts) <= 1:
        return None
    experts = int(experts)
    top_k = int(
        _first(
            text,
            "num_experts_per_tok",
            "top_k_experts",
            "experts_per_token",
            "moe_top_k",
            "num_experts_per_token",
            default=1,
        )
    )
    if not 1 <= top_k <= experts:
        raise ModelConfigError(
            f"the config routes each token to {top_k} of {experts} experts; "
            "num_experts_per_tok must be between 1 and the number of experts, so fix config.json"
        )
    expert_inter = int(
        _first(
            text,
            "moe_intermediate_size",
            "expert_intermediate_size",
            "moe_ffn_hidden_size",
            default=intermediate,
        )
    )
    shared = int(_first(text, "n_shared_experts", "num_shared_experts", default=0) or 0)
    shared_inter = int(
        _first(
            text,
            "shared_expert_intermediate_size",
            "moe_shared_expert_intermediate_size",
            "share_expert_dim",
            default=0,
        )
        or 0
    )
    if model_type.startswith("llama4"):
        shared, shared_inter = 1, intermediate
        expert_inter = intermediate
    if shared and not shared_inter:
        shared_inter = expert_inter * shared
    if shared_inter and not shared:
        shared = 1
    gate = model_type.startswith(("qwen2_moe", "qwen3_next", "qwen3_5_moe"))

    moe_layers = _moe_layers(text, model_type, num_layers)
    if not moe_layers:
        return None  # expert fields with no MoE layer (defaults of a dense hybrid config)
    return MoEConfig(
        num_experts=experts,
        experts_per_token=top_k,
        expert_intermediate_size=expert_inter,
        num_shared_experts=shared,
        shared_expert_intermediate_size=shared_inter,
        shared_expert_gate=gate and shared_inter > 0,
        router_bias=model_type in ("gpt_oss",)
        or text.get("topk_method") == "noaux_tc"
        or bool(text.get("moe_router_enable_expert_bias")),
        expert_bias=model_type == "gpt_oss",
        latent_size=int(text.get("moe_latent_size") or 0),
        moe_layers=tuple(moe_layers),
    )


def _moe_layers(text: dict[str, Any], model_type: str, num_layers: int) -> list[int]:
    symbols = _layer_symbols(text)
    if symbols is not None:
        return [i for i, ch in enumerate(symbols[:num_layers]) if ch == "E"]
    freq = text.get("moe_layer_freq")
    if isinstance(freq, list):
        return [i for i, f in enumerate(freq[:num_layers]) if int(f)]
    first_dense = int(_first(text, "first_k_dense_replace", "first_k_dense", default=0) or 0)
    mlp_only = set(text.get("mlp_only_layers") or [])
    step = int(_first(text, "interleave_moe_layer_step", "decoder_sparse_step", default=1) or 1)
    if isinstance(freq, int) and freq > 1 and model_type.startswith("deepseek"):
        step = freq
    layers = []
    for i in range(num_layers):
        if i < first_dense or i in mlp_only:
            continue
        if model_type.startswith("llama4"):
            if (i + 1) % step == 0:
                layers.append(i)
        elif (i + 1) % step == 0:
            layers.append(i)
    return layers


def _mlp_layout(
    text: dict[str, Any],
    model_type: str,
    num_layers: int,
    intermediate: int,
    moe: MoEConfig | None,
    layers: list[LayerAttention],
) -> tuple[list[str], list[int]]:
    """Per layer: what kind of MLP it has and the width of its dense MLP."""
    symbols = _layer_symbols(text)
    if symbols is not None:
        kinds, widths = [], []
        for ch in symbols[:num_layers]:
            if ch == "E":
                kinds.append("moe")
                widths.append(0)
            elif ch == "-":
                kinds.append("dense")
                widths.append(intermediate)
            else:
                kinds.append("none")
                widths.append(0)
        return kinds, widths
    moe_set = set(moe.moe_layers) if moe else set()
    dense_width = int(text.get("intermediate_size_mlp") or intermediate)
    kinds, widths = [], []
    for i in range(num_layers):
        if i in moe_set:
            kinds.append("moe")
            # Gemma 4 MoE layers keep a dense MLP beside the experts.
            widths.append(intermediate if model_type.startswith("gemma4") else 0)
        else:
            kinds.append("dense")
            widths.append(dense_width)
    return kinds, widths


def _vision(config: dict[str, Any]) -> VisionConfig | None:
    from cfgexplorer.params import vision_tower_params

    total = 0
    types = []
    for key in _VISION_KEYS:
        sub = config.get(key)
        if isinstance(sub, dict) and sub:
            total += vision_tower_params(sub, config)
            types.append(str(sub.get("model_type") or key))
    if not total:
        return None
    return VisionConfig(model_type="+".join(types), params=total)


def _nemotron_nas(
    config: dict[str, Any],
    text: dict[str, Any],
    model_id: str,
    source: str,
    revision: str | None,
    hf_quant_config: dict[str, Any] | None,
    notes: list[str],
) -> ModelSpec:
    """DeciLM / Nemotron-NAS: every layer has its own attention and FFN shape."""
    blocks = text["block_configs"]
    hidden = int(text["hidden_size"])
    heads = int(text["num_attention_heads"])
    head_dim = int(text.get("head_dim") or hidden // heads)
    layers, kinds, widths = [], [], []
    kv_counts = []
    for block in blocks:
        attn = block.get("attention") or {}
        ffn = block.get("ffn") or {}
        if attn.get("no_op") or attn.get("replace_with_linear"):
            layers.append(LayerAttention(NONE))
        else:
            kv = heads // int(attn.get("n_heads_in_group") or 1)
            kv_counts.append(kv)
            layers.append(LayerAttention(FULL, heads, kv, head_dim, head_dim))
        if ffn.get("no_op") or ffn.get("replace_with_linear"):
            kinds.append("none")
            widths.append(0)
        else:
            kinds.append("dense")
            widths.append(_ffn_mult_to_width(float(ffn.get("ffn_mult") or 1.0), hidden))
    if any(b.get("attention", {}).get("replace_with_linear") for b in blocks):
        notes.append("attention blocks replaced by a linear layer are not counted")
    quant = parse_quantization(text.get("quantization_config"), hf_quant_config)
    return ModelSpec(
        model_id=model_id,
        model_type=str(text.get("model_type")),
        architecture=(config.get("architectures") or ["DeciLMForCausalLM"])[0],
        source=source,
        revision=revision,
        num_layers=len(blocks),
        hidden_size=hidden,
        num_attention_heads=heads,
        num_kv_heads=max(kv_counts) if kv_counts else 0,
        head_dim=head_dim,
        intermediate_size=max(widths) if widths else 0,
        vocab_size=int(text["vocab_size"]),
        tie_word_embeddings=bool(text.get("tie_word_embeddings", False)),
        max_position_embeddings=int(text.get("max_position_embeddings") or 4096),
        dtype=normalise_dtype(text.get("torch_dtype")),
        layers=tuple(layers),
        mlp_kinds=tuple(kinds),
        mlp_intermediate=tuple(widths),
        quant=quant,
        notes=tuple(notes),
    )


def _ffn_mult_to_width(ffn_mult: float, hidden: int) -> int:
    """DeciLM's FFN width: 2/3 of mult x hidden, rounded up to a multiple of 256."""
    width = int(2 * ffn_mult * hidden / 3)
    return -(-width // 256) * 256


def check_supported(spec: ModelSpec) -> None:
    """Raise if the spec has nothing the planner can model."""
    if not spec.layers:
        raise UnsupportedArchitectureError(
            f"{spec.model_id} ({spec.architecture}) has no decoder layers the planner understands"
        )
