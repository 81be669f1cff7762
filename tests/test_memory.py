"""The capacity model: KV bytes per attention kind, vLLM's layout, verdicts and searches."""

from __future__ import annotations

import pytest

from cfgexplorer import load_model
from cfgexplorer.calibration import compare, rows
from cfgexplorer.errors import InvalidDeploymentError
from cfgexplorer.gpus import custom_gpu, get_gpu
from cfgexplorer.memory import (
    Deployment,
    blocks_and_concurrency,
    engine_profiles,
    get_profile,
    kv_layout,
    max_model_len_for,
    padded_vocab,
    plan,
    pp_layer_ranges,
    smallest_parallelism,
    tp_rejection,
    valid_tp_sizes,
)

GIB = 2**30
H100 = get_gpu("H100")


# --- KV bytes per token, one model of each kind, computed by hand ------------------


def test_llama31_8b_full_attention_kv_bytes_per_token():
    # 32 layers x 2 (K and V) x 8 KV heads x 128 head_dim x 2 bytes (bf16)
    p = plan(load_model("meta-llama/Llama-3.1-8B-Instruct"), H100, Deployment(max_model_len=8192))
    assert p.kv_bytes_per_token == 131_072


def test_fp8_kv_cache_halves_the_bytes_per_token():
    p = plan(
        load_model("meta-llama/Llama-3.1-8B-Instruct"),
        H100,
        Deployment(max_model_len=8192, kv_cache_dtype="fp8"),
    )
    assert p.kv_bytes_per_token == 65_536


def test_kv_heads_split_by_tp_and_replicated_beyond_their_count():
    spec = load_model("meta-llama/Llama-3.1-8B-Instruct")
    tp2 = plan(spec, H100, Deployment(tp=2, max_model_len=8192))
    tp16 = plan(spec, H100, Deployment(tp=16, max_model_len=8192))
    assert tp2.kv_bytes_per_token == 131_072 // 2
    # 8 KV heads on 16 ranks: one (replicated) head per rank, 32 x 2 x 1 x 128 x 2
    assert tp16.kv_bytes_per_token == 16_384


def test_deepseek_v3_mla_latent_is_not_sharded_by_tp():
    spec = load_model("deepseek-ai/DeepSeek-V3")
    # 61 layers x (kv_lora_rank 512 + qk_rope_head_dim 64) x 2 bytes
    for tp in (1, 8):
        p = plan(spec, get_gpu("H200"), Deployment(tp=tp, max_model_len=8192))
        assert p.kv_bytes_per_token == 61 * 576 * 2 == 70_272


def test_gpt_oss_sliding_layers_hold_at_most_their_window():
    spec = load_model("openai/gpt-oss-20b")
    layout = kv_layout(spec, (0, 24), 1, 2, 2, 16, 16)
    # 12 sliding + 12 full layers: two groups of 12, one 16-token page = 16 x 2 x 8 x 64 x 2
    assert len(layout.groups) == 2
    assert layout.group_size == 12
    assert {g.page_bytes for g in layout.groups} == {32_768}
    assert layout.bytes_per_token == 24 * 2 * 8 * 64 * 2
    pool = 40 * GIB
    blocks, _, conc = blocks_and_concurrency(layout, pool, 16_000, 8192, "blocks_per_group")
    assert blocks == pool // 32_768 // 12
    # per request: full 16000/16 = 1000 blocks; sliding min(127 + 8192, 16000) -> 520 + 1
    assert conc == pytest.approx(blocks / (1000 + 521))


