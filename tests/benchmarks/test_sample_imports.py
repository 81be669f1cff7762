"""Every real sample imports with the right row count and hand-checked values.

Expected numbers were read by hand from the sample files; latencies stored in
seconds are multiplied by 1000 here to state the expected milliseconds.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pandas as pd
import pytest

from cfgexplorer.benchmarks import load_paths


def _load(path: Path) -> pd.DataFrame:
    result = load_paths([path], use_cache=False)
    assert result.skipped == []
    return result.table


def _one(path: Path) -> pd.Series:
    table = _load(path)
    assert len(table) == 1
    return table.iloc[0]


def test_every_sample_file_loads_with_expected_row_counts(samples: Path) -> None:
    result = load_paths([samples], use_cache=False)

    assert result.skipped == []
    counts = result.table.groupby("Format").size().to_dict()
    # 1 + 2 GuideLLM benchmarks, 7 inference-perf stages, 3 + 5 reports, 7 vLLM runs
    assert counts == {"guidellm": 3, "inference-perf": 7, "llm-d-report": 8, "vllm-bench": 7}
    assert len(result.loaded) == 24  # 2 + 3 + 5 + 7 + 7 files


def test_v01_example_is_pd_with_17_gpus(samples: Path) -> None:
    row = _one(samples / "llm-d-benchmark-examples/br_v0_1_example.yaml")

    assert row.Report_Version == "0.1"
    assert row.Model == "deepseek-ai/DeepSeek-R1-0528"
    assert bool(row.Is_PD) is True
    assert (row.P_Replicas, row.D_Replicas, row.P_TP, row.D_TP) == (1, 2, 1, 8)
    assert row.Num_GPUs == 17  # 1 + 8 + 8
    assert row.GPU == "H100"
    assert row.Mean_TTFT_ms == pytest.approx(0.800974442732916)  # units: ms
    assert row.Output_Token_Throughput == pytest.approx(32.544923821416)
    assert row.Thpt_per_GPU == pytest.approx(32.544923821416 / 17)


def test_v02_decode_only_stack_is_aggregated_with_16_gpus(samples: Path) -> None:
    row = _one(samples / "llm-d-benchmark-examples/br_v0_2_example.yaml")

    assert row.Report_Version == "0.2"
    assert bool(row.Is_PD) is False
    assert (row.Replicas, row.TP) == (2, 8)
    assert row.Num_GPUs == 16
    assert row.GPU == "H100"
    assert row.GPU_Raw == "NVIDIA-H100-80GB-HBM3"
    assert row.Mean_TTFT_ms == pytest.approx(36.8578234128654)  # 0.0368578234128654 s
    assert row.P90_TTFT_ms == pytest.approx(42.62634576298297)
    assert row.Output_Token_Throughput == pytest.approx(2262.448)
    assert row.Max_QPS == 10
    assert math.isinf(row.Max_Concurrency)
    assert row.Duration == pytest.approx(49.97206788184121)  # PT49.97206788184121S
    start = dt.datetime(2025, 11, 5, 18, 0, 42, tzinfo=dt.UTC).timestamp()
    assert row.Start == start
    # The EPP config weights prefix-cache 2, kv-cache 1, queue 1 (precise mode).
    assert row.Prefix_Cache_Scorer_Weight == 2
    assert row.KV_Cache_Scorer_Weight == 1
    assert row.Prefix_Cache_Scorer_Mode == "cache_tracking"


def test_v021_example_reads_as_its_own_version(samples: Path) -> None:
    row = _one(samples / "llm-d-benchmark-examples/br_v0_2_1_example.yaml")

    assert row.Report_Version == "0.2.1"
    assert row.Num_GPUs == 16
    assert row.Mean_TTFT_ms == pytest.approx(36.8578234128654)


def test_wide_ep_concurrency_run_ignores_rate_qps(samples: Path) -> None:
    row = _one(
        samples / "llm-d-guides/wide-ep-lws_deepseek-r1_32xH200/"
        "benchmark_report_v0.2,_stage_0_lifecycle_metrics.json.yaml"
    )

    assert row.Max_Concurrency == 2048
    assert math.isnan(row.Max_QPS)  # rate_qps 8192 is the request count
    assert row.Model is None  # nothing in the file names the model
    assert math.isnan(row.Num_GPUs)
    assert row.Total_Requests == 8192
    assert row.Mean_TTFT_ms == pytest.approx(21290.69098684954)
    assert row.Output_Token_Throughput == pytest.approx(22124.879416240507)


def test_qwen_report_rate_is_recovered_from_the_matching_stage(samples: Path) -> None:
    row = _one(
        samples / "llm-d-guides/inference-scheduling_qwen3-32b_16xH100/"
        "benchmark_report,_stage_2_lifecycle_metrics.json.yaml"
    )

    assert row.Model == "Qwen/Qwen3-32B"  # from args.server.model_name; scenario says unknown
    assert row.Stage == 2
    assert row.Max_QPS == 60  # stage 16 (rate 60, 25 s) matches 1500 requests in 24.98 s
    assert "contradicts" in row.Notes
    assert row.Mean_TTFT_ms == pytest.approx(120.3408618576747)
    assert row.P90_TTFT_ms == pytest.approx(180.95784459728748)
    assert row.Output_Token_Throughput == pytest.approx(13574.368209884744)
    assert (row.System_Prompt_Length, row.Question_Length) == (6000, 1200)
    assert (row.Groups, row.Prompts_Per_Group, row.Target_ISL) == (150, 5, 7200)
    assert row.ISL == 7576
    assert math.isnan(row.Num_GPUs)  # run-only report: no host block


def test_gpt_oss_report_targets_and_rate(samples: Path) -> None:
    row = _one(
        samples / "llm-d-guides/pd-disaggregation_gpt-oss-120b_16xH200/"
        "benchmark_report,_stage_0_lifecycle_metrics.json.yaml"
    )

    assert row.Model == "openai/gpt-oss-120b"
    assert row.Max_QPS == 45
    assert (row.Target_ISL, row.ISL) == (5000, 5151)
    assert row.Mean_TTFT_ms == pytest.approx(1443.9210383442265)
    assert row.Output_Token_Throughput == pytest.approx(12236.597879353767)


def test_vllm_exp7_pd_topology_comes_from_directory_names(samples: Path) -> None:
    row = _one(samples / "vllm-benchmark/llm-d-exp-7/H100/llm-d-1p1d")

    assert row.Format == "vllm-bench"
    assert row.Model == "meta-llama/Llama-3.1-8B-Instruct"
    assert row.GPU == "H100"
    assert bool(row.Is_PD) is True
    assert (row.P_Replicas, row.D_Replicas) == (1, 1)
    assert math.isnan(row.Num_GPUs)  # GPUs per pod are not in the file or the path
    assert row.Mean_TTFT_ms == pytest.approx(249.5401489152573)
    assert row.P99_TTFT_ms == pytest.approx(267.2010898106964)
    assert row.P95_TTFT_ms == pytest.approx(261.13618802046403)
    assert row.Output_Token_Throughput == pytest.approx(698.4979897701463)
    assert (row.ISL, row.OSL) == (7999, 200)  # 1599800 / 200 completed, 40000 / 200
    assert row.Max_QPS == pytest.approx(3.6)
    assert math.isinf(row.Max_Concurrency)  # null = unlimited


def test_vllm_failed_requests_show_in_success_ratio(samples: Path) -> None:
    row = _one(samples / "vllm-benchmark/llm-d-exp-7/A100/llm-d-2p1d")

    assert (row.Total_Requests, row.Failures) == (250, 10)
    assert row.Success_Ratio == pytest.approx(0.96)
    assert row.GPU == "A100"


def test_vllm_2024_layout_with_gpu_count_and_tp_from_path(samples: Path) -> None:
    row = _one(samples / "vllm-benchmark/lambdalabs/1xH100-80GB-SXM")

    assert row.Model == "neuralmagic/Meta-Llama-3.1-8B-FP8"
    assert (row.Num_GPUs, row.TP, row.GPU) == (1, 1, "H100")
    assert math.isinf(row.Max_QPS)  # "inf"
    assert row.Mean_E2EL_ms == pytest.approx(289.30587300274055)  # mean_latency_ms
    assert row.Total_Token_Throughput == pytest.approx(1267.934477037185 + 409.369641234796)
    assert row.Thpt_per_GPU == pytest.approx(409.369641234796)
    assert "streamed no tokens" in row.Notes


def test_inference_perf_stages_convert_seconds_and_read_config(samples: Path) -> None:
    table = _load(samples / "inference-perf")

    assert len(table) == 7
    assert list(table.Stage) == [0, 1, 2, 3, 4, 5, 6]
    row = table.iloc[4]
    assert row.Model == "meta-llama/Meta-Llama-3-8B-Instruct"
    assert row.Mean_TTFT_ms == pytest.approx(2616.534616005304)  # 2.616534616005304 s
    assert row.Mean_TPOT_ms == pytest.approx(9.508682655186682)
    assert row.P50_TTFT_ms == pytest.approx(3035.595149965957)  # "median"
    assert row.Output_Token_Throughput == pytest.approx(6316.805901394126)
    assert row.Max_QPS == pytest.approx(122.59)
    assert row.Total_Requests == 7355
    assert (row.System_Prompt_Length, row.Question_Length, row.Target_ISL) == (128, 64, 192)
    assert (row.Groups, row.Prompts_Per_Group) == (10, 10)  # newer key spellings
    assert row.Duration == pytest.approx(69.06510553101543)


def test_guidellm_old_layout_one_synchronous_benchmark(samples: Path) -> None:
    row = _one(samples / "guidellm/benchmarks_stripped.json")

    assert row.Model == "example_model"
    assert row.Max_Concurrency == 1  # synchronous
    assert row.Mean_TTFT_ms == pytest.approx(16.792535781860348)
    assert row.P90_TTFT_ms == pytest.approx(18.505334854125977)
    assert row.P50_TTFT_ms == pytest.approx(16.38054847717285)  # median; no p50 key
    assert row.Mean_E2EL_ms == pytest.approx(644.4743664368339)  # 0.644... s
    assert (row.Total_Requests, row.Failures) == (47, 0)
    assert (row.Target_ISL, row.Target_OSL) == (256, 128)


def test_guidellm_v2_one_row_per_rate(samples: Path) -> None:
    table = _load(samples / "guidellm/guidellm_report_v2.json")

    assert len(table) == 2
    assert list(table.Max_QPS) == [2.0, 4.0]
    assert list(table.Stage) == [0, 1]
    assert table.Mean_TTFT_ms.iloc[0] == pytest.approx(11.481165885925293)
    assert table.Mean_E2EL_ms.iloc[0] == pytest.approx(19.78909969329834)
    assert table.Output_Token_Throughput.iloc[1] == pytest.approx(6.377131566888984)
    assert table.System_Prompt_Length.iloc[0] == 16  # first prefix bucket
