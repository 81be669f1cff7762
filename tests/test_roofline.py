"""The performance model: hand-computed steps, calibration, and monotonic properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cfgexplorer import load_model
from cfgexplorer import perf_calibration as pc
from cfgexplorer import roofline as rl
from cfgexplorer.errors import InvalidDeploymentError
from cfgexplorer.gpus import get_gpu
from cfgexplorer.memory import tp_rejection

LLAMA3 = "meta-llama/Meta-Llama-3-8B-Instruct"


@pytest.fixture(scope="module")
def llama3():
    return load_model(LLAMA3)


@pytest.fixture(scope="module")
def estimator():
    return rl.AnalyticalEstimator()


def _request(spec, gpu="H100", **kw):
    base = {
        "spec": spec,
        "gpu": get_gpu(gpu),
        "input_len": 100,
        "output_len": 2,
        "engine": "trtllm",
        "kv_max_concurrency": math.inf,
    }
    base.update(kw)
    return rl.EstimateRequest(**base)


def test_batch1_decode_of_dense_bf16_llama3_is_weight_bytes_over_bandwidth(llama3, estimator):
    # Llama-3-8B per layer: q 4096x4096, k and v 1024x4096, o 4096x4096, gate+up 28672x4096,
    # down 4096x14336 = 218,103,808 weights; 32 layers; LM head 128256 x 4096; all bf16.
    layer_weights = 4096 * 4096 + 2 * 1024 * 4096 + 4096 * 4096 + 28672 * 4096 + 4096 * 14336
    assert layer_weights == 218_103_808
    head = 128256 * 4096
    weight_bytes = (32 * layer_weights + head) * 2
    context = 100 + 2 / 2  # mean context during decode
    kv_bytes = 32 * (2 * 8 * 128 * 2) * context
    linear_flops = 2 * (32 * layer_weights + head)
    attn_flops = 32 * 2 * 32 * (128 + 128) * context

    eff = rl.EFFICIENCY["hopper"]
    bandwidth = 3350e9 * eff.bandwidth
    p = rl.ROOFLINE_OVERLAP_EXPONENT
    expected_ms = (
        rl.soft_max(
            linear_flops / (989.4e12 * eff.compute_16bit) * 1e3, weight_bytes / bandwidth * 1e3, p
        )
        + rl.soft_max(
            attn_flops / (989.4e12 * eff.compute_16bit) * 1e3, kv_bytes / bandwidth * 1e3, p
        )
        + eff.step_overhead_ms
    )
    est = estimator.estimate(_request(llama3, batching="static"))
    assert est.itl_ms == pytest.approx(expected_ms, rel=1e-9)
    # 15.01 GB at 0.79 x 3350 GB/s is 5.67 ms, plus the 2 ms step overhead: about 7.7 ms.
    assert weight_bytes == 15_009_316_864
    assert est.itl_ms == pytest.approx(weight_bytes / bandwidth * 1e3 + 2.0, rel=0.03)
    assert est.decode_bound == "memory"


def test_vllm_factor_scales_static_steps_of_trtllm(llama3, estimator):
    trt = estimator.estimate(_request(llama3, batching="static", concurrency=8))
    vllm = estimator.estimate(_request(llama3, batching="static", concurrency=8, engine="vllm"))
    assert vllm.itl_ms == pytest.approx(trt.itl_ms * rl.ENGINES["vllm"].decode_time)
    assert vllm.ttft_ms == pytest.approx(trt.ttft_ms * rl.ENGINES["vllm"].prefill_time)
    assert rl.ENGINES["trtllm"].decode_time == 1.0


def test_every_engine_factor_and_efficiency_states_a_source():
    for factor in rl.ENGINES.values():
        assert factor.source
        # Measured vLLM decodes a little faster than the TensorRT-LLM 0.9 calibration.
        assert 0.8 <= factor.decode_time <= 1.3
        assert 0.8 <= factor.prefill_time <= 1.3
    for eff in rl.EFFICIENCY.values():
        assert eff.source
        assert 0 < eff.bandwidth < 1
        assert 0 < eff.compute_16bit < 1


def test_trtllm_reproduces_the_calibration_csv():
    comparisons = pc.compare(engine="trtllm")
    assert len(comparisons) == 24
    modelled = [c for c in comparisons if not c.row.queueing]
    summary = pc.summary(modelled)
    for metric in pc.METRICS:
        assert summary[metric]["median_ape_pct"] < 10, metric
        assert summary[metric]["max_ape_pct"] < 25, metric


def test_stored_error_band_matches_the_calibration_residuals():
    modelled = [c for c in pc.compare(engine="trtllm") if not c.row.queueing]
    band = pc.band(modelled)
    for metric, (lo, hi) in band.items():
        stored_lo, stored_hi = rl.ERROR_BAND[metric]
        assert stored_lo == pytest.approx(lo, abs=0.011), metric
        assert stored_hi == pytest.approx(hi, abs=0.011), metric


def test_estimate_carries_provenance_and_band(llama3, estimator):
    est = estimator.estimate(_request(llama3, concurrency=4))
    d = est.to_dict()
    assert d["provenance"]["kind"] == "estimated"
    assert d["provenance"]["model_version"] == rl.MODEL_VERSION
    assert est.upper("ttft_ms") == pytest.approx(est.ttft_ms * rl.ERROR_BAND["ttft_ms"][1])
    assert d["prefill"]["bound"] in ("compute", "memory")
    assert d["decode"]["arithmetic_intensity_flop_per_byte"] > 0


def test_concurrency_above_the_kv_cache_is_infeasible(llama3):
    est = rl.AnalyticalEstimator().estimate(
        rl.EstimateRequest(
            spec=llama3, gpu=get_gpu("L4"), input_len=8000, output_len=1000, concurrency=64
        )
    )
    assert not est.feasible
    assert "KV cache holds" in est.infeasible_reason


@settings(max_examples=25, deadline=None)
@given(
    isl=st.integers(1, 16000),
    osl=st.integers(1, 4000),
    c=st.integers(1, 400),
    step=st.integers(1, 400),
)
def test_itl_does_not_fall_as_concurrency_rises(llama3, estimator, isl, osl, c, step):
    lo = estimator.estimate(_request(llama3, input_len=isl, output_len=osl, concurrency=c))
    hi = estimator.estimate(_request(llama3, input_len=isl, output_len=osl, concurrency=c + step))
    assert hi.itl_ms >= lo.itl_ms - 1e-9


@settings(max_examples=25, deadline=None)
@given(isl=st.integers(1, 30000), extra=st.integers(1, 30000), c=st.integers(1, 256))
def test_ttft_does_not_fall_as_input_grows(llama3, estimator, isl, extra, c):
    lo = estimator.estimate(_request(llama3, input_len=isl, output_len=100, concurrency=c))
    hi = estimator.estimate(_request(llama3, input_len=isl + extra, output_len=100, concurrency=c))
    assert hi.ttft_ms >= lo.ttft_ms - 1e-9


@pytest.mark.parametrize(
    ("fast", "slow"), [("H200", "H100"), ("H100", "A100-80GB"), ("B200", "H100")]
)
@pytest.mark.parametrize(
    "load",
    [
        {"concurrency": 1, "arrivals": "synchronized"},
        {"concurrency": 16, "arrivals": "synchronized"},
        {"concurrency": 128, "arrivals": "synchronized"},
        # Random traffic is the same load at the same rate: at a fixed concurrency a faster GPU
        # completes more requests per second, so more prompts collide.
        {"request_rate": 0.2},
        {"request_rate": 1.0},
    ],
)
def test_faster_gpu_is_never_slower(llama3, estimator, fast, slow, load):
    for isl in (128, 2000, 8000):
        f = estimator.estimate(_request(llama3, fast, input_len=isl, output_len=200, **load))
        s = estimator.estimate(_request(llama3, slow, input_len=isl, output_len=200, **load))
        assert not s.saturated
        assert f.ttft_ms <= s.ttft_ms
        assert f.itl_ms <= s.itl_ms
        # At a given rate both carry rate x OSL; the solve is exact to ~1e-9.
        assert f.output_tok_s >= s.output_tok_s * (1 - 1e-6)


@pytest.mark.parametrize(
    "model", [LLAMA3, "Qwen/Qwen3-30B-A3B", "deepseek-ai/DeepSeek-V3", "google/gemma-3-27b-it"]
)
def test_more_tp_never_raises_per_gpu_weight_bytes(model):
    spec = load_model(model)
    valid = [t for t in (1, 2, 4, 8, 16) if tp_rejection(spec, t) is None]
    sizes = [rl.model_work(spec, t).weight_bytes for t in valid]
    assert sizes == sorted(sizes, reverse=True)


def test_moe_reads_the_experts_a_batch_touches():
    spec = load_model("Qwen/Qwen3-30B-A3B")
    work = rl.model_work(spec)
    one = work.expert_bytes_read(1)
    # One token touches its 8 experts in each of the 48 MoE layers.
    assert one == pytest.approx(48 * 8 * work.expert_bytes)
    assert work.expert_bytes_read(64) > one
    assert work.expert_bytes_read(100000) == pytest.approx(48 * 128 * work.expert_bytes, rel=1e-6)
    # FLOPs per token follow the ~3.3 B active parameters, not the 30 B total.
    assert 2 * 2.5e9 < work.linear_flops_per_token + work.lm_head_flops_per_token < 2 * 3.5e9


def test_bad_lengths_are_one_sentence(llama3, estimator):
    with pytest.raises(InvalidDeploymentError, match="input length"):
        estimator.estimate(_request(llama3, input_len=-5))
    with pytest.raises(InvalidDeploymentError, match="unknown engine"):
        rl.get_engine("tgi")