def test_gemma3_five_local_layers_per_global_layer():
    spec = load_model("google/gemma-3-27b-it")
    layout = kv_layout(spec, (0, spec.num_layers), 1, 2, 2, 16, 16)
    # 52 sliding, 10 full: groups of 10 layers -> 6 sliding groups (padded) + 1 full
    assert layout.group_size == 10
    assert [g.kind for g in layout.groups].count("sliding") == 6
    assert [g.kind for g in layout.groups].count("full") == 1
    # 16 KV heads x 128 x 2 (K, V) x 2 bytes = 8192 bytes per token per layer
    assert layout.bytes_per_token == 62 * 8192
    long_ctx = plan(spec, H100, Deployment(max_model_len=131072))
    short_ctx = plan(spec, H100, Deployment(max_model_len=8192))
    # Sliding layers stop growing past their window, so concurrency falls slower than 1/len.
    assert long_ctx.max_concurrency * 131072 > short_ctx.max_concurrency * 8192 * 1.5


def test_llama4_scout_chunked_layers_are_bounded_by_the_chunk():
    spec = load_model("meta-llama/Llama-4-Scout-17B-16E-Instruct")
    layout = kv_layout(spec, (0, 48), 4, 2, 2, 16, 16)
    chunked = [g for g in layout.groups if g.kind == "chunked"]
    assert len(chunked) == 3
    assert chunked[0].window == 8192
    # 8 KV heads over TP4: 2 heads x 128 head_dim x 2 (K, V) x 2 bytes = 1024 bytes per layer
    assert layout.bytes_per_token == 48 * 1024
    pool = 10 * GIB
    blocks, _, conc = blocks_and_concurrency(layout, pool, 65_536, 8192, "blocks_per_group")
    # full: 65536/16 = 4096 blocks; chunked: min(8192 + 8192, 65536)/16 = 1024 blocks, x3 groups
    assert conc == pytest.approx(blocks / (4096 + 3 * 1024))


def test_qwen3_next_linear_layers_hold_a_fixed_state_per_sequence():
    spec = load_model("Qwen/Qwen3-Next-80B-A3B-Thinking")
    layout = kv_layout(spec, (0, 48), 1, 2, 2, 16, 16)
    state = (2 * 16 * 128 + 32 * 128) * 3 * 2 + 32 * 128 * 128 * 2
    assert state == 1_097_728
    assert layout.state_bytes_per_seq == 36 * state
    # full layers: 2 KV heads x 256 x 2 x 2 bytes = 2048 bytes per token
    assert layout.bytes_per_token == 12 * 2048
    # the attention block grows until a page holds one state: 16 x ceil(state / (16 x 2048))
    assert layout.block_size == 544


def test_multimodal_model_kv_comes_from_nested_text_config():
    spec = load_model("Qwen/Qwen3-VL-8B-Instruct")
    p = plan(spec, H100, Deployment(max_model_len=8192))
    assert p.kv_bytes_per_token == 36 * 2 * 8 * 128 * 2 == 147_456


# --- the measured rows ---------------------------------------------------------------

MEASURED = rows()


@pytest.mark.parametrize("row", MEASURED, ids=lambda r: r.case[:60])
def test_measured_row_reproduces(row):
    r = compare(row)
    assert r["predicted_fits"] == (row.status == "ok"), r.get("error") or r.get("problems")
    if row.status != "ok":
        return
    pred_w, meas_w = r["weights"]
    assert pred_w == pytest.approx(meas_w, rel=0.02)
    pred_kv, meas_kv = r["kv_pool"]
    assert abs(pred_kv - meas_kv) <= 0.5
    pred_t, meas_t = r["kv_tokens"]
    if meas_t:
        assert pred_t == pytest.approx(meas_t, rel=0.03)


def test_failed_tp5_names_the_reason():
    spec = load_model("Qwen/Qwen3-14B")
    assert tp_rejection(spec, 5) is not None
    with pytest.raises(InvalidDeploymentError, match="valid sizes"):
        plan(spec, H100, Deployment(tp=5, max_model_len=8192))


# --- structure -------------------------------------------------------------------------


def test_pp_partition_puts_extra_layers_before_the_last_stage():
    assert pp_layer_ranges(32, 2) == [(0, 16), (16, 32)]
    assert pp_layer_ranges(30, 4) == [(0, 7), (7, 15), (15, 23), (23, 30)]
    assert pp_layer_ranges(61, 3) == [(0, 20), (20, 41), (41, 61)]


