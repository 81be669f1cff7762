"""Parameter counts and weight bytes against published totals and vLLM's own figures."""

from __future__ import annotations

import pytest

from cfgexplorer import catalog, load_model
from cfgexplorer.params import count_params
from cfgexplorer.quant import runtime_fp8

GIB = 2**30
PUBLISHED = [e for e in catalog.search() if e.published_params]

# The Hub's total for these checkpoints counts stored elements (FP4 packed two per
# byte, scales included), per the notes in param_counts.csv; every other published
# total is the logical parameter count.
STORED_BASIS = {e.model_id for e in PUBLISHED if e.published_basis.startswith("stored")}


def test_catalog_has_at_least_sixty_models():
    assert len(catalog.entries()) >= 60
    assert {"nvidia/DeepSeek-R1-NVFP4"} == STORED_BASIS


@pytest.mark.parametrize("entry", PUBLISHED, ids=lambda e: e.model_id)
def test_parameter_count_matches_published_total_within_one_percent(entry):
    spec = catalog.catalog_spec(entry.model_id)
    ours = spec.params.stored_elements if entry.model_id in STORED_BASIS else spec.params_total
    assert ours == pytest.approx(entry.published_params, rel=0.01)


@pytest.mark.parametrize(
    ("model_id", "total"),
    [
        ("meta-llama/Llama-3.1-8B-Instruct", 8_030_261_248),
        ("Qwen/Qwen3-32B", 32_762_123_264),
        ("mistralai/Mixtral-8x7B-Instruct-v0.1", 46_702_792_704),
        ("google/gemma-3-4b-it", 4_300_079_472),
        ("microsoft/phi-2", 2_779_683_840),
    ],
)
def test_dense_and_moe_counts_are_exact(model_id, total):
    assert load_model(model_id).params_total == total


def test_moe_active_parameters_count_top_k_experts_only():
    spec = load_model("mistralai/Mixtral-8x7B-Instruct-v0.1")
    per_expert = 3 * 4096 * 14336
    assert spec.params_total - spec.params_active == 32 * (8 - 2) * per_expert


def test_tied_embeddings_are_counted_once():
    spec = load_model("Qwen/Qwen2.5-0.5B")
    assert "lm_head" not in spec.params.by_module
    assert spec.params_total == 494_032_768


def test_bf16_weight_bytes_are_two_per_parameter():
    spec = load_model("meta-llama/Llama-3.1-8B-Instruct")
    assert spec.weight_bytes == 2 * 8_030_261_248


def test_runtime_fp8_halves_linear_layers_but_not_embeddings():
    spec = load_model("meta-llama/Llama-3.1-8B-Instruct")
    fp8 = count_params(spec, runtime_fp8(spec.quant))
    embed_and_head = 2 * 128256 * 4096
    linear = spec.params_total - embed_and_head - spec.params.by_module["norm"]
    # FP8 linears (1 byte + per-channel scale) plus bf16 embedding, LM head and norms.
    assert fp8.weight_bytes == pytest.approx(
        linear * 1 + (embed_and_head + spec.params.by_module["norm"]) * 2, rel=0.001
    )


def test_gpt_oss_experts_are_mxfp4_and_attention_bf16():
    spec = load_model("openai/gpt-oss-20b")
    experts = spec.params.by_module["experts"]
    expert_bytes = spec.params.bytes_by_module["experts"]
    assert expert_bytes == pytest.approx(experts * (0.5 + 1 / 32), rel=1e-6)
    assert spec.params.bytes_by_module["attn"] == spec.params.by_module["attn"] * 2


def test_awq_int4_checkpoint_is_about_a_quarter_of_bf16():
    spec = load_model("LDCC/Qwen2.5-72B-Instruct-ko-AWQ")
    ratio = spec.weight_bytes / (spec.params_total * 2)
    assert 0.27 < ratio < 0.33  # int4 linears + fp16 embeddings and head


def test_vision_tower_is_counted_as_extra_weights():
    spec = load_model("google/gemma-3-4b-it")
    assert spec.vision is not None
    text_only = spec.params_total - spec.vision.params
    assert spec.params.by_module["vision"] == spec.vision.params
    assert 3.8e9 < text_only < 3.95e9


def test_mtp_layers_count_in_the_checkpoint_but_not_in_loaded_bytes():
    spec = load_model("deepseek-ai/DeepSeek-V3")
    assert spec.params.mtp_params > 10e9
    loaded = spec.params.weight_bytes
    assert loaded < (spec.params_total - spec.params.mtp_params) * 1.01
