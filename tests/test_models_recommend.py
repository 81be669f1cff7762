"""GPURecommender: the recommend page's state, driven without a browser."""

from __future__ import annotations

from dataclasses import replace

from cfgexplorer import load_model, recommend
from cfgexplorer.models import GPURecommender


def core(**kwargs):
    req = recommend.RecommendRequest(
        model="Qwen/Qwen3-32B", input_len=1000, output_len=200, include_points=True, **kwargs
    )
    return recommend.recommend(replace(req, spec=load_model("Qwen/Qwen3-32B")))


def test_ranking_equals_the_core_recommendation():
    state = GPURecommender(max_itl_ms=50)
    expected = core(max_itl_ms=50)

    assert state.message == ""
    assert list(state.ranked["gpu"]) == [r.gpu for r in expected.results]
    assert list(state.excluded["gpu"]) == list(expected.failed)
    assert state.recommendation.best() == expected.best()


def test_custom_cost_changes_the_cost_column():
    state = GPURecommender(gpu_list=["H100-SXM-80GB"])
    state.custom_costs = ["H100:10"]
    row = state.ranked.iloc[0]
    assert row["cost_source"] != "reference"
    assert row["cost_per_hour"] == 10 * row["num_gpus"]


def test_bad_cost_sets_message():
    state = GPURecommender()
    state.custom_costs = ["H100=two"]
    assert state.recommendation is None
    assert "H100=two" in state.message


def test_curves_follow_each_gpus_best_deployment():
    state = GPURecommender(gpu_list=["H100-SXM-80GB"])
    best = state.ranked.iloc[0]
    curve = state.curves[state.curves["gpu"] == "H100-SXM-80GB"]
    assert set(curve["tp"]) == {best["tp"]}
    assert (curve["itl_ms_lower"] <= curve["itl_ms"]).all()
    assert (curve["itl_ms"] <= curve["itl_ms_upper"]).all()


def test_link_round_trip():
    first = GPURecommender(max_ttft_ms=500, gpu_list=["A100-SXM-80GB", "L40S-48GB"])
    second = GPURecommender()
    assert second.apply_query(first.to_query()) == []
    assert list(second.ranked["gpu"]) == list(first.ranked["gpu"])
    notes = GPURecommender().apply_query({"custom_costs": "nope", "max_gpus": "999"})
    assert len(notes) == 2


def test_engine_and_arrivals_reach_the_core_request():
    from cfgexplorer.models import GPURecommender

    state = GPURecommender(
        model="Qwen/Qwen3-8B", gpu_list=["H100-SXM-80GB"], engine="trtllm", arrivals="synchronized"
    )
    req = state.request()
    assert req.engine == "trtllm"
    assert req.arrivals == "synchronized"
    assert state.provenance()["engine"] == "trtllm"
