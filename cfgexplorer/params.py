"""Parameter counts and weight bytes, module by module, from a ModelSpec.

Counts follow the module shapes of the reference implementations (Hugging
Face and vLLM): embeddings, attention (MLA low-rank projections, q/k norms,
biases, sinks, output gates), dense MLPs, MoE experts + router + shared
experts, linear-attention and Mamba mixers, norms, the LM head unless tied,
multi-token-prediction layers and vision towers.

Bytes per module come from the quantization scheme (:mod:`cfgexplorer.quant`):
quantized linear layers at their stored width plus scales, everything else
at the model dtype. Per-layer figures are kept so that pipeline stages and
tensor-parallel shards can be sized without recounting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cfgexplorer.errors import ModelConfigError
from cfgexplorer.quant import QuantScheme

if TYPE_CHECKING:
    from cfgexplorer.spec import LayerAttention, ModelSpec


@dataclass(frozen=True)
class Linear:
    """One weight matrix (or a stack of ``count`` identical ones)."""

    kind: str  # module kind, see quant.ALL_KINDS
    rows: int  # output features
    cols: int  # input features
    count: int = 1
    tp: str = "column"  # "column", "row", "replicated", "vocab", "expert"
    width_axis: str = "rows"  # for experts: which axis is the expert width (split by TP)


@dataclass
class LayerParams:
    """Parameters of one decoder layer, split the way sharding needs them."""

    linears: list[Linear] = field(default_factory=list)
    small: dict[str, int] = field(default_factory=dict)  # norms, biases, convs: kind -> count

    def total(self) -> int:
        return sum(m.rows * m.cols * m.count for m in self.linears) + sum(self.small.values())


@dataclass
class ParamBreakdown:
    """Counts and bytes of a whole model.

    ``layer_bytes`` and ``layer_params`` have one entry per decoder layer;
    ``embed_*`` and ``head_*`` are the first and last pipeline stage's extras.
    """

    total: int
    active: int
    weight_bytes: int
    stored_elements: int
    by_module: dict[str, int]
    bytes_by_module: dict[str, int]
    layers: list[LayerParams]
    layer_bytes: list[int]
    embed_params: int
    head_params: int
    final_norm_params: int
    mtp_params: int
    vision_params: int
    notes: list[str] = field(default_factory=list)


def is_quantized(quant: QuantScheme, kind: str, layer: int | None, prefix: str) -> bool:
    if not quant.is_quantized or kind not in quant.quantized_kinds:
        return False
    return not quant.ignores(_representative_names(kind, layer, prefix))


_KIND_NAMES = {
    "attn": (
        "self_attn.q_proj",
        "self_attn.qkv_proj",
        "self_attn.kv_a_proj_with_mqa",
        "self_attn.q_a_proj",
        "self_attn.o_proj",
        "attn.q_proj",
    ),
    "mlp": ("mlp.gate_proj", "mlp.down_proj", "mlp.up_proj", "feed_forward.gate_proj", "mlp.fc1"),
    "experts": (
        "mlp.experts.0.gate_proj",
        "mlp.experts.0.down_proj",
        "block_sparse_moe.experts.0.w1",
        "feed_forward.experts.gate_up_proj",
        "mlp.experts.gate_up_proj",
        "mixer.experts.0.up_proj",
    ),
    "shared_experts": (
        "mlp.shared_experts.gate_proj",
        "mlp.shared_expert.gate_proj",
        "feed_forward.shared_expert.gate_proj",
        "mixer.shared_experts.up_proj",
    ),
    "linear_attn": ("linear_attn.in_proj_qkvz", "linear_attn.out_proj"),
    "mamba": ("mixer.in_proj", "mixer.out_proj"),
    "router": ("mlp.gate", "mlp.router", "feed_forward.router"),
}


def _representative_names(kind: str, layer: int | None, prefix: str) -> tuple[str, ...]:
    if kind == "lm_head":
        return ("lm_head",)
    if kind == "vision":
        return ("vision_tower.x", "model.vision_tower.x", "visual.x", "vision_model.x")
    names = []
    for suffix in _KIND_NAMES.get(kind, ()):
        for root in (
            prefix,
            "model.layers",
            "model.language_model.layers",
            "language_model.model.layers",
        ):
            names.append(f"{root}.{layer}.{suffix}")
    return tuple(names)


def attention_linears(spec: ModelSpec, la: LayerAttention) -> tuple[list[Linear], dict[str, int]]:
    """The attention projections of one layer, and its small tensors."""
    from cfgexplorer.spec import CHUNKED, FULL, LINEAR, MAMBA, MLA, NONE, SLIDING

    h = spec.hidden_size
    small: dict[str, int] = {}
    linears: list[Linear] = []
    if spec.mixer_dims.get("o_lora_rank") and la.kind != NONE:
        return _deepseek_v4_attention(spec, la)
    if la.kind == MLA and spec.mla:
        m = spec.mla
        heads = la.num_heads
        qk_dim = m.qk_nope_head_dim + m.qk_rope_head_dim
        if m.q_lora_rank:
            linears.append(Linear("attn", m.q_lora_rank, h, tp="replicated"))
            linears.append(Linear("attn", heads * qk_dim, m.q_lora_rank))
            small["norm"] = small.get("norm", 0) + m.q_lora_rank
        else:
            linears.append(Linear("attn", heads * qk_dim, h))
        linears.append(Linear("attn", m.kv_lora_rank + m.qk_rope_head_dim, h, tp="replicated"))
        small["norm"] = small.get("norm", 0) + m.kv_lora_rank
        linears.append(Linear("attn", heads * (m.qk_nope_head_dim + m.v_head_dim), m.kv_lora_rank))
        linears.append(Linear("attn", h, heads * m.v_head_dim, tp="row"))
        if la.extra_bytes_per_token:
            # Sparse-attention indexer: its own query/key projections and weights.
            idx_dim = la.extra_bytes_per_token - 4 * max(1, (la.extra_bytes_per_token - 4) // 128)
            idx_heads = 64
            linears.append(Linear("attn", idx_heads * idx_dim, m.q_lora_rank or h, tp="replicated"))
            linears.append(Linear("attn", idx_dim, h, tp="replicated"))
            linears.append(Linear("attn", idx_heads, h, tp="replicated"))
            small["norm"] = small.get("norm", 0) + 2 * idx_dim
        return linears, small
    if la.kind in (FULL, SLIDING, CHUNKED):
        q_out = la.num_heads * la.head_dim * (2 if spec.attention_output_gate else 1)
        kv_k = la.num_kv_heads * la.head_dim
        kv_v = la.num_kv_heads * la.v_head_dim
        linears.append(Linear("attn", q_out, h))
        linears.append(Linear("attn", kv_k, h))
        linears.append(Linear("attn", kv_v, h))
        linears.append(Linear("attn", h, la.num_heads * la.v_head_dim, tp="row"))
        if spec.attention_bias:
            small["bias"] = q_out + kv_k + kv_v
        if spec.o_proj_bias:
            small["bias_replicated"] = h
        if spec.qk_norm:
            small["norm"] = 2 * la.head_dim
        if spec.attention_sinks:
            small["bias"] = small.get("bias", 0) + la.num_heads
        return linears, small
    if la.kind == LINEAR:
        # Gated delta net: fused q/k/v/z and b/a projections, a depthwise conv, out_proj.
        d = spec.mixer_dims
        key_dim = d["linear_num_key_heads"] * d["linear_key_head_dim"]
        v_heads = d["linear_num_value_heads"]
        value_dim = v_heads * d["linear_value_head_dim"]
        conv_dim = 2 * key_dim + value_dim
        linears.append(Linear("linear_attn", 2 * key_dim + 2 * value_dim, h))
        linears.append(Linear("linear_attn", 2 * v_heads, h))
        linears.append(Linear("linear_attn", h, value_dim, tp="row"))
        small["conv"] = conv_dim * d["linear_conv_kernel"]
        small["state_params"] = 2 * v_heads + d["linear_value_head_dim"]
        return linears, small
    if la.kind == MAMBA:
        d = spec.mixer_dims
        if "mamba_inner" not in d:
            raise ModelConfigError(
                f"the config of {spec.model_id} marks layers as Mamba but gives no Mamba sizes "
                "(mamba_d_state or ssm_state_size, mamba_n_heads, mamba_d_head); fix config.json"
            )
        inner, groups_state = d["mamba_inner"], d["mamba_groups_state"]
        nheads, kernel = d["mamba_heads"], d["mamba_kernel"]
        linears.append(Linear("mamba", 2 * inner + 2 * groups_state + nheads, h))
        linears.append(Linear("mamba", h, inner, tp="row"))
        conv_dim = inner + 2 * groups_state
        small["conv"] = conv_dim * kernel + conv_dim
        small["state_params"] = 3 * nheads + inner
        return linears, small
    return linears, small


def _deepseek_v4_attention(
    spec: ModelSpec, la: LayerAttention
) -> tuple[list[Linear], dict[str, int]]:
    """DeepSeek V4 attention: q low-rank, one latent KV head, grouped low-rank output.

    Not modelled: the per-layer KV compressor and sparse indexer weights.
    """
    h = spec.hidden_size
    d = spec.mixer_dims
    heads, head_dim = spec.num_attention_heads, spec.head_dim
    q_lora, o_lora, groups = d["q_lora_rank"], d["o_lora_rank"], d["o_groups"]
    linears = [
        Linear("attn", q_lora, h, tp="replicated"),
        Linear("attn", heads * head_dim, q_lora),
        Linear("attn", head_dim, h, tp="replicated"),
        Linear("attn", o_lora, heads * head_dim // groups, count=groups),
        Linear("attn", h, groups * o_lora, tp="row"),
    ]
    return linears, {"norm": q_lora + head_dim}


def mlp_linears(spec: ModelSpec, layer: int) -> tuple[list[Linear], dict[str, int], int]:
    """MLP / MoE weights of one layer, its small tensors, and its active expert params."""
    h = spec.hidden_size
    kind = spec.mlp_kinds[layer]
    width = spec.mlp_intermediate[layer]
    linears: list[Linear] = []
    small: dict[str, int] = {}
    inactive = 0
    n_mats = 3 if spec.mlp_gated else 2
    if width:
        linears.append(Linear("mlp", width * (n_mats - 1), h))
        linears.append(Linear("mlp", h, width, tp="row"))
        if spec.mlp_bias:
            small["bias"] = width * (n_mats - 1)
            small["bias_replicated"] = h
    if kind == "moe" and spec.moe:
        moe = spec.moe
        ei = moe.expert_intermediate_size
        linears.append(Linear("router", moe.num_experts, h, tp="replicated"))
        if moe.router_bias:
            small["router_bias"] = moe.num_experts
        eh = moe.latent_size or h
        if moe.latent_size:
            # Projections into and out of the experts' latent space.
            linears.append(Linear("mlp", eh, h, tp="replicated"))
            linears.append(Linear("mlp", h, eh, tp="replicated"))
        linears.append(Linear("experts", ei * (n_mats - 1), eh, count=moe.num_experts, tp="expert"))
        linears.append(
            Linear("experts", eh, ei, count=moe.num_experts, tp="expert", width_axis="cols")
        )
        if moe.expert_bias:
            small["expert_bias"] = moe.num_experts * (ei * (n_mats - 1) + h)
        per_expert = n_mats * eh * ei
        inactive = (moe.num_experts - moe.experts_per_token) * per_expert
        if moe.expert_bias:
            inactive += (moe.num_experts - moe.experts_per_token) * (ei * (n_mats - 1) + h)
        if moe.shared_expert_intermediate_size:
            si = moe.shared_expert_intermediate_size
            linears.append(Linear("shared_experts", si * (n_mats - 1), h))
            linears.append(Linear("shared_experts", h, si, tp="row"))
            if moe.shared_expert_gate:
                small["router"] = h
    return linears, small, inactive


def layer_params(spec: ModelSpec, index: int) -> tuple[LayerParams, int]:
    """Parameters of decoder layer ``index`` and how many of them are inactive per token."""
    la = spec.layers[index]
    attn, attn_small = attention_linears(spec, la)
    mlp, mlp_small, inactive = mlp_linears(spec, index)
    small: dict[str, int] = {}
    for part in (attn_small, mlp_small):
        for k, v in part.items():
            small[k] = small.get(k, 0) + v
    norm = spec.norms_per_layer * spec.hidden_size * (2 if spec.norm_has_bias else 1)
    small["norm"] = small.get("norm", 0) + norm
    return LayerParams(linears=attn + mlp, small=small), inactive


def linear_bytes(spec: ModelSpec, quant: QuantScheme, lin: Linear, quantized: bool) -> float:
    """Bytes of one (stack of) weight matrices, quantized or at the model dtype."""
    n = lin.rows * lin.cols * lin.count
    if quantized:
        return n * quant.bytes_per_weight(lin.rows, lin.cols)
    return float(n * spec.dtype_bytes)


def count_params(spec: ModelSpec, quant: QuantScheme | None = None) -> ParamBreakdown:
    """Count every parameter of ``spec`` and size it in bytes.

    Parameters
    ----------
    spec
        The model.
    quant
        Scheme to size with; defaults to the checkpoint's own. Passing the
        runtime FP8 scheme sizes ``--quantization fp8``.
    """
    quant = quant or spec.quant
    h, v = spec.hidden_size, spec.vocab_size
    by_module: dict[str, int] = {}
    bytes_by: dict[str, float] = {}
    notes: list[str] = []

    def add(kind: str, count: int, nbytes: float) -> None:
        by_module[kind] = by_module.get(kind, 0) + count
        bytes_by[kind] = bytes_by.get(kind, 0.0) + nbytes

    layers: list[LayerParams] = []
    layer_bytes: list[int] = []
    inactive_total = 0
    stored_ratio = quant.stored_elements_per_weight()
    stored = 0.0
    for i in range(spec.num_layers):
        lp, inactive = layer_params(spec, i)
        inactive_total += inactive
        total_b = 0.0
        quantized = {
            k: is_quantized(quant, k, i, "model.layers") for k in {m.kind for m in lp.linears}
        }
        for lin in lp.linears:
            nb = linear_bytes(spec, quant, lin, quantized[lin.kind])
            n = lin.rows * lin.cols * lin.count
            add(lin.kind, n, nb)
            total_b += nb
            stored += n * (stored_ratio if quantized[lin.kind] else 1)
        for kind, count in lp.small.items():
            key = "norm" if kind == "norm" else ("router" if "router" in kind else "bias_and_state")
            nb = count * (4 if kind == "state_params" else spec.dtype_bytes)
            add(key, count, nb)
            total_b += nb
            stored += count
        layers.append(lp)
        layer_bytes.append(round(total_b))

    embed = v * h
    add("embed", embed, embed * spec.dtype_bytes)
    final_norm = h * (2 if spec.norm_has_bias else 1)
    add("norm", final_norm, final_norm * spec.dtype_bytes)
    head = 0
    if spec.checkpoint_stores_tied_head and spec.tie_word_embeddings:
        # Counted in the checkpoint total; vLLM ties it to the embedding and loads it once.
        by_module["lm_head_tied_copy"] = v * h
        total_extra = v * h
    else:
        total_extra = 0
    if not spec.tie_word_embeddings:
        head = v * h + (v if spec.lm_head_bias else 0)
        head_lin = Linear("lm_head", v, h)
        add(
            "lm_head",
            head,
            linear_bytes(spec, quant, head_lin, is_quantized(quant, "lm_head", None, "")),
        )
    stored += embed + final_norm + head

    mtp = _mtp_params(spec)
    if mtp:
        by_module["mtp"] = mtp
        notes.append(
            f"{spec.num_mtp_layers or 1} multi-token-prediction layer(s) counted in the checkpoint "
            "total but not loaded by vLLM unless speculative decoding uses them"
        )
    vision = spec.vision.params if spec.vision else 0
    if vision:
        add("vision", vision, vision * spec.dtype_bytes)

    layer_total = sum(lp.total() for lp in layers)
    total = layer_total + embed + final_norm + head + mtp + vision + total_extra
    loaded_bytes = sum(bytes_by.values())
    active = total - inactive_total - mtp - vision - total_extra
    return ParamBreakdown(
        total=int(total),
        active=int(active),
        weight_bytes=round(loaded_bytes),
        stored_elements=round(stored + mtp + vision + total_extra),
        by_module={k: int(c) for k, c in sorted(by_module.items(), key=lambda kv: -kv[1])},
        bytes_by_module={k: round(b) for k, b in bytes_by.items()},
        layers=layers,
        layer_bytes=layer_bytes,
        embed_params=embed,
        head_params=head,
        final_norm_params=final_norm,
        mtp_params=mtp,
        vision_params=vision,
        notes=notes,
    )


def _mtp_params(spec: ModelSpec) -> int:
    """Parameters of multi-token-prediction layers stored in the checkpoint."""
    n = spec.num_mtp_layers
    if not n:
        return 0
    h, v = spec.hidden_size, spec.vocab_size
    last = spec.num_layers - 1
    lp, _ = layer_params(spec, last)
    block = lp.total()
    # enorm + hnorm + eh_proj (2h -> h) + final norm of the MTP head.
    glue = 2 * h + 2 * h * h + h
    if spec.model_type.startswith("deepseek_v4"):
        glue += v * h  # V4 keeps one vocabulary-sized matrix of its own in the MTP block
    elif spec.model_type.startswith(("deepseek", "kimi", "glm")):
        # DeepSeek-style checkpoints store their own copy of the embedding and head.
        glue += 2 * v * h
    return n * (block + glue)


def vision_tower_params(vcfg: dict[str, Any], top: dict[str, Any]) -> int:
    """Parameters of a vision or audio tower plus its projector into the text model."""
    from cfgexplorer.spec import text_config_of

    text_hidden = int(text_config_of(top).get("hidden_size") or 0)
    mtype = str(vcfg.get("model_type") or "")
    h = int(vcfg.get("hidden_size") or vcfg.get("embed_dim") or 0)
    if not h:
        return 0
    inter = int(vcfg.get("intermediate_size") or 4 * h)
    depth = int(vcfg.get("num_hidden_layers") or vcfg.get("depth") or 0)
    patch = int(vcfg.get("patch_size") or 14)
    channels = int(vcfg.get("num_channels") or vcfg.get("in_channels") or vcfg.get("in_chans") or 3)

    if "llama4" in mtype:
        image = int(vcfg.get("image_size") or 336)
        per_layer = 4 * (h * h + h) + (h * inter + inter) + (inter * h + h) + 4 * h
        embed = channels * patch * patch * h + h + ((image // patch) ** 2 + 1) * h + 4 * h
        ratio = float(vcfg.get("pixel_shuffle_ratio") or 0.5)
        adapter_in = int(h / (ratio * ratio))
        proj_in = int(vcfg.get("projector_input_dim") or 4096)
        proj_out = int(vcfg.get("projector_output_dim") or 4096)
        adapter = adapter_in * proj_in + proj_in * proj_out
        projector = int(vcfg.get("vision_output_dim") or proj_out) * text_hidden
        return depth * per_layer + embed + adapter + projector

    if mtype == "pixtral":
        per_layer = 4 * h * h + 3 * h * inter + 2 * h
        embed = channels * patch * patch * h + h
        merge = int(top.get("spatial_merge_size") or 2)
        projector = h + merge * merge * h * h + h * text_hidden + text_hidden * text_hidden
        return depth * per_layer + embed + projector

    if mtype.startswith(("qwen3_vl", "qwen3_5", "qwen2_5_vl", "qwen3_omni")) or "depth" in vcfg:
        temporal = int(vcfg.get("temporal_patch_size") or 2)
        merge = int(vcfg.get("spatial_merge_size") or 2)
        out_hidden = int(vcfg.get("out_hidden_size") or text_hidden)
        gated = "qwen2_5" in mtype
        mlp = (3 * h * inter + 2 * inter + h) if gated else (2 * h * inter + inter + h)
        per_layer = (h * 3 * h + 3 * h) + (h * h + h) + mlp + 4 * h
        embed = channels * temporal * patch * patch * h + (0 if gated else h)
        pos = int(vcfg.get("num_position_embeddings") or 0) * h
        hm = h * merge * merge
        merger = 2 * h + hm * hm + hm + hm * out_hidden + out_hidden
        deep = len(vcfg.get("deepstack_visual_indexes") or [])
        deep_mergers = deep * (2 * hm + hm * hm + hm + hm * out_hidden + out_hidden)
        return depth * per_layer + embed + pos + merger + deep_mergers

    # SigLIP / CLIP-style ViT (Gemma 3, many others): biased attention and MLP.
    image = int(vcfg.get("image_size") or 896)
    per_layer = 4 * (h * h + h) + (h * inter + inter) + (inter * h + h) + 4 * h
    embed = channels * patch * patch * h + h + (image // patch) ** 2 * h
    post = 2 * h
    projector = h * text_hidden + h if text_hidden else 0
    if mtype.startswith("gemma4") or "audio" in mtype:
        projector = h * text_hidden
    return depth * per_layer + embed + post + projector
