"""Unit conversions, percentile spellings, GPU names and P/D versus aggregate GPU counts."""

from __future__ import annotations

import math
from typing import Any

import pytest

from cfgexplorer.benchmarks import columns
from cfgexplorer.benchmarks.common import (
    iso_duration_seconds,
    latency_factor,
    normalise_gpu,
    put_stats,
)
from cfgexplorer.benchmarks.llmd_report import import_report
from cfgexplorer.errors import ReportFileError


def test_seconds_become_milliseconds_for_every_statistic() -> None:
    row: dict[str, Any] = {}
    put_stats(row, "TTFT", {"units": "s", "mean": 0.5, "p0p1": 0.1, "p99p9": 2.0}, 1000.0)

    assert row == {"Mean_TTFT_ms": 500.0, "P0.1_TTFT_ms": 100.0, "P99.9_TTFT_ms": 2000.0}


@pytest.mark.parametrize(
    ("units", "factor"), [("ms", 1), ("s", 1000), ("ms/token", 1), ("s/token", 1000)]
)
def test_latency_factors(units: str, factor: float) -> None:
    assert latency_factor(units, "x") == factor


def test_unknown_latency_unit_is_an_error() -> None:
    with pytest.raises(ReportFileError, match="unknown unit 'fortnights'"):
        latency_factor("fortnights", "time_to_first_token")


def test_guidellm_and_inference_perf_percentile_spellings() -> None:
    row: dict[str, Any] = {}
    guidellm = {"median": 5, "percentiles": {"p001": 1, "p01": 2, "p05": 3, "p999": 9}}
    put_stats(row, "ITL", guidellm, 1.0)
    put_stats(row, "E2EL", {"p0.1": 1, "p99.9": 9, "median": 5}, 1000.0)

    assert row["P0.1_ITL_ms"] == 1
    assert row["P1_ITL_ms"] == 2
    assert row["P5_ITL_ms"] == 3
    assert row["P99.9_ITL_ms"] == 9
    assert row["P50_ITL_ms"] == 5
    assert row["P0.1_E2EL_ms"] == 1000
    assert row["P99.9_E2EL_ms"] == 9000


@pytest.mark.parametrize(
    ("raw", "short"),
    [
        ("NVIDIA-H100-80GB-HBM3", "H100"),
        ("nvidia-h100-80gb", "H100"),
        ("nvidia.com/gpu.product:NVIDIA-H200", "H200"),
        ("H100-80GB-SXM", "H100"),
        ("NVIDIA-GB200", "GB200"),
        ("TPU v7x", "TPU v7x"),
        ("L40S", "L40S"),
    ],
)
def test_gpu_names_are_normalised(raw: str, short: str) -> None:
    assert normalise_gpu(raw) == short


def test_iso_durations() -> None:
    assert iso_duration_seconds("PT49.5S") == 49.5
    assert iso_duration_seconds("PT1H2M3S") == 3723
    assert math.isnan(iso_duration_seconds("soon"))


def _v01(types: list[str], entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "version": "0.1",
        "scenario": {
            "model": {"name": "m"},
            "load": {"name": "inference-perf", "type": "x", "args": {}},
            "host": {"type": types, "accelerator": entries},
        },
        "metrics": {
            "time": {"duration": 10.0},
            "requests": {
                "total": 10,
                "input_length": {"units": "count", "mean": 100},
                "output_length": {"units": "count", "mean": 10},
            },
            "latency": {"time_to_first_token": {"units": "s", "mean": 0.25}},
            "throughput": {"total_tokens_per_sec": 110.0, "output_tokens_per_sec": 10.0},
        },
    }


def _acc(tp: int, count: int, dp: int = 1, pp: int = 1) -> dict[str, Any]:
    return {"model": "H100", "count": count, "parallelism": {"tp": tp, "dp": dp, "pp": pp}}


def test_v01_aggregate_counts_every_replica_entry() -> None:
    row = import_report(_v01(["replica"] * 4, [_acc(2, 2)] * 4), "0.1")[0]

    assert row["Is_PD"] is False
    assert (row["Replicas"], row["TP"], row["Num_GPUs"]) == (4, 2, 8)
    assert row["Mean_TTFT_ms"] == 250.0
    assert row["Thpt_per_GPU"] == pytest.approx(10.0 / 8)


def test_v01_pd_sums_both_roles_and_pp_multiplies() -> None:
    doc = _v01(["prefill", "prefill", "decode"], [_acc(1, 1), _acc(1, 1), _acc(4, 4, pp=2)])

    row = import_report(doc, "0.1")[0]

    assert row["Is_PD"] is True
    assert (row["P_Replicas"], row["D_Replicas"]) == (2, 1)
    assert row["Num_GPUs"] == 1 + 1 + 8  # max(count 4, tp 4 x pp 2) for decode


def test_v01_decode_only_is_aggregated_serving() -> None:
    row = import_report(_v01(["decode", "decode"], [_acc(4, 4)] * 2), "0.1")[0]

    assert row["Is_PD"] is False
    assert (row["Replicas"], row["Num_GPUs"]) == (2, 8)
    assert "decode-only" in row["Notes"]


def test_v01_empty_host_lists_leave_topology_unknown() -> None:
    row = import_report(_v01([], []), "0.1")[0]

    assert "Num_GPUs" not in row
    assert "Is_PD" not in row


def test_column_table_gives_directions_and_units() -> None:
    assert columns.direction("P90_TTFT_ms") == "lower"
    assert columns.direction("Thpt_per_GPU") == "higher"
    assert columns.direction("Num_GPUs") == "lower"
    assert columns.BY_NAME["Mean_TPOT_ms"].unit == "ms/token"
    assert len(set(columns.COLUMN_NAMES)) == len(columns.COLUMN_NAMES)
    for name in ("Model", "GPU", "Num_GPUs", "TP", "P_TP", "D_TP", "Is_PD", "Max_QPS"):
        assert name in columns.BY_NAME
