"""The command line: models, model, plan, profiles; JSON by default, exit status 2 on bad input."""

from __future__ import annotations

import json

import pytest

from cfgexplorer.cli import main


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_models_lists_the_catalog_as_json(capsys):
    status, out, _ = run(capsys, "models")
    rows = json.loads(out)
    assert status == 0
    assert len(rows) >= 60
    row = next(r for r in rows if r["id"] == "Qwen/Qwen3-32B")
    assert row["params_total"] == 32_762_123_264
    assert row["attention"] == {"full": 64}
    assert row["max_context"] == 40960


def test_models_search_is_case_insensitive(capsys):
    status, out, _ = run(capsys, "models", "--search", "MIXTRAL", "--json")
    ids = [r["id"] for r in json.loads(out)]
    assert status == 0
    assert ids
    assert all("mixtral" in i.lower() for i in ids)


def test_model_shows_qwen3_32b(capsys):
    status, out, _ = run(capsys, "model", "Qwen/Qwen3-32B", "--json")
    spec = json.loads(out)
    assert status == 0
    assert spec["num_layers"] == 64
    assert spec["num_kv_heads"] == 8
    assert spec["attention"].startswith("GQA")
    assert spec["params_total"] / 1e9 == pytest.approx(32.8, abs=0.05)
    assert spec["source"] == "catalog"
    assert spec["params_by_module"]["mlp"] == 64 * 3 * 5120 * 25600


def test_model_pretty_has_a_module_breakdown(capsys):
    status, out, _ = run(capsys, "model", "mistralai/Mixtral-8x7B-v0.1", "--pretty")
    assert status == 0
    assert "experts" in out
    assert "46,702,792,704" in out


def test_plan_json_has_the_documented_keys(capsys):
    status, out, _ = run(
        capsys,
        "plan",
        "--model",
        "Qwen/Qwen3-32B",
        "--gpu",
        "H100",
        "--tp",
        "2",
        "--max-model-len",
        "16000",
    )
    plan = json.loads(out)
    assert status == 0
    assert plan["fits"] is True
    assert plan["memory_gib"]["device_total"] == 79.19
    assert plan["kv_cache"]["bytes_per_token"] == 64 * 2 * 4 * 128 * 2
    assert plan["engine_profile"] == "vllm-0.19"
    assert "--tensor-parallel-size" in plan["vllm_args"]


def test_plan_aliases_of_the_original_tool(capsys):
    status, out, _ = run(
        capsys,
        "plan",
        "--model",
        "meta-llama/Llama-3.1-8B-Instruct",
        "--tensor-parallel-size",
        "2",
        "--gpu-mem-util",
        "0.95",
        "--max-model-len",
        "8192",
    )
    plan = json.loads(out)
    assert status == 0
    assert plan["deployment"]["tp"] == 2
    assert plan["memory_gib"]["budget"] == pytest.approx(0.95 * 79.19, abs=0.001)
    # vLLM 0.19 printed 63.76 GiB and 1,044,688 tokens for this run
    assert plan["memory_gib"]["kv_pool"] == pytest.approx(63.76, abs=0.5)
    assert plan["kv_cache"]["tokens"] == pytest.approx(1_044_688, rel=0.03)


def test_plan_pretty_reads_like_vllm_log(capsys):
    status, out, _ = run(
        capsys,
        "plan",
        "--model",
        "meta-llama/Llama-3.1-8B-Instruct",
        "--max-model-len",
        "8192",
        "--pretty",
    )
    assert status == 0
    assert "Model loading took" in out
    assert "GPU KV cache size:" in out
    assert "Maximum concurrency for 8,192 tokens per request" in out
    assert "[WWW" in out


def test_plan_custom_gpu_by_memory(capsys):
    status, out, _ = run(
        capsys, "plan", "--model", "Qwen/Qwen3-8B", "--gpu-memory", "48", "--max-model-len", "8192"
    )
    assert status == 0
    assert json.loads(out)["memory_gib"]["device_total"] == 48


def test_plan_output_file(capsys, tmp_path):
    target = tmp_path / "plan.json"
    status, out, _ = run(
        capsys,
        "plan",
        "--model",
        "Qwen/Qwen3-8B",
        "--max-model-len",
        "4096",
        "--output",
        str(target),
    )
    assert status == 0
    assert out == ""
    assert json.loads(target.read_text())["model"] == "Qwen/Qwen3-8B"


def test_plan_show_possible_tp_lists_reasons(capsys):
    status, out, _ = run(
        capsys, "plan", "--model", "Qwen/Qwen3-14B", "--max-model-len", "4096", "--show-possible-tp"
    )
    tp = json.loads(out)["valid_tp"]
    assert status == 0
    assert 5 not in tp["valid"]
    assert "5" in tp["rejected"]


