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
    assert "H100=two" in state.costs_message
    assert "Your costs" in state.message


def test_bad_costs_are_named_with_the_fix_in_page_words():
    state = GPURecommender(gpu_list=["H100-SXM-80GB"])

    state.custom_costs = ["H999:2"]
    unknown = state.costs_message
    state.custom_costs = ["H100:-1"]
    negative = state.costs_message
    state.custom_costs = ["H100:2.5"]

    assert unknown.startswith("Your costs: 'H999' in 'H999:2' is not a GPU type of the catalog")
    assert "use a name from the GPU types list" in unknown
    assert "cfgexplorer" not in unknown
    assert "--gpu-memory" not in unknown
    assert negative == (
        "Your costs: the cost in 'H100:-1' must be a number, zero or more, in USD per "
        "GPU-hour; write it like H100:2.5."
    )
    assert state.costs_message == ""
    assert state.message == ""
    assert state.ranked.iloc[0]["cost_per_hour"] == 2.5 * state.ranked.iloc[0]["num_gpus"]


def test_target_rate_adds_the_sizing_per_gpu_type_to_the_ranking():
    state = GPURecommender(gpu_list=["H100-SXM-80GB", "A100-SXM-80GB"])
    assert "gpus_at_target" not in state.ranked

    state.target_rps = 5

    expected = core(gpu_list=("H100-SXM-80GB", "A100-SXM-80GB"), target_rps=5.0)
    sizing = {r.gpu: r.sizing for r in expected.results}
    for row in state.ranked.to_dict("records"):
        size = sizing[row["gpu"]]
        assert row["replicas_at_target"] == size["replicas"]
        assert row["gpus_at_target"] == size["num_gpus"]
        assert row["tp_at_target"] == size["tp"]
        assert row["cost_per_hour_at_target"] == size["cost_per_hour"]


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
