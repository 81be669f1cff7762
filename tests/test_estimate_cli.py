"""``cfgexplorer estimate`` end to end: JSON keys, points, pretty output, bad input."""

from __future__ import annotations

import json

import pytest

from cfgexplorer.cli import main

BASE = [
    "estimate",
    "--model",
    "meta-llama/Meta-Llama-3-8B-Instruct",
    "--input-len",
    "1000",
    "--output-len",
    "200",
    "--gpu-list",
    "H100,A100-80GB",
]


def _run(capsys, *extra):
    status = main([*BASE, *extra])
    out = capsys.readouterr()
    return status, out.out, out.err


def test_json_answer_has_results_and_provenance(capsys):
    status, out, _ = _run(capsys, "--max-itl", "25", "--custom-gpu-cost", "H100:1.5")
    assert status == 0
    d = json.loads(out)
    assert set(d["gpu_results"]) == {"H100-SXM-80GB", "A100-SXM-80GB"}
    assert d["gpu_results"]["H100-SXM-80GB"]["cost"]["per_gpu_hour"] == 1.5
    assert d["input_parameters"]["engine"] == "vllm"
    assert d["provenance"]["model_version"]
    assert "upper edge" in d["slo_basis"]
    assert "points" not in d["gpu_results"]["H100-SXM-80GB"]


def test_concurrency_list_reports_those_points(capsys):
    status, out, _ = _run(capsys, "--concurrency", "1,8,32", "--tp", "1", "--engine", "trtllm")
    assert status == 0
    points = json.loads(out)["gpu_results"]["H100-SXM-80GB"]["points"]
    assert {p["concurrency"] for p in points} <= {1, 8, 32}
    assert {p["tp"] for p in points} == {1}


def test_request_rate_loads_every_deployment_and_names_the_arrival_model(capsys):
    status, out, _ = _run(capsys, "--request-rate", "4", "--tp", "1", "--gpu-list", "H100")
    assert status == 0
    d = json.loads(out)
    assert d["input_parameters"]["arrivals"] == "random"
    assert d["provenance"]["arrivals"].startswith("random")
    points = d["gpu_results"]["H100-SXM-80GB"]["points"]
    for p in points:
        if p["feasible"]:
            assert p["request_rate_per_s"] == pytest.approx(4.0, rel=1e-4)


def test_synchronized_arrivals_are_reported(capsys):
    status, out, _ = _run(capsys, "--arrivals", "synchronized", "--engine", "trtllm")
    assert status == 0
    d = json.loads(out)
    assert d["input_parameters"]["arrivals"] == "synchronized"
    assert d["provenance"]["arrivals"].startswith("synchronized")


def test_pretty_prints_the_table(capsys):
    status, out, _ = _run(capsys, "--pretty")
    assert status == 0
    assert "H100-SXM-80GB" in out
    assert "upper edge" in out
    assert "arrivals random" in out


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--gpu-list", "H100,NoSuchGPU"], "unknown GPU 'NoSuchGPU'"),
        (["--custom-gpu-cost", "H100=2"], "is not NAME:COST"),
        (["--custom-gpu-cost", "H100:cheap"], "not a number"),
        (["--max-gpus-per-type", "H100:x"], "not a whole number"),
        (["--input-len", "-3"], "input length must be"),
        (["--output-len", "0"], "output length must be"),
        (["--max-ttft", "-1"], "must be a finite number more than 0"),
        (["--concurrency", "1,a"], "not a list of whole numbers"),
        (["--arrivals", "synchronized", "--request-rate", "3"], "synchronized clients"),
        (["--request-rate", "0"], "--request-rate must be a finite number more than 0"),
        (["--engine-profile", "nope"], "unknown engine profile 'nope'; choose one of"),
        (["--gpu-list", ""], "--gpu-list is empty"),
        (["--gpu-list", "H100,,L4"], "has an empty name"),
        (["--concurrency", "1,,2"], "not a list of whole numbers"),
        (["--max-latency", "inf"], "--max-latency must be a finite number more than 0"),
        (["--max-ttft", "nan"], "--max-ttft must be a finite number more than 0"),
        (["--max-gpus", "100000"], "--max-gpus must be a whole number from 1 to 1024"),
    ],
)
def test_bad_input_is_one_sentence_and_exit_2(capsys, args, fragment):
    status, out, err = _run(capsys, *args)
    assert status == 2
    assert out == ""
    assert fragment in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


