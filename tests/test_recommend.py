"""The recommender: constraints, costs, exclusions, inverse sizing."""

from __future__ import annotations

import math
import re

import pytest

from cfgexplorer import load_model
from cfgexplorer.errors import InvalidDeploymentError, UnknownGPUError
from cfgexplorer.gpus import reference_cost_per_hour
from cfgexplorer.recommend import RecommendRequest, gpu_counts, recommend

MODEL = "meta-llama/Meta-Llama-3-8B-Instruct"
GPUS = ("H100", "A100-80GB", "L4")


@pytest.fixture(scope="module")
def spec():
    return load_model(MODEL)


def _req(spec, **kw):
    base = {"model": MODEL, "input_len": 1000, "output_len": 200, "gpu_list": GPUS, "spec": spec}
    base.update(kw)
    return RecommendRequest(**base)


@pytest.mark.parametrize(
    ("ttft", "itl", "e2e"), [(200.0, None, None), (None, 12.0, None), (300.0, 20.0, 4.0)]
)
def test_constraints_never_admit_a_violating_point(spec, ttft, itl, e2e):
    rec = recommend(_req(spec, max_ttft_ms=ttft, max_itl_ms=itl, max_e2e_s=e2e))
    admitted = [p for r in rec.results for p in r.points if p.meets_slo]
    assert admitted
    for p in admitted:
        e = p.estimate
        assert e.feasible
        assert ttft is None or e.upper("ttft_ms") <= ttft
        assert itl is None or e.upper("itl_ms") <= itl
        assert e2e is None or e.upper("e2e_s") <= e2e
    for r in rec.results:
        assert r.best_throughput.meets_slo
        assert r.best_latency.meets_slo


def test_custom_costs_override_reference_costs(spec):
    rec = recommend(_req(spec, custom_costs={"H100": 1.25}))
    by_gpu = {r.gpu: r for r in rec.results}
    assert by_gpu["H100-SXM-80GB"].cost_per_gpu_hour == 1.25
    assert by_gpu["H100-SXM-80GB"].cost_source == "custom"
    assert by_gpu["A100-SXM-80GB"].cost_per_gpu_hour == reference_cost_per_hour("A100-80GB")
    best = by_gpu["H100-SXM-80GB"].best_throughput
    cost = by_gpu["H100-SXM-80GB"].cost_of(best)
    assert cost["per_hour"] == pytest.approx(1.25 * best.num_gpus)
    expected = 1.25 * best.num_gpus / (best.output_tok_s * 3600) * 1e6
    assert cost["per_million_output_tokens"] == pytest.approx(expected, rel=1e-3)


def test_gpu_that_cannot_hold_the_model_is_excluded_with_its_reason():
    rec = recommend(
        RecommendRequest(
            model="Qwen/Qwen3-32B", input_len=1000, output_len=200, gpu_list=("T4", "H100")
        )
    )
    assert "T4-16GB" in rec.failed
    assert rec.failed["T4-16GB"].startswith("does not fit at any TP")
    assert [r.gpu for r in rec.results] == ["H100-SXM-80GB"]


def test_gpu_that_cannot_run_the_weights_is_excluded_for_that_not_for_size(spec):
    rec = recommend(_req(spec, gpu_list=("T4", "H100"), quantization="fp8"))
    assert rec.failed["T4-16GB"] == (
        "cannot serve this model at any TP: T4-16GB cannot run 8-bit quantized weights in "
        "vLLM; choose an Ampere or newer NVIDIA GPU or an MI300-class AMD GPU, or an "
        "unquantized checkpoint"
    )
    assert [r.gpu for r in rec.results] == ["H100-SXM-80GB"]


def test_unmeetable_slo_reports_the_estimated_figure(spec):
    rec = recommend(_req(spec, max_ttft_ms=1.0))
    assert not rec.results
    for reason in rec.failed.values():
        assert reason.startswith("SLO unmeetable even at concurrency 1")
        assert "ttft_ms" in reason


def test_target_rps_sizing_carries_the_load(spec):
    rec = recommend(_req(spec, target_rps=20.0, max_itl_ms=30.0))
    for r in rec.results:
        s = r.sizing
        assert s["replicas"] * s["request_rate_per_replica"] >= 20.0 - 1e-6
        assert s["num_gpus"] == s["replicas"] * s["tp"]
        assert s["cost_per_hour"] == pytest.approx(s["num_gpus"] * r.cost_per_gpu_hour)
    assert rec.best()["lowest_cost"]["metric"] == "cost_per_hour_at_target"


