"""ModelSpec normalisation: shapes, attention kinds, MoE and quantization from real configs."""

from __future__ import annotations

import re

import pytest

from cfgexplorer import load_model
from cfgexplorer.errors import ModelConfigError, UnsupportedArchitectureError
from cfgexplorer.spec import CHUNKED, FULL, LINEAR, MAMBA, MLA, NONE, SLIDING, spec_from_config


def test_qwen3_32b_shape_matches_its_config():
    spec = load_model("Qwen/Qwen3-32B")
    assert spec.num_layers == 64
    assert spec.num_attention_heads == 64
    assert spec.num_kv_heads == 8
    assert spec.head_dim == 128
    assert spec.hidden_size == 5120
    assert spec.vocab_size == 151936
    assert spec.attention_kinds == {FULL: 64}
    assert spec.source == "catalog"
    assert spec.params_total == 32_762_123_264


def test_catalog_ids_match_case_insensitively():
    assert load_model("qwen/qwen3-32b").model_id == "Qwen/Qwen3-32B"
    spec = load_model("redhatai/llama-3.3-70b-instruct-fp8-dynamic")
    assert spec.model_id == "RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic"


def test_explicit_head_dim_wins_over_hidden_divided_by_heads():
    spec = load_model("Qwen/Qwen3-0.6B")
    assert spec.hidden_size // spec.num_attention_heads == 64
    assert spec.head_dim == 128


def test_head_dim_falls_back_to_hidden_over_heads():
    spec = load_model("meta-llama/Llama-3.1-8B-Instruct")
    assert spec.head_dim == 4096 // 32


def test_gpt_oss_alternates_128_token_windows_with_full_layers():
    spec = load_model("openai/gpt-oss-20b")
    kinds = [la.kind for la in spec.layers]
    assert kinds[:4] == [SLIDING, FULL, SLIDING, FULL]
    assert spec.attention_kinds == {SLIDING: 12, FULL: 12}
    assert {la.window for la in spec.layers if la.kind == SLIDING} == {128}
    assert spec.head_dim == 64


def test_gemma3_has_five_local_layers_per_global_layer():
    spec = load_model("google/gemma-3-27b-it")
    kinds = [la.kind for la in spec.layers]
    assert kinds[:6] == [SLIDING] * 5 + [FULL]
    assert spec.attention_kinds == {SLIDING: 52, FULL: 10}
    assert {la.window for la in spec.layers if la.kind == SLIDING} == {1024}


def test_gemma2_alternates_without_a_layer_list():
    spec = load_model("google/gemma-2-9b-it")
    assert [la.kind for la in spec.layers[:2]] == [SLIDING, FULL]
    assert spec.attention_kinds == {SLIDING: 21, FULL: 21}


def test_llama4_scout_rope_layers_are_chunked_and_nope_layers_full():
    spec = load_model("meta-llama/Llama-4-Scout-17B-16E-Instruct")
    kinds = [la.kind for la in spec.layers]
    assert kinds[:4] == [CHUNKED, CHUNKED, CHUNKED, FULL]
    assert spec.attention_kinds == {CHUNKED: 36, FULL: 12}
    assert {la.window for la in spec.layers if la.kind == CHUNKED} == {8192}
    assert spec.moe.num_experts == 16
    assert spec.moe.experts_per_token == 1
    assert len(spec.moe.moe_layers) == 48


def test_llama4_maverick_interleaves_moe_every_second_layer():
    spec = load_model("meta-llama/Llama-4-Maverick-17B-128E-Instruct")
    assert len(spec.moe.moe_layers) == 24
    assert spec.moe.moe_layers[:2] == (1, 3)


def test_qwen3_next_has_three_linear_layers_per_full_layer():
    spec = load_model("Qwen/Qwen3-Next-80B-A3B-Thinking")
    kinds = [la.kind for la in spec.layers]
    assert kinds[:4] == [LINEAR, LINEAR, LINEAR, FULL]
    assert spec.attention_kinds == {LINEAR: 36, FULL: 12}
    linear = spec.layers[0]
    # conv state: (2 x 16 x 128 + 32 x 128) channels x (kernel 4 - 1); recurrent 32 x 128 x 128
    assert linear.conv_state_elems == (2 * 16 * 128 + 32 * 128) * 3
    assert linear.ssm_state_elems == 32 * 128 * 128
    assert spec.moe.shared_expert_intermediate_size == 512
    assert spec.num_mtp_layers == 1