@pytest.mark.parametrize("flag", ["--gpu-list", "--custom-gpu-cost", "--max-gpus-per-type"])
def test_unknown_gpu_hint_fits_estimate(capsys, flag):
    value = "NoSuchGPU" if flag == "--gpu-list" else "NoSuchGPU:2"
    status, out, err = _run(capsys, flag, value)
    assert status == 2
    assert out == ""
    assert f"{flag}: unknown GPU 'NoSuchGPU'" in err
    assert "--gpu-memory" not in err  # plan's way out; estimate needs a catalog GPU
    assert "cfgexplorer gpus" in err


def test_pretty_names_the_point_behind_each_best(capsys):
    status, out, _ = _run(capsys, "--pretty", "--concurrency", "1,2", "--gpu-list", "H100")
    assert status == 0
    assert "lowest_cost_per_million_tokens: H100-SXM-80GB x1 (tp 1, concurrency 2)" in out


def _calibration_row(row_id):
    import csv

    from cfgexplorer.paths import data_dir

    with (data_dir() / "measurements" / "serving_calibration.csv").open() as f:
        return next(r for r in csv.DictReader(f) if r["id"] == row_id)


@pytest.mark.parametrize("row_id", ["trt090_02", "trt090_03"])
def test_static_batches_reproduce_the_trtllm_calibration_rows(capsys, row_id):
    row = _calibration_row(row_id)
    status = main(
        [
            "estimate",
            "--model",
            row["model_id"],
            "--input-len",
            row["input_len"],
            "--output-len",
            row["output_len"],
            "--gpu-list",
            "H100",
            "--max-gpus",
            "1",
            "--tp",
            "1",
            "--concurrency",
            row["concurrency"],
            "--quantization",
            "fp8",
            "--kv-cache-dtype",
            "fp8",
            "--engine",
            "trtllm",
            "--arrivals",
            "static",
        ]
    )
    assert status == 0
    d = json.loads(capsys.readouterr().out)
    point = d["gpu_results"]["H100-SXM-80GB"]["points"][0]
    assert d["provenance"]["arrivals"].startswith("static batch")
    # Within the calibration's own error band (TTFT and ITL within 10% on these rows).
    assert point["ttft_ms"] == pytest.approx(float(row["ttft_ms"]), rel=0.10)
    assert point["itl_ms"] == pytest.approx(float(row["itl_ms"]), rel=0.10)


def test_static_batches_refuse_a_request_rate(capsys):
    status, _, err = _run(capsys, "--arrivals", "static", "--target-rps", "5")
    assert status == 2
    assert "static clients are counted, not timed" in err


def test_workload_longer_than_the_model_context_is_refused_unless_allowed(capsys):
    status, out, err = _run(capsys, "--input-len", "9000")  # Llama 3 8B: 8,192 tokens
    assert status == 2
    assert out == ""
    assert "9000 input + 200 output tokens exceed" in err
    assert "maximum context of 8192 tokens" in err
    status, out, _ = _run(capsys, "--input-len", "9000", "--allow-long-max-model-len")
    assert status == 0
    assert json.loads(out)["gpu_results"]


def test_each_point_says_what_bounds_prefill_and_decode(capsys):
    status, out, _ = _run(capsys, "--concurrency", "1")
    assert status == 0
    point = json.loads(out)["gpu_results"]["H100-SXM-80GB"]["points"][0]
    # 1,000 prompt tokens reuse each weight byte about 1,000 times: compute-bound; one
    # decoded token reads all weights for ~2 FLOPs per 2-byte parameter: memory-bound.
    assert point["prefill_bound"] == "compute"
    assert point["decode_bound"] == "memory"
    assert 500 < point["prefill_intensity_flop_per_byte"] < 1500
    assert 0.5 < point["decode_intensity_flop_per_byte"] < 5


def test_pretty_shows_the_sizing_for_a_target_rate(capsys):
    status, out, _ = _run(capsys, "--target-rps", "20", "--pretty")
    assert status == 0
    assert "Sized for 20 requests/s" in out
    status, raw, _ = _run(capsys, "--target-rps", "20")
    sizing = json.loads(raw)["gpu_results"]["H100-SXM-80GB"]["sizing"]
    after = out[out.index("Sized for") :].splitlines()
    row = next(line for line in after if "H100-SXM-80GB" in line)
    cells = [c.strip() for c in row.split("│")]
    # GPU, TP, replicas, GPUs, conc/replica, req/s/replica, TTFT, ITL, E2E, $/h
    assert cells[2:5] == [str(sizing["tp"]), str(sizing["replicas"]), str(sizing["num_gpus"])]
    assert cells[6] == f"{sizing['request_rate_per_replica']:,.2f}"
