"""CapacityPlanner: the capacity page's state, driven without a browser."""

from __future__ import annotations

import argparse
import json
import logging

import pytest

from cfgexplorer import cli, gpus, load_model, memory
from cfgexplorer.catalog import raw_files
from cfgexplorer.models import CapacityPlanner


def core_plan(model: str, gpu: str, **dep) -> dict:
    spec = load_model(model)
    return memory.plan(spec, gpus.get_gpu(gpu), memory.Deployment(**dep)).to_dict()


def test_scripted_plan_equals_the_core_plan():
    planner = CapacityPlanner(model="Qwen/Qwen3-32B", gpu="H100", tp=2)

    expected = core_plan(
        "Qwen/Qwen3-32B", "H100", tp=2, gpu_memory_utilization=0.9, max_model_len=40960
    )
    assert planner.message == ""
    assert planner.gpu == "H100-SXM-80GB"
    assert planner.plan.to_dict() == expected


def test_scripted_plan_matches_the_plan_command(capsys):
    if not _has_command("plan"):
        pytest.skip("`cfgexplorer plan` is not registered yet")
    status = cli.main(["plan", "--model", "Qwen/Qwen3-32B", "--gpu", "H100", "--tp", "2"])
    assert status == 0
    printed = json.loads(capsys.readouterr().out)
    plan = CapacityPlanner(model="Qwen/Qwen3-32B", gpu="H100", tp=2).plan.to_dict()
    assert printed["kv_cache"]["tokens"] == plan["kv_cache"]["tokens"]
    assert printed["memory_gib"] == plan["memory_gib"]


def _has_command(name: str) -> bool:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return name in sub.choices


def test_tp_one_to_two_changes_the_kv_pool():
    planner = CapacityPlanner(model="Qwen/Qwen3-32B", gpu="H100")
    before = planner.plan.kv_tokens

    planner.tp = 2

    assert planner.plan.kv_tokens > before
    assert (
        planner.plan.kv_tokens
        == core_plan(
            "Qwen/Qwen3-32B", "H100", tp=2, max_model_len=40960, gpu_memory_utilization=0.9
        )["kv_cache"]["tokens"]
    )


def test_tp_choices_follow_the_model():
    planner = CapacityPlanner(model="Qwen/Qwen3-32B")
    spec = load_model("Qwen/Qwen3-32B")

    assert planner.param.tp.objects == memory.valid_tp_sizes(spec, 64)["valid"]
    assert 3 not in planner.param.tp.objects


def test_max_model_len_bound_follows_the_model():
    planner = CapacityPlanner(model="Qwen/Qwen3-32B")
    assert planner.param.max_model_len.bounds == (1, 40960)
    assert planner.max_model_len == 40960

    planner.model = "meta-llama/Llama-3.1-8B-Instruct"

    assert planner.param.max_model_len.bounds == (1, 131072)
    assert planner.max_model_len == 131072


def test_preferred_length_is_capped_by_each_model_and_followed_across_models():
    planner = CapacityPlanner(model="Qwen/Qwen3-32B", preferred_max_model_len=16384)
    assert planner.max_model_len == 16384
    assert planner.plan.fits

    planner.model = "meta-llama/Meta-Llama-3-8B-Instruct"  # a maximum of 8192
    assert planner.max_model_len == 8192
    assert planner.notes == []

    planner.model = "meta-llama/Llama-3.1-8B-Instruct"
    assert planner.max_model_len == 16384


def test_a_length_the_user_typed_stops_following_the_model():
    planner = CapacityPlanner(model="Qwen/Qwen3-32B", preferred_max_model_len=16384)
    planner.max_model_len = 20000

    planner.model = "meta-llama/Llama-3.1-8B-Instruct"

    assert planner.max_model_len == 20000


def test_explicit_length_above_a_new_models_maximum_is_clamped_with_a_note():
    planner = CapacityPlanner(model="meta-llama/Llama-3.1-8B-Instruct", max_model_len=100000)

    planner.model = "Qwen/Qwen3-32B"

    assert planner.max_model_len == 40960
    assert any("max_model_len 100000" in n for n in planner.notes)


def test_invalid_tp_for_a_new_model_falls_back_with_a_note():
    planner = CapacityPlanner(model="meta-llama/Llama-3.1-8B-Instruct", tp=64)
    valid = memory.valid_tp_sizes(load_model("meta-llama/Llama-3.1-8B-Instruct"), 64)["valid"]

    assert 64 not in valid
    assert planner.tp == max(valid)
    assert any("tp=64" in n for n in planner.notes)


def test_gpu_list_follows_the_catalog():
    planner = CapacityPlanner()
    assert planner.param.gpu.objects == gpus.gpu_names()