def test_target_rps_sizes_random_traffic_with_the_open_loop_model(spec):
    from cfgexplorer.gpus import get_gpu
    from cfgexplorer.roofline import AnalyticalEstimator, EstimateRequest

    rec = recommend(_req(spec, gpu_list=("H100",), target_rps=12.0, max_ttft_ms=400.0))
    (r,) = rec.results
    s = r.sizing
    assert s["arrivals"] == "random"
    assert s["request_rate_per_replica"] * s["replicas"] == pytest.approx(12.0, rel=1e-3)
    e = AnalyticalEstimator().estimate(
        EstimateRequest(
            spec=spec,
            gpu=get_gpu("H100"),
            input_len=1000,
            output_len=200,
            tp=s["tp"],
            request_rate=12.0 / s["replicas"],
        )
    )
    assert e.upper("ttft_ms") <= 400.0
    assert e.concurrency == pytest.approx(s["concurrency_per_replica"], rel=1e-3)


def test_result_dict_has_the_documented_keys(spec):
    d = recommend(_req(spec, include_points=True)).to_dict()
    assert set(d) >= {
        "input_parameters",
        "estimated_best_performance",
        "gpu_results",
        "failed_gpus",
        "provenance",
    }
    assert set(d["estimated_best_performance"]) == {
        "highest_throughput",
        "lowest_ttft",
        "lowest_itl",
        "lowest_e2e_latency",
        "lowest_cost",
        "lowest_cost_per_million_tokens",
    }
    h100 = d["gpu_results"]["H100-SXM-80GB"]
    assert set(h100) >= {
        "num_gpus",
        "tp",
        "best_latency",
        "best_output_throughput",
        "cost",
        "memory",
    }
    point = h100["points"][0]
    assert set(point) >= {
        "tp",
        "num_gpus",
        "concurrency",
        "ttft_ms",
        "itl_ms",
        "e2e_s",
        "output_tok_s",
        "output_tok_s_per_gpu",
        "feasible",
        "bound",
    }
    assert d["provenance"]["kind"] == "estimated"


def test_concurrency_ladder_stops_at_the_kv_limit(spec):
    rec = recommend(_req(spec, gpu_list=("L4",), max_gpus=1))
    (r,) = rec.results
    limit = r.memory["tp=1"]["max_concurrency"]
    assert max(p.concurrency for p in r.points) <= limit


def test_counts_and_bad_input():
    assert gpu_counts(8) == [1, 2, 4, 8]
    assert gpu_counts(6) == [1, 2, 4, 6]
    with pytest.raises(UnknownGPUError):
        recommend(RecommendRequest(model=MODEL, input_len=10, output_len=10, gpu_list=("Z9",)))
    with pytest.raises(InvalidDeploymentError):
        recommend(RecommendRequest(model=MODEL, input_len=0, output_len=10))


def test_lowest_cost_per_million_tokens_searches_every_slo_meeting_point(spec):
    # The fastest H100 deployment (8 GPUs, TP8) is not the cheapest per token: one GPU at
    # concurrency 2 is, and the overall best must find it.
    rec = recommend(
        _req(spec, input_len=100, output_len=100, concurrency=(1, 2), gpu_list=("H100",))
    )
    (r,) = rec.results
    per_million = {
        (p.num_gpus, p.tp, p.concurrency): r.cost_of(p)["per_million_output_tokens"]
        for p in r.points
        if p.meets_slo
    }
    cheapest = min(per_million, key=per_million.get)

    best = rec.best()["lowest_cost_per_million_tokens"]

    assert (best["num_gpus"], best["tp"], best["concurrency"]) == cheapest == (1, 1, 2)
    assert best["value"] == per_million[cheapest]
    assert best["value"] < r.cost_of(r.best_throughput)["per_million_output_tokens"]
    assert best["replicas"] == 1


def test_target_rps_sizing_uses_the_fewest_replicas_that_meet_the_slo():
    # 50 req/s on L4 at TP4 under a 40 ms ITL: one replica fewer than the answer must fail.
    spec = load_model("meta-llama/Llama-3.1-8B")
    common = {
        "model": "meta-llama/Llama-3.1-8B",
        "input_len": 1000,
        "output_len": 200,
        "gpu_list": ("L4",),
        "tp": 4,
        "max_gpus": 4,
        "max_itl_ms": 40.0,
        "spec": spec,
    }
    sizing = recommend(RecommendRequest(**common, target_rps=50.0)).results[0].sizing
    replicas = sizing["replicas"]

    at_answer = recommend(RecommendRequest(**common, request_rate=50.0 / replicas))
    one_fewer = recommend(RecommendRequest(**common, request_rate=50.0 / (replicas - 1)))

    assert replicas <= 17  # the tester's hand check: 3 req/s per replica meets the SLO
    assert sizing["num_gpus"] == replicas * 4
    assert sizing["max_request_rate_per_replica"] >= 50.0 / replicas
    assert any(p.meets_slo for p in at_answer.results[0].points)
    assert "L4-24GB" in one_fewer.failed or not any(
        p.meets_slo for p in one_fewer.results[0].points
    )


