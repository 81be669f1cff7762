"""The bundled demo sweep loads completely, with GPU counts for P/D and aggregate runs."""

from __future__ import annotations

from cfgexplorer.benchmarks import load_paths
from cfgexplorer.paths import data_dir


def test_demo_sweep_has_gpu_counts_for_pd_and_aggregate_runs() -> None:
    result = load_paths([data_dir() / "benchmarks"], use_cache=False)
    table = result.table.set_index("Directory_Base")

    assert result.skipped == []
    assert len(table) == 15
    assert table.loc["llm-d-1p1d", "Num_GPUs"] == 2  # 1 prefill + 1 decode pod, TP1
    assert table.loc["vllm-2replicas", "Num_GPUs"] == 2
    assert set(table.loc["llm-d-2p1d", "Num_GPUs"]) == {3}  # on H100 and on A100
    assert table.loc["vllm-3replicas", "Num_GPUs"] == 3
    assert table.loc["pd-disaggregation_gpt-oss-120b_16xH200", "Num_GPUs"] == 16  # 8x1 + 2x4
    assert table.loc["inference-scheduling_qwen3-32b_16xH100", "Num_GPUs"] == 16  # 8 x TP2
    assert bool(table.loc["llm-d-1p1d", "Is_PD"]) is True
    assert bool(table.loc["vllm-2replicas", "Is_PD"]) is False
    assert table.Thpt_per_GPU.notna().all()