def test_plan_pretty_lists_rejected_tp_sizes_grouped_by_reason(capsys):
    status, out, _ = run(
        capsys, "plan", "--model", "Qwen/Qwen3-30B-A3B-FP8", "--show-possible-tp", "--pretty"
    )
    assert status == 0
    assert "valid TP sizes: 1, 2\n" in out
    # 32 heads: every size that does not divide 32, on one line with the reason.
    assert "rejected 3, 5, 6, 7, 9, 10," in out
    assert ": 32 attention heads are not divisible by TP" in out
    # The 768-wide experts cut into FP8 blocks of 128 columns: 4 ranks get 192 each.
    assert "rejected 4: each rank's share of width 768 (192) is not a multiple" in out


def test_plan_batch_size_that_does_not_fit_is_a_problem(capsys):
    status, out, _ = run(
        capsys,
        "plan",
        "--model",
        "Qwen/Qwen3-32B",
        "--max-model-len",
        "32768",
        "--batch-size",
        "50",
    )
    plan = json.loads(out)
    assert status == 0
    assert plan["fits"] is False
    assert any("fewer than the 50" in p for p in plan["problems"])


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--gpu", "H1000"], "unknown GPU"),
        (["--tp", "0"], "must be >= 1"),
        (["--tp", "two"], "not a whole number"),
        (["--tp", "3"], "valid sizes"),
        (["--gpu-memory-utilization", "1.5"], "outside (0, 1]"),
        (["--max-model-len", "999999"], "allow-long-max-model-len"),
        (["--gpu", "T4", "--kv-cache-dtype", "fp8"], "fp8 KV cache"),
        (["--engine-profile", "vllm-9"], "unknown engine profile"),
        (["--gpu-memory", "-4"], "must be a finite number > 0"),
        (["--gpu-memory", "inf"], "must be a finite number > 0"),
        (["--max-num-seqs", "2000", "--max-num-batched-tokens", "1000"], "at least max_num_seqs"),
        (["--gpu", "T4", "--dtype", "bfloat16"], "cannot run bfloat16"),
        (["--gpu", "T4", "--quantization", "fp8"], "8-bit quantized weights"),
        (["--auto-parallel", "--tp", "4"], "drop --tp"),
        (["--output", "/nonexistent/dir/plan.json"], "cannot write"),
        (["--gpu-memory", "1e30"], "more than any accelerator has"),
        (["--gpu", ""], "--gpu is empty"),
        (["--block-size", "7"], "use 1, 8, 16 (default), 32, 64, 128 or 256"),
        (["--max-num-batched-tokens", "99999999999"], "is above 100,000,000"),
        (["--output", ""], "--output needs a file name"),
    ],
)
def test_plan_bad_input_is_one_line_and_exit_2(capsys, argv, fragment):
    status, out, err = run(capsys, "plan", "--model", "Qwen/Qwen3-32B", *argv)
    assert status == 2
    assert out == ""
    assert fragment in err
    assert len(err.strip().splitlines()) == 1