def test_tp_the_model_cannot_split_by_names_the_model_reason(spec):
    rec = recommend(_req(spec, tp=3, gpu_list=("H100",)))

    reason = rec.failed["H100-SXM-80GB"]

    assert reason == "--tp 3 is not valid for this model: 32 attention heads are not divisible by 3"


def test_concurrency_beyond_the_kv_cache_is_not_called_an_slo_failure(spec):
    rec = recommend(_req(spec, concurrency=(1_000_000_000,), gpu_list=("H100",)))

    reason = rec.failed["H100-SXM-80GB"]

    assert reason.startswith("no feasible point at concurrency 1000000000")
    assert "the KV cache holds" in reason
    assert "SLO" not in reason


def test_request_rate_that_saturates_says_so(spec):
    rec = recommend(_req(spec, request_rate=1e9, gpu_list=("H100",)))

    reason = rec.failed["H100-SXM-80GB"]

    assert reason.startswith("no feasible point at 1e+09 req/s")
    assert "the queue grows without bound" in reason
    assert "SLO" not in reason


def test_no_fit_reason_quotes_the_largest_tp_tried():
    from cfgexplorer.gpus import get_gpu
    from cfgexplorer.memory import Deployment, plan

    spec = load_model("meta-llama/Llama-3.1-70B")
    rec = recommend(
        RecommendRequest(
            model="meta-llama/Llama-3.1-70B",
            input_len=100,
            output_len=100,
            gpu_list=("L4",),
            max_gpus=4,
            spec=spec,
        )
    )
    tp4 = plan(spec, get_gpu("L4"), Deployment(tp=4, max_model_len=200))

    reason = rec.failed["L4-24GB"]

    assert reason.startswith("does not fit at any TP up to 4 with 4 GPUs: at tp=4, ")
    assert f"need {tp4.weights_gib:.2f} GiB per GPU" in reason


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"engine_profile": "nope"}, "unknown engine profile 'nope'"),
        ({"engine": "nope"}, "unknown engine 'nope'"),
        ({"arrivals": "nope"}, "--arrivals must be random, synchronized, static"),
        ({"max_e2e_s": float("inf")}, "--max-latency must be a finite number"),
        ({"max_ttft_ms": float("nan")}, "--max-ttft must be a finite number"),
        ({"target_rps": float("inf")}, "--target-rps must be a finite number"),
        ({"max_gpus": 100_000}, "--max-gpus must be a whole number from 1 to 1024"),
        ({"max_gpus_per_type": {"H100": 5000}}, "from 1 to 1024"),
    ],
)
def test_bad_request_is_rejected_before_any_search(spec, change, fragment):
    with pytest.raises(InvalidDeploymentError, match=re.escape(fragment)):
        recommend(_req(spec, **change))


def test_target_concurrency_is_sized_at_the_real_per_replica_load():
    req = RecommendRequest(
        model="Qwen/Qwen3-8B",
        input_len=1000,
        output_len=200,
        gpu_list=("H100",),
        max_gpus=64,
        max_itl_ms=20.0,
        target_concurrency=500,
    )
    sizing = recommend(req).results[0].sizing
    top = sizing["max_concurrency_per_replica"]
    # The fewest replicas whose SLO-meeting capacity covers 500 requests...
    assert sizing["replicas"] == math.ceil(500 / top)
    assert (sizing["replicas"] - 1) * top < 500
    # ...each loaded with its even share, and the latencies at that load are reported.
    assert sizing["concurrency_per_replica"] == pytest.approx(500 / sizing["replicas"], abs=1e-3)
    assert sizing["itl_ms"] < 20.0
    assert sizing["ttft_ms"] > 0
    # One request more than the found maximum breaks the ITL SLO at the band's upper edge.
    over = recommend(
        RecommendRequest(
            model="Qwen/Qwen3-8B",
            input_len=1000,
            output_len=200,
            gpu_list=("H100",),
            max_gpus=1,
            tp=1,
            concurrency=(int(top) + 1,),
            max_itl_ms=20.0,
            include_points=True,
        )
    )
    assert not any(p.meets_slo for r in over.results for p in r.points) or over.failed