def test_qwen35_nested_text_config_with_layer_types():
    spec = load_model("Qwen/Qwen3.5-27B")
    assert spec.attention_kinds == {LINEAR: 48, FULL: 16}
    assert spec.hidden_size == 5120
    assert spec.vision is not None
    assert spec.vision.params > 0
    assert spec.mixer_dims["ssm_state_bytes"] == 4  # mamba_ssm_dtype float32


def test_nemotron_h_reads_the_hybrid_override_pattern():
    spec = load_model("nvidia/Nemotron-H-56B-Base-8K")
    kinds = spec.attention_kinds
    assert kinds[MAMBA] == 54
    assert kinds[FULL] == 10
    assert kinds[NONE] == 54  # MLP-only blocks
    mamba = next(la for la in spec.layers if la.kind == MAMBA)
    inner = 256 * 64
    assert mamba.conv_state_elems == (inner + 2 * 8 * 256) * 3
    assert mamba.ssm_state_elems == 256 * 64 * 256


def test_nemotron_ultra_depth_comes_from_layers_block_type():
    spec = load_model("nvidia/NVIDIA-Nemotron-3-Ultra-550B-A55B-BF16")
    assert spec.num_layers == 108
    assert spec.attention_kinds[MAMBA] == 48
    assert spec.attention_kinds[FULL] == 12


def test_deepseek_v3_uses_mla_and_three_dense_layers():
    spec = load_model("deepseek-ai/DeepSeek-V3")
    assert spec.mla.kv_lora_rank == 512
    assert spec.mla.qk_rope_head_dim == 64
    assert spec.mla.q_lora_rank == 1536
    assert spec.attention_kinds == {MLA: 61}
    assert spec.moe.num_experts == 256
    assert spec.moe.num_shared_experts == 1
    assert len(spec.moe.moe_layers) == 58
    assert spec.mlp_kinds[:4] == ("dense", "dense", "dense", "moe")
    assert spec.quant.method == "fp8-block"


def test_qwen25_sliding_window_is_ignored_when_disabled():
    spec = load_model("Qwen/Qwen2.5-7B-Instruct")
    assert spec.attention_kinds == {FULL: 28}


def test_multimodal_model_serves_its_nested_text_config():
    spec = load_model("Qwen/Qwen3-VL-8B-Instruct")
    assert spec.num_layers == 36
    assert spec.hidden_size == 4096
    assert spec.num_kv_heads == 8
    assert spec.vision is not None
    assert 0.3e9 < spec.vision.params < 1.0e9


def test_gpt_oss_quantizes_only_experts_in_mxfp4():
    spec = load_model("openai/gpt-oss-20b")
    assert spec.quant.method == "mxfp4"
    assert spec.quant.quantized_kinds == ("experts",)
    assert spec.quant.ignores(("model.layers.0.self_attn.q_proj",))


def test_kimi_k25_quantization_inside_text_config_targets_experts():
    spec = load_model("moonshotai/Kimi-K2.5")
    assert spec.quant.method == "compressed-tensors"
    assert spec.quant.weight_bits == 4
    assert spec.quant.group_size == 32
    assert spec.quant.ignores(("model.layers.3.self_attn.q_a_proj",))
    assert spec.quant.ignores(("model.layers.0.mlp.gate_proj",))
    assert not spec.quant.ignores(("model.layers.3.mlp.experts.0.gate_proj",))


def test_modelopt_nvfp4_is_read_from_hf_quant_config():
    spec = load_model("nvidia/DeepSeek-V3.1-NVFP4")
    assert spec.quant.method == "nvfp4"
    assert spec.quant.kv_cache_dtype == "fp8"
    assert spec.quant.group_size == 16