def test_unknown_model_offline_is_one_line(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("CFGEXPLORER_CACHE", str(tmp_path))
    status, _, err = run(capsys, "model", "some-org/not-in-catalog")
    assert status == 2
    assert "not in the bundled catalog and the Hub cannot be reached" in err


def test_profiles_lists_both_releases(capsys):
    status, out, _ = run(capsys, "profiles")
    names = [p["name"] for p in json.loads(out)]
    assert status == 0
    assert names == ["vllm-0.19", "vllm-0.11"]


def test_no_command_prints_help_and_exits_2(capsys):
    status, _, err = run(capsys)
    assert status == 2
    assert "usage" in err


def test_plan_auto_parallel_picks_the_fewest_gpus(capsys):
    status, out, _ = run(
        capsys,
        "plan",
        "--model",
        "meta-llama/Llama-3.1-70B",
        "--max-model-len",
        "8192",
        "--batch-size",
        "8",
        "--auto-parallel",
    )
    plan = json.loads(out)
    assert status == 0
    assert plan["deployment"]["num_gpus"] == 3
    assert plan["kv_cache"]["max_concurrency"] >= 8
    assert plan["notes"][0].startswith("--auto-parallel chose")


def test_plan_auto_parallel_that_cannot_fit_is_exit_2(capsys):
    status, out, err = run(
        capsys,
        "plan",
        "--model",
        "deepseek-ai/DeepSeek-V3",
        "--max-model-len",
        "8192",
        "--auto-parallel",
        "--max-gpus",
        "8",
    )
    assert status == 2
    assert out == ""
    assert "no TP x PP up to 8" in err


def test_output_file_gets_json_even_with_pretty(capsys, tmp_path):
    target = tmp_path / "p.json"
    status, out, _ = run(
        capsys,
        "plan",
        "--model",
        "Qwen/Qwen3-8B",
        "--max-model-len",
        "4096",
        "--pretty",
        "--output",
        str(target),
    )
    assert status == 0
    assert "Model loading took" in out
    assert json.loads(target.read_text())["model"] == "Qwen/Qwen3-8B"


def test_output_dash_means_stdout(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, out, _ = run(capsys, "gpus", "--output", "-")
    assert status == 0
    assert json.loads(out)
    assert not (tmp_path / "-").exists()


def test_quantized_checkpoint_refuses_another_runtime_quantization(capsys):
    status, _out, err = run(
        capsys,
        "plan",
        "--model",
        "LDCC/Qwen2.5-72B-Instruct-ko-AWQ",
        "--tp",
        "2",
        "--quantization",
        "fp8",
    )
    assert status == 2
    assert "already quantized (awq)" in err


def test_auto_parallel_keeps_tp_inside_a_server(capsys):
    status, out, _ = run(
        capsys,
        "plan",
        "--model",
        "meta-llama/Llama-3.1-405B",
        "--max-model-len",
        "8192",
        "--auto-parallel",
    )
    dep = json.loads(out)["deployment"]
    assert status == 0
    assert dep["tp"] <= 8
    assert dep["tp"] * dep["pp"] == dep["num_gpus"]


def test_models_search_matches_every_word_across_fields(capsys):
    _, out, _ = run(capsys, "models", "--search", "llama 70b")
    ids = [r["id"] for r in json.loads(out)]
    assert "meta-llama/Llama-3.1-70B" in ids
    _, out, _ = run(capsys, "models", "--search", "mamba")
    assert {r["id"] for r in json.loads(out)} >= {"nvidia/Nemotron-H-56B-Base-8K"}


def test_plan_of_a_local_config_serves_the_folder_not_a_bare_name(capsys, tmp_path, monkeypatch):
    from cfgexplorer.catalog import raw_files

    folder = tmp_path / "qwen3 8b copy"  # a space: the serve line must quote the path
    folder.mkdir()
    config = raw_files("Qwen/Qwen3-8B")["config"]
    config.pop("_name_or_path", None)
    (folder / "config.json").write_text(json.dumps(config))
    monkeypatch.chdir(folder)
    status, out, _ = run(capsys, "plan", "--model", "config.json", "--max-model-len", "4096")
    assert status == 0
    d = json.loads(out)
    assert d["model"] == "qwen3 8b copy"
    assert d["vllm_serve"].startswith(f"vllm serve '{folder.resolve()}' --max-model-len 4096")


def test_long_context_override_is_an_environment_variable_before_vllm_serve(capsys):
    status, out, _ = run(
        capsys,
        "plan",
        "--model",
        "meta-llama/Llama-3.1-8B-Instruct",
        "--max-model-len",
        "131073",
        "--allow-long-max-model-len",
    )
    assert status == 0
    d = json.loads(out)
    assert d["vllm_env"] == {"VLLM_ALLOW_LONG_MAX_MODEL_LEN": "1"}
    assert d["vllm_serve"] == (
        "VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 vllm serve meta-llama/Llama-3.1-8B-Instruct "
        "--max-model-len 131073 --gpu-memory-utilization 0.9"
    )
    assert all(not a.startswith("#") for a in d["vllm_args"])


def test_expert_parallel_on_a_dense_model_is_a_note_not_an_error(capsys):
    status, out, _ = run(capsys, "plan", "--model", "Qwen/Qwen3-32B", "--enable-expert-parallel")
    assert status == 0
    d = json.loads(out)
    assert any("--enable-expert-parallel has no effect" in n for n in d["notes"])
    assert "--enable-expert-parallel" in d["vllm_serve"]


def test_int8_w8a8_runs_on_turing_but_fp8_weights_do_not(capsys):
    model = "RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w8a8"
    status, out, _ = run(capsys, "plan", "--model", model, "--gpu", "T4", "--max-model-len", "4096")
    assert status == 0
    assert json.loads(out)["fits"]
    status, _, err = run(capsys, "plan", "--model", "Qwen/Qwen3-30B-A3B-FP8", "--gpu", "T4")
    assert status == 2
    assert "cannot run 8-bit quantized weights" in err


def test_largest_length_that_fits_follows_an_allowed_long_context(capsys):
    status, out, _ = run(
        capsys,
        "plan",
        "--model",
        "Qwen/Qwen3-8B",
        "--max-model-len",
        "5000000",
        "--allow-long-max-model-len",
    )
    d = json.loads(out)
    assert status == 0
    assert not d["fits"]
    # Above the model's 40,960: the KV pool, not the config, is what bounds it now.
    assert 40960 < d["max_model_len_that_fits"] < 5000000
    assert f"the largest length that fits is {d['max_model_len_that_fits']}" in d["problems"][0]