def test_unknown_model_sets_message_not_exception(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    planner = CapacityPlanner()

    planner.model = "no-such-org/no-such-model"

    assert planner.plan is None
    assert "no-such-org/no-such-model" in planner.message


def test_fp8_kv_cache_on_a_gpu_without_it_sets_message():
    planner = CapacityPlanner(gpu="T4")

    planner.kv_cache_dtype = "fp8"

    assert planner.plan is None
    assert "fp8" in planner.message
    planner.kv_cache_dtype = "auto"
    assert planner.plan is not None
    assert planner.message == ""


def test_pp_beyond_the_layers_sets_message():
    planner = CapacityPlanner(model="Qwen/Qwen3-0.6B")
    planner.pp = 64
    assert planner.plan is None
    assert "pp=64" in planner.message


def test_weights_that_do_not_fit_are_a_verdict_not_an_error():
    planner = CapacityPlanner(model="Qwen/Qwen3-32B", gpu="T4")
    assert planner.message == ""
    assert planner.plan.fits is False
    assert planner.smallest is not None
    assert planner.smallest.fits


def test_curve_matches_the_core_curve():
    planner = CapacityPlanner(model="Qwen/Qwen3-32B", gpu="H100", tp=2)
    spec = load_model("Qwen/Qwen3-32B")
    lengths = list(planner.curve["max_model_len"])
    expected = memory.concurrency_curve(spec, gpus.get_gpu("H100"), planner.deployment(), lengths)

    assert [p["max_concurrency"] for p in expected] == list(planner.curve["max_concurrency"])
    assert 40960 in lengths


def test_pipeline_stages_become_extra_bars():
    planner = CapacityPlanner(model="Qwen/Qwen3-32B", pp=2)
    segments = planner.budget_segments()
    assert sorted(segments["label"].unique()) == ["per GPU", "stage 0", "stage 1"]
    per_gpu = segments[segments["bar"] == 0]
    assert per_gpu["end"].max() == pytest.approx(planner.plan.device_total_gib, abs=0.01)


def test_link_round_trip_reopens_the_same_plan():
    first = CapacityPlanner(model="Qwen/Qwen3-32B", gpu="A100", tp=4, max_model_len=16000)
    query = first.to_query()

    second = CapacityPlanner()
    notes = second.apply_query(query)

    assert notes == []
    assert second.plan.to_dict() == first.plan.to_dict()


def test_bad_link_values_fall_back_to_defaults_with_notes():
    planner = CapacityPlanner()
    notes = planner.apply_query({"gpu": "Z80", "tp": "3", "max_model_len": "lots", "pp": "2"})

    assert planner.gpu == "H100-SXM-80GB"
    assert planner.tp == 1
    assert planner.max_model_len == 40960
    assert planner.pp == 2
    assert len(notes) == 3
    assert planner.notes == notes


def test_token_is_not_in_the_link_nor_the_log(caplog, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    caplog.set_level(logging.DEBUG)
    planner = CapacityPlanner()
    planner.hf_token = "hf_secret_value_123"
    planner.model = "no-such-org/gated-model"

    assert "hf_token" not in planner.to_query()
    assert "hf_secret_value_123" not in " ".join(planner.to_query().values())
    assert "hf_secret_value_123" not in caplog.text


def test_uploaded_config_is_planned():
    spec_config = json.loads(
        json.dumps(
            {
                "architectures": ["LlamaForCausalLM"],
                "model_type": "llama",
                "hidden_size": 2048,
                "intermediate_size": 8192,
                "num_attention_heads": 32,
                "num_key_value_heads": 8,
                "num_hidden_layers": 16,
                "vocab_size": 128256,
                "max_position_embeddings": 8192,
                "torch_dtype": "bfloat16",
            }
        )
    )
    planner = CapacityPlanner()
    assert planner.use_uploaded_config("config.json", json.dumps(spec_config).encode())
    assert planner.model == "upload:config.json"
    assert planner.plan is not None
    assert planner.max_model_len == 8192


def test_a_broken_upload_sets_message():
    planner = CapacityPlanner()
    assert not planner.use_uploaded_config("config.json", b"{broken")
    assert "config.json" in planner.message
    assert planner.plan is not None  # the previous model's plan stays


def test_each_planner_has_its_own_state():
    a, b = CapacityPlanner(), CapacityPlanner(model="meta-llama/Llama-3.1-8B-Instruct")
    a.tp = 2
    assert b.tp == 1
    assert a.param.tp.objects != b.param.tp.objects or a.spec is not b.spec


def test_dashboard_state_never_reads_a_server_path_unless_a_script_asks(tmp_path):
    import json as _json

    from cfgexplorer.models import CapacityPlanner

    config = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": 256,
        "intermediate_size": 512,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 1000,
        "max_position_embeddings": 4096,
    }
    (tmp_path / "config.json").write_text(_json.dumps(config))
    shared = CapacityPlanner(model=str(tmp_path), gpu="H100")
    assert "path on the server" in shared.message or "path on the server" in " ".join(shared.notes)
    script = CapacityPlanner(model=str(tmp_path), gpu="H100", allow_local_paths=True)
    assert script.spec is not None
    assert script.spec.hidden_size == 256


def test_link_numbers_out_of_bounds_use_the_bound_with_a_plain_note():
    planner = CapacityPlanner(model="Qwen/Qwen3-32B")

    notes = planner.apply_query({"pp": "0", "dp": "-2", "max_model_len": "50000", "tp": "x"})

    assert (planner.pp, planner.dp, planner.max_model_len) == (1, 1, 40960)
    assert notes == [
        "tp=x in the link is not one of the choices; using 1",
        "pp=0 in the link is below 1; using 1",
        "dp=-2 in the link is below 1; using 1",
        "max_model_len=50000 in the link is above 40960 (Qwen/Qwen3-32B's maximum); using 40960",
    ]
    assert not any("parameter" in n or "CapacityPlanner" in n for n in notes)
    notes = planner.apply_query({"max_num_seqs": "lots"})
    assert notes == ["max_num_seqs=lots in the link is not a whole number; using 0"]


def test_empty_uploaded_config_is_refused_with_a_reason():
    planner = CapacityPlanner(model="Qwen/Qwen3-32B")

    assert not planner.use_uploaded_config("config.json", b"")

    assert planner.message == "config.json is empty; upload the model's config.json"
    assert planner.model == "Qwen/Qwen3-32B"


def test_budget_marks_are_the_device_total_and_the_budget():
    planner = CapacityPlanner(model="Qwen/Qwen3-32B", gpu="H100")

    mem = planner.plan.to_dict()["memory_gib"]

    assert planner.budget_marks() == {"device_total": mem["device_total"], "budget": mem["budget"]}


def test_expert_parallel_changes_the_tp_choices():
    state = CapacityPlanner(model="Qwen/Qwen3-30B-A3B-FP8", gpu="H100")
    assert state.param.tp.objects == [1, 2]
    state.enable_expert_parallel = True
    assert 8 in state.param.tp.objects
    state.tp = 8
    assert state.plan.fits
    assert state.message == ""
    state.enable_expert_parallel = False
    assert state.tp == 2
    assert "tp=8 does not work without expert parallel" in state.notes[-1]
    assert state.plan.deployment.tp == 2


def test_upload_with_a_zero_context_length_is_refused_and_the_plan_kept():
    state = CapacityPlanner()
    before = (state.model, state.plan.kv_tokens)
    config = json.loads(json.dumps(raw_files("Qwen/Qwen3-8B")["config"]))
    config["max_position_embeddings"] = 0
    assert not state.use_uploaded_config("zero.json", json.dumps(config).encode())
    assert "max_position_embeddings=0; it must be > 0" in state.message
    assert (state.model, state.plan.kv_tokens) == before


def test_a_script_can_choose_the_older_profile_and_its_serve_line_names_the_block_size():
    state = CapacityPlanner(
        model="meta-llama/Llama-3.1-8B-Instruct", profile="vllm-0.11", block_size=128
    )
    assert state.profile == "vllm-0.11"
    assert state.plan.block_size == 128
    # vLLM's own default is 16: the line must ask for the 128 the plan assumes.
    assert state.plan.to_dict()["vllm_serve"].endswith("--block-size 128")


def test_link_shows_a_slider_float_without_binary_rounding():
    state = CapacityPlanner()
    state.gpu_memory_utilization = 0.8499999999999999  # 0.9 - 0.05 on the slider
    assert state.to_query()["gpu_memory_utilization"] == "0.85"
    state.gpu_memory_utilization = 0.9125
    assert state.to_query()["gpu_memory_utilization"] == "0.9125"


def test_a_link_with_expert_parallel_keeps_the_tp_only_expert_parallel_allows():
    state = CapacityPlanner()
    notes = state.apply_query(
        {
            "model": "Qwen/Qwen3-30B-A3B-FP8",
            "gpu": "H100-SXM-80GB",
            "tp": "8",
            "enable_expert_parallel": "true",
            "max_model_len": "16384",
        }
    )
    assert notes == []
    assert state.tp == 8
    assert state.plan.deployment.tp == 8
    # The page's own link round-trips.
    again = CapacityPlanner()
    assert again.apply_query(state.to_query()) == []
    assert again.tp == 8