def test_pp_reports_every_stage_with_embedding_first_and_head_last():
    spec = load_model("meta-llama/Llama-3.1-8B-Instruct")
    p = plan(spec, H100, Deployment(pp=4, max_model_len=8192))
    assert len(p.stages) == 4
    middle = p.stages[1].weights_gib
    embed_gib = 128256 * 4096 * 2 / GIB
    assert p.stages[0].weights_gib == pytest.approx(middle + embed_gib, abs=0.01)
    assert p.stages[3].weights_gib == pytest.approx(middle + embed_gib, abs=0.01)  # LM head
    assert p.stages[3].activation_gib > p.stages[0].activation_gib  # sampler on the last


def test_vocab_is_padded_to_a_multiple_of_64():
    assert padded_vocab(49155) == 49216
    assert padded_vocab(128256) == 128256


def test_valid_tp_sizes_give_reasons():
    spec = load_model("Qwen/Qwen3-32B")
    result = valid_tp_sizes(spec, 8)
    assert result["valid"] == [1, 2, 4, 8]
    assert "64 attention heads" in result["rejected"]["3"]


def test_expert_parallel_splits_experts_across_tp_times_dp():
    spec = load_model("Qwen/Qwen3-30B-A3B")
    no_ep = plan(spec, H100, Deployment(tp=2, dp=2, max_model_len=8192))
    ep = plan(spec, H100, Deployment(tp=2, dp=2, enable_expert_parallel=True, max_model_len=8192))
    assert ep.weights_gib < no_ep.weights_gib
    experts_gib = spec.params.by_module["experts"] * 2 / GIB
    assert no_ep.weights_gib - ep.weights_gib == pytest.approx(
        experts_gib / 2 - experts_gib / 4, rel=0.01
    )


def test_weights_that_exceed_the_budget_fail_with_the_reason():
    p = plan(load_model("meta-llama/Llama-3.1-70B"), H100, Deployment(max_model_len=8192))
    assert not p.fits
    assert "weights alone" in p.problems[0]
    assert p.dominant_term == "weights"


def test_max_model_len_too_long_for_the_pool_says_the_largest_that_fits():
    spec = load_model("Qwen/Qwen3-32B")
    p = plan(spec, custom_gpu(72), Deployment(max_model_len=40960))
    assert not p.fits
    assert "largest length that fits" in p.problems[0]
    fit = p.max_model_len_that_fits
    assert fit is not None
    assert fit < 40960
    assert plan(spec, custom_gpu(72), Deployment(max_model_len=fit)).fits