def test_gptq_and_awq_int4_schemes():
    gptq = load_model("xmadai/Mistral-Small-Instruct-2409-xMADai-INT4")
    assert gptq.quant.method == "gptq"
    assert gptq.quant.weight_bits == 4
    assert gptq.quant.zero_point  # sym=false
    awq = load_model("LDCC/Qwen2.5-72B-Instruct-ko-AWQ")
    assert awq.quant.method == "awq"
    assert awq.quant.group_size == 128
    # 4-bit weights plus a 16-bit scale and a 4-bit zero point per 128 weights
    assert awq.quant.bytes_per_weight(8192, 8192) == pytest.approx(0.5 + 2.5 / 128)


def test_unknown_quantization_method_is_noted_and_sized_at_checkpoint_dtype():
    config = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": 256,
        "intermediate_size": 512,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "vocab_size": 1000,
        "quantization_config": {"quant_method": "hqq-xyz"},
    }
    spec = spec_from_config(config, model_id="local/tiny", source="local")
    assert not spec.quant.known
    assert any("hqq-xyz" in n for n in spec.notes)
    assert spec.weight_bytes == spec.params_total * 2


def test_missing_required_fields_are_named():
    with pytest.raises(ModelConfigError, match="hidden_size"):
        spec_from_config(
            {
                "model_type": "llama",
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "vocab_size": 10,
            },
            model_id="x/y",
            source="local",
        )
    with pytest.raises(ModelConfigError, match="num_hidden_layers"):
        spec_from_config(
            {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "vocab_size": 10},
            model_id="x/y",
            source="local",
        )


def test_zero_sized_fields_are_rejected():
    with pytest.raises(ModelConfigError, match="must be > 0"):
        spec_from_config(
            {
                "model_type": "llama",
                "hidden_size": 64,
                "num_attention_heads": 4,
                "num_hidden_layers": 0,
                "vocab_size": 10,
            },
            model_id="x/y",
            source="local",
        )


def test_heads_that_do_not_divide_into_kv_heads_are_refused():
    config = {
        "model_type": "qwen3",
        "hidden_size": 4096,
        "num_attention_heads": 32,
        "num_key_value_heads": 7,
        "num_hidden_layers": 2,
        "intermediate_size": 12288,
        "vocab_size": 151936,
    }
    with pytest.raises(ModelConfigError, match="32 attention heads and 7 KV heads"):
        spec_from_config(config, model_id="x/y", source="local")
    config["num_key_value_heads"] = 8
    assert spec_from_config(config, model_id="x/y", source="local").num_kv_heads == 8


def _granite4_config(**changes):
    """A Granite-4.0-H-style hybrid: Mamba-2 layers named in layer_types, 1 in 5 attention."""
    config = {
        "architectures": ["GraniteMoeHybridForCausalLM"],
        "model_type": "granitemoehybrid",
        "hidden_size": 1536,
        "num_hidden_layers": 10,
        "num_attention_heads": 12,
        "num_key_value_heads": 4,
        "intermediate_size": 8192,
        "shared_intermediate_size": 8192,
        "num_local_experts": 0,
        "num_experts_per_tok": 0,
        "vocab_size": 100352,
        "max_position_embeddings": 131072,
        "torch_dtype": "bfloat16",
        "layer_types": (["mamba"] * 4 + ["attention"]) * 2,
        "mamba_d_state": 128,
        "mamba_d_conv": 4,
        "mamba_expand": 2,
        "mamba_n_heads": 48,
        "mamba_d_head": 64,
        "mamba_n_groups": 1,
        "tie_word_embeddings": True,
    }
    config.update(changes)
    return config


def test_granite4_mamba_layers_named_in_layer_types_are_sized():
    spec = spec_from_config(_granite4_config(), model_id="x/granite", source="local")
    assert spec.attention_kinds == {"mamba": 8, "full": 2}
    # Mamba-2 state per layer: conv (3072 + 2 x 128) x 3 and SSM 48 heads x 64 x 128.
    mamba = next(la for la in spec.layers if la.kind == "mamba")
    assert mamba.conv_state_elems == (48 * 64 + 2 * 128) * 3
    assert mamba.ssm_state_elems == 48 * 64 * 128
    assert spec.mixer_dims["mamba_inner"] == 48 * 64
    assert spec.params.total > 0