def test_auto_fit_finds_the_largest_max_model_len():
    spec = load_model("Qwen/Qwen3-32B")
    assert max_model_len_for(spec, H100, Deployment(tp=2)) == 40960  # the model's maximum
    one_gpu = plan(spec, H100, Deployment(max_model_len=4096))
    # TP1: the pool holds pool / (64 layers x 2 x 8 x 128 x 2 bytes) tokens, in 16-token blocks
    by_hand = int(one_gpu.kv_pool_gib * GIB // (16 * 262_144)) * 16
    assert max_model_len_for(spec, H100, Deployment()) == by_hand


def test_smallest_parallelism_for_a_70b_model_on_h100():
    spec = load_model("meta-llama/Llama-3.1-70B")
    # TP2 holds the weights but not eight 8k requests; three GPUs (TP1 x PP3) do.
    tp2 = plan(spec, H100, Deployment(tp=2, max_model_len=8192))
    assert tp2.fits
    assert tp2.max_concurrency < 8
    p = smallest_parallelism(spec, H100, max_model_len=8192, concurrency=8)
    assert p is not None
    assert p.deployment.tp * p.deployment.pp == 3
    assert p.fits
    assert p.max_concurrency >= 8
    assert smallest_parallelism(spec, H100, max_model_len=8192, concurrency=1).deployment.tp == 2


def test_max_model_len_above_the_model_maximum_needs_the_override():
    spec = load_model("Qwen/Qwen3-32B")
    with pytest.raises(InvalidDeploymentError, match="allow-long-max-model-len"):
        plan(spec, H100, Deployment(tp=2, max_model_len=100_000))
    p = plan(spec, H100, Deployment(tp=2, max_model_len=100_000, allow_long_max_model_len=True))
    assert p.max_model_len == 100_000


@pytest.mark.parametrize(
    ("dep", "message"),
    [
        (Deployment(tp=0), "tp must be"),
        (Deployment(pp=-1), "pp must be"),
        (Deployment(gpu_memory_utilization=1.2), r"\(0, 1\]"),
        (Deployment(gpu_memory_utilization=0), r"\(0, 1\]"),
        (Deployment(max_model_len=-5), "max_model_len must be"),
        (Deployment(kv_cache_dtype="int3"), "kv_cache_dtype"),
        (Deployment(block_size=17), "block_size"),
    ],
)
def test_bad_deployments_get_one_sentence(dep, message):
    with pytest.raises(InvalidDeploymentError, match=message):
        plan(load_model("Qwen/Qwen3-8B"), H100, dep)


def test_fp8_kv_cache_on_a_gpu_that_cannot_store_it():
    t4 = get_gpu("T4")
    assert t4.fp8_kv_cache is False
    with pytest.raises(InvalidDeploymentError, match="fp8 KV cache"):
        plan(load_model("Qwen/Qwen3-0.6B"), t4, Deployment(kv_cache_dtype="fp8"))


def test_profiles_differ_in_activation_and_defaults():
    spec = load_model("meta-llama/Llama-3.1-8B-Instruct")
    new = plan(spec, H100, Deployment(max_model_len=16000), "vllm-0.19")
    old = plan(spec, H100, Deployment(max_model_len=16000), "vllm-0.11")
    assert old.activation_gib > 2 * new.activation_gib
    assert old.block_size == 128
    assert new.block_size == 16
    assert set(engine_profiles()) >= {"vllm-0.19", "vllm-0.11"}
    assert get_profile().name == "vllm-0.19"
    with pytest.raises(InvalidDeploymentError, match="unknown engine profile"):
        get_profile("vllm-9.9")


def test_scheduler_defaults_follow_gpu_memory():
    prof = get_profile()
    assert prof.scheduler_defaults(79.19) == (8192, 1024)
    assert prof.scheduler_defaults(22.0) == (2048, 256)
    # vLLM keeps A100s on the small defaults even at 80 GB
    assert prof.scheduler_defaults(79.25, "A100-SXM-80GB") == (2048, 256)


def test_plan_is_json_ready_with_the_documented_keys():
    p = plan(load_model("Qwen/Qwen3-32B"), H100, Deployment(tp=2, max_model_len=16000)).to_dict()
    for key in ("device_total", "budget", "weights", "activation", "non_torch", "kv_pool"):
        assert key in p["memory_gib"]
    for key in ("bytes_per_token", "tokens", "blocks", "max_concurrency"):
        assert key in p["kv_cache"]
    for key in (
        "fits",
        "problems",
        "max_model_len_that_fits",
        "valid_tp",
        "stages",
        "vllm_args",
        "engine_profile",
        "notes",
    ):
        assert key in p
    assert p["memory_gib"]["budget"] == pytest.approx(0.9 * 79.19, abs=0.001)
    assert "--tensor-parallel-size 2" in p["vllm_serve"]


def test_odd_vocabulary_is_padded_so_granite_takes_tp2():
    spec = load_model("ibm-granite/granite-3.1-8b-instruct")
    assert spec.vocab_size % 2 == 1
    assert tp_rejection(spec, 2) is None
    assert tp_rejection(spec, 5) is not None  # 49216 is not divisible by 5


def test_block_fp8_needs_whole_blocks_on_every_rank():
    spec = load_model("Qwen/Qwen3-30B-A3B-FP8")  # expert width 768, 128x128 blocks
    assert tp_rejection(spec, 2) is None  # 384 = 3 blocks
    reason = tp_rejection(spec, 4)  # 192 is not a multiple of 128
    assert reason is not None
    assert "128-wide FP8 weight blocks" in reason


def test_last_pp_stage_takes_the_larger_of_forward_and_sampler():
    spec = load_model("deepseek-ai/DeepSeek-V3")
    p = plan(spec, get_gpu("H200"), Deployment(tp=8, pp=2, max_model_len=32768))
    assert p.stages[1].activation_gib == pytest.approx(p.stages[0].activation_gib)
    assert p.stages[1].activation_source == "forward pass"


def test_plan_accepts_a_gpu_name_and_rejects_bad_types():
    spec = load_model("Qwen/Qwen3-8B")
    assert plan(spec, "H100", Deployment(max_model_len=4096)).gpu == "H100-SXM-80GB"
    with pytest.raises(InvalidDeploymentError, match="must be a number"):
        plan(spec, H100, Deployment(gpu_memory_utilization="0.9"))
    with pytest.raises(InvalidDeploymentError, match="engine profile must be a name"):
        plan(spec, H100, Deployment(), profile=123)


def test_t4_serves_bf16_checkpoints_in_float16():
    p = plan(load_model("Qwen/Qwen3-0.6B"), get_gpu("T4"), Deployment(max_model_len=4096))
    assert p.kv_dtype == "auto (float16)"
    assert any("no bfloat16" in n for n in p.notes)


def test_dense_hybrid_with_default_expert_fields_is_not_moe():
    assert load_model("nvidia/Nemotron-H-56B-Base-8K").moe is None


def test_qwen3_vl_moe_keeps_its_untied_head():
    spec = load_model("Qwen/Qwen3-VL-30B-A3B-Instruct")
    assert spec.tie_word_embeddings is False
    assert "lm_head" in spec.params.by_module


def test_glm_fp8_experts_are_fp8():
    spec = load_model("zai-org/GLM-4.7-FP8")
    assert spec.quant.weight_bits == 8
    assert spec.quant.quantized_kinds == ("experts",)
    assert spec.weight_bytes / 2**30 < 360  # about half of the 667 GiB it takes in BF16


def test_batched_tokens_below_the_default_max_num_seqs_are_refused_as_vllm_does():
    spec = load_model("Qwen/Qwen3-32B")
    h100 = get_gpu("H100")
    # vllm-0.19 on an 80 GB card defaults max_num_seqs to 1024: 10 batched tokens cannot
    # schedule that many sequences, and vLLM's scheduler config says so at start-up.
    too_few = r"\(10\) must be at least max_num_seqs \(1024"
    with pytest.raises(InvalidDeploymentError, match=too_few):
        plan(spec, h100, Deployment(tp=2, max_num_batched_tokens=10))
    with pytest.raises(InvalidDeploymentError, match=r"max_num_seqs \(100000\)"):
        plan(spec, h100, Deployment(tp=2, max_num_seqs=100_000))
    with pytest.raises(InvalidDeploymentError, match="max_num_seqs 100,000,000 is above 1,000,000"):
        plan(spec, h100, Deployment(tp=2, max_num_seqs=100_000_000))
    with pytest.raises(InvalidDeploymentError, match="max_num_batched_tokens 99,999,999,999"):
        plan(spec, h100, Deployment(tp=2, max_num_batched_tokens=99_999_999_999))
    fine = plan(spec, h100, Deployment(tp=2, max_num_batched_tokens=10, max_num_seqs=8))
    assert fine.max_num_batched_tokens == 10
    assert fine.max_num_seqs == 8


@pytest.mark.parametrize(
    ("model", "dtype", "quantization", "fragment"),
    [
        (
            "openai/gpt-oss-20b",
            "float32",
            None,
            "mxfp4 weights with bfloat16 activations, not float32",
        ),
        (
            "openai/gpt-oss-20b",
            "float16",
            None,
            "mxfp4 weights with bfloat16 activations, not float16",
        ),
        ("Qwen/Qwen3-32B-FP8", "float32", None, "fp8-block weights with bfloat16 or float16"),
        ("Qwen/Qwen3-32B", "float32", "fp8", "fp8 weights with bfloat16 or float16"),
    ],
)
def test_dtypes_the_quantized_kernels_cannot_run_are_refused(model, dtype, quantization, fragment):
    spec = load_model(model)
    dep = Deployment(tp=2, dtype=dtype, quantization=quantization)
    with pytest.raises(InvalidDeploymentError, match=fragment):
        plan(spec, get_gpu("H100"), dep)


def test_quantized_checkpoints_keep_the_dtypes_their_kernels_take():
    h100 = get_gpu("H100")
    assert plan(load_model("Qwen/Qwen3-32B-FP8"), h100, Deployment(tp=2, dtype="float16")).fits
    assert plan(load_model("openai/gpt-oss-20b"), h100, Deployment(dtype="bfloat16")).fits
    # An unquantized model runs in float32 (4 bytes a weight: 32.8 B x 4 B over 4 GPUs).
    fp32 = plan(load_model("Qwen/Qwen3-32B"), h100, Deployment(tp=4, dtype="float32"))
    assert fp32.weights_gib == pytest.approx(32.76e9 * 4 / 4 / 2**30, rel=0.01)


def test_fp4_weights_need_ampere_or_newer():
    with pytest.raises(InvalidDeploymentError, match=r"compute capability 7\.5\) cannot run mxfp4"):
        plan(load_model("openai/gpt-oss-20b"), get_gpu("T4"), Deployment())


def test_expert_parallel_lifts_the_expert_width_rules_on_tp():
    spec = load_model("Qwen/Qwen3-30B-A3B-FP8")
    # TP 8 splits each 768-wide expert into 96 columns, not whole 128-wide FP8 blocks...
    assert "width 768 (96)" in tp_rejection(spec, 8)
    # ...but with expert parallelism the experts stay whole, spread over the 8 ranks.
    assert tp_rejection(spec, 8, expert_parallel=True) is None
    p = plan(spec, get_gpu("H100"), Deployment(tp=8, enable_expert_parallel=True))
    assert p.fits
    assert p.valid_tp["valid"] == [1, 2, 4, 8]


def test_auto_kv_dtype_takes_a_modelopt_checkpoints_fp8_kv_cache_in_recent_vllm():
    spec = load_model("nvidia/Qwen3-235B-A22B-NVFP4")  # kv_cache_quant_algo: FP8
    b200 = get_gpu("B200")
    dep = Deployment(tp=8, max_model_len=4096)
    # 94 layers x 1 KV head per rank (4 heads over 8 ranks, replicated) x 128 x (K, V).
    recent = plan(spec, b200, dep)
    assert recent.kv_dtype == "fp8_e4m3"
    assert recent.kv_bytes_per_token == 94 * 1 * 128 * 2 * 1
    assert "--kv-cache-dtype fp8_e4m3" in " ".join(recent.vllm_args)
    # vLLM 0.11 kept auto at the model dtype and only noted the checkpoint's scheme.
    older = plan(spec, b200, dep, "vllm-0.11")
    assert older.kv_bytes_per_token == 94 * 1 * 128 * 2 * 2
    assert any("pass --kv-cache-dtype fp8" in n for n in older.notes)
    # A compressed-tensors KV scheme is not taken by auto (vLLM resolves ModelOpt's only).
    from dataclasses import replace

    from cfgexplorer.quant import QuantScheme

    llama = load_model("meta-llama/Llama-3.1-8B-Instruct")
    ct = replace(llama, quant=QuantScheme(method="compressed-tensors", kv_cache_dtype="fp8"))
    ct_plan = plan(ct, get_gpu("H100"), Deployment(max_model_len=8192))
    assert ct_plan.kv_bytes_per_token == 131_072
    assert any("pass --kv-cache-dtype fp8" in n for n in ct_plan.notes)