def test_mamba_layers_without_mamba_sizes_are_one_sentence():
    from dataclasses import replace

    spec = spec_from_config(_granite4_config(), model_id="x/granite", source="local")
    bare = replace(spec, mixer_dims={})  # a layout the parser could not size
    with pytest.raises(ModelConfigError, match="marks layers as Mamba but gives no Mamba sizes"):
        bare.params  # noqa: B018 - the property raises


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [("M-*Q?", "symbols '?', 'Q'; only M (Mamba)"), ("M-*", "pattern of 3 layers but")],
)
def test_malformed_hybrid_override_pattern_is_one_sentence(pattern, fragment):
    config = {
        "model_type": "nemotron_h",
        "hidden_size": 1024,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "num_hidden_layers": 6 if len(pattern) != 6 else 5,
        "vocab_size": 1000,
        "intermediate_size": 2048,
        "hybrid_override_pattern": pattern,
        "mamba_num_heads": 16,
        "mamba_head_dim": 64,
        "ssm_state_size": 128,
    }
    with pytest.raises(ModelConfigError, match=re.escape(fragment)):
        spec_from_config(config, model_id="x/nh", source="local")


@pytest.mark.parametrize("model_type", ["mamba2", "jamba", "falcon_h1", "falcon_mamba"])
def test_state_space_layouts_not_read_yet_are_refused_not_sized_as_attention(model_type):
    config = {
        "model_type": model_type,
        "hidden_size": 2560,
        "num_hidden_layers": 8,
        "num_attention_heads": 32,
        "vocab_size": 50288,
    }
    with pytest.raises(UnsupportedArchitectureError, match=f"is a {model_type} model"):
        spec_from_config(config, model_id="x/ssm", source="local")


def test_unknown_layer_types_are_taken_as_full_attention_with_a_note():
    config = {
        "model_type": "qwen3",
        "hidden_size": 1024,
        "num_hidden_layers": 2,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "vocab_size": 1000,
        "intermediate_size": 2048,
        "layer_types": ["full_attention", "weird_attention"],
    }
    spec = spec_from_config(config, model_id="x/y", source="local")
    assert spec.attention_kinds == {"full": 2}
    assert any("'weird_attention' not known to the planner" in n for n in spec.notes)


@pytest.mark.parametrize(
    ("rope", "expected"),
    [
        ({"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 8192}, 32768),
        ({"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 2048.0}, 8192),
        ({"type": "linear", "factor": 2.0}, 16384),
        ({"rope_type": "llama3", "factor": 8.0, "original_max_position_embeddings": 8192}, 8192),
        ({"rope_type": "default"}, 8192),
    ],
)
def test_rope_scaling_sets_the_context_limit_as_vllm_derives_it(rope, expected):
    config = {
        "model_type": "qwen2",
        "hidden_size": 1024,
        "num_hidden_layers": 2,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "vocab_size": 1000,
        "intermediate_size": 2048,
        "max_position_embeddings": 8192,
        "rope_scaling": rope,
    }
    spec = spec_from_config(config, model_id="x/y", source="local")
    assert spec.max_position_embeddings == expected
    assert any("RoPE scaling" in n for n in spec.notes) == (expected != 8192)


def _llama(**changes):
    config = {
        "model_type": "llama",
        "hidden_size": 1024,
        "num_hidden_layers": 2,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "vocab_size": 1000,
        "intermediate_size": 2048,
        "max_position_embeddings": 4096,
    }
    config.update(changes)
    return config


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"max_position_embeddings": None}, "sets max_position_embeddings to null"),
        ({"max_position_embeddings": 0}, "has max_position_embeddings=0; it must be > 0"),
        ({"quantization_config": "fp8"}, "quantization_config is 'fp8', not an object"),
        (
            {"quantization_config": {"quant_method": "gptq", "bits": 0, "group_size": 128}},
            "gptq quantization_config has bits=0",
        ),
        (
            {
                "quantization_config": {
                    "quant_method": "compressed-tensors",
                    "config_groups": {"g": {"weights": None}},
                }
            },
            "a config group without its weights scheme",
        ),
        (
            {"model_type": "mixtral", "num_local_experts": 8, "num_experts_per_tok": 16},
            "routes each token to 16 of 8 experts",
        ),
    ],
)
def test_broken_fields_are_one_sentence_not_python_internals(changes, fragment):
    with pytest.raises(ModelConfigError, match=re.escape(fragment)):
        spec_from_config(_llama(**changes), model_id="x/y", source="local")
