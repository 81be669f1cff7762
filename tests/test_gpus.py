"""GPU catalog, lookups, custom GPUs, reference costs and ``cfgexplorer gpus``."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from cfgexplorer import gpus
from cfgexplorer.cli import main
from cfgexplorer.errors import InvalidDeploymentError, UnknownGPUError, UserError

REQUIRED_NAMES = [
    "T4",
    "A10G",
    "L4",
    "L40",
    "L40S",
    "A100-SXM-40GB",
    "A100-SXM-80GB",
    "A100-PCIE-40GB",
    "A100-PCIE-80GB",
    "H100-SXM",
    "H100-PCIe",
    "H100-NVL",
    "H200",
    "H20",
    "B200",
    "B300",
    "GB200",
    "GB300",
    "RTX 4090",
    "RTX 5090",
    "RTX 6000 Ada",
    "RTX PRO 6000",
    "MI250X",
    "MI300X",
    "MI325X",
    "MI355X",
    "Gaudi 3",
]

GENERATIONS = {
    "turing",
    "ampere",
    "ada",
    "hopper",
    "blackwell",
    "cdna2",
    "cdna3",
    "cdna4",
    "gaudi3",
}

NUMERIC_FIELDS = (
    "bf16_tflops",
    "fp16_tflops",
    "fp8_tflops",
    "fp4_tflops",
    "int8_tops",
    "memory_bandwidth_gbps",
    "interconnect_gbps",
    "tdp_watts",
    "memory_gb_nominal",
    "memory_gib_reported",
)


# ------------------------------------------------------------------ catalog contents


def test_catalog_has_at_least_25_gpus_with_unique_names():
    names = gpus.gpu_names()
    assert len(names) >= 25
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("name", REQUIRED_NAMES)
def test_required_gpu_is_in_catalog(name):
    assert gpus.get_gpu(name).name


@pytest.mark.parametrize("gpu", gpus.list_gpus(), ids=lambda g: g.name)
def test_every_entry_is_complete_and_physically_plausible(gpu):
    assert gpu.vendor in {"nvidia", "amd", "intel"}
    assert gpu.generation in GENERATIONS
    assert gpu.memory_type
    assert gpu.interconnect_kind
    assert len(gpu.source) > 40
    assert isinstance(gpu.fp8_kv_cache, bool)
    assert gpu.gpus_per_server in {1, 2, 4, 8}

    # Vendors label device memory in binary units ("80GB" = 80 GiB of HBM),
    # and the driver keeps a little back: reported sits just under the label.
    assert 0.9 * gpu.memory_gb_nominal < gpu.memory_gib_reported < gpu.memory_gb_nominal

    for name in NUMERIC_FIELDS:
        value = getattr(gpu, name)
        assert value is None or (math.isfinite(value) and value > 0), name
    assert gpu.memory_bandwidth_gbps > 100
    assert gpu.interconnect_gbps >= 16
    assert 50 <= gpu.tdp_watts <= 1500
    assert gpu.bf16_tflops or gpu.fp16_tflops

    # Lower precision never runs slower than higher precision on the same part.
    sixteen = gpu.bf16_tflops or gpu.fp16_tflops
    if gpu.fp8_tflops:
        assert gpu.fp8_tflops >= sixteen
    if gpu.fp4_tflops:
        assert gpu.fp4_tflops >= (gpu.fp8_tflops or sixteen)

    if gpu.vendor == "nvidia":
        assert gpu.compute_capability is not None
        assert gpu.fp8_kv_cache == (float(gpu.compute_capability) >= 8.0)

    for estimated in gpu.estimates:
        assert hasattr(gpu, estimated), estimated


def test_no_name_or_alias_resolves_to_two_gpus():
    seen: dict[str, str] = {}
    for gpu in gpus.list_gpus():
        for label in (gpu.name, *gpu.aliases):
            key = gpus.normalize_name(label)
            assert seen.setdefault(key, gpu.name) == gpu.name, label
            assert gpus.get_gpu(label) is gpu


def test_to_dict_is_json_and_carries_units_in_keys():
    record = gpus.get_gpu("H100").to_dict()
    json.dumps(record)
    for key in ("memory_gib_reported", "memory_gb_nominal", "bf16_tflops", "fp8_tflops"):
        assert key in record
    assert record["aliases"][0] == "H100"


# ------------------------------------------------------------------ lookups


def test_h100_is_the_sxm_part_reporting_79_19_gib():
    h100 = gpus.get_gpu("H100")
    assert h100.name == "H100-SXM-80GB"
    assert h100.memory_gib_reported == pytest.approx(79.19)
    assert h100.interconnect_kind == "NVLink4"


def test_a100_is_the_80gb_sxm_part():
    a100 = gpus.get_gpu("A100")
    assert a100.name == "A100-SXM-80GB"
    assert a100.memory_gib_reported == pytest.approx(79.25)


def test_h200_reports_about_139_8_gib():
    assert gpus.get_gpu("H200").memory_gib_reported == pytest.approx(139.8, abs=0.1)


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("h100 sxm", "H100-SXM-80GB"),
        ("H100_SXM", "H100-SXM-80GB"),
        ("nvidia-h100-80gb-hbm3", "H100-SXM-80GB"),
        ("NVIDIA-H100-80GB-HBM3", "H100-SXM-80GB"),
        ("H100-80GB", "H100-SXM-80GB"),
        ("H100-SXM5-80GB", "H100-SXM-80GB"),
        ("H100-80GB-SXM", "H100-SXM-80GB"),
        ("A100-SXM4-80GB", "A100-SXM-80GB"),
        ("H200-SXM-141GB", "H200-SXM-141GB"),
        ("NVIDIA L40S", "L40S-48GB"),
        ("Tesla T4", "T4-16GB"),
        ("NVIDIA GeForce RTX 4090", "RTX-4090-24GB"),
        ("AMD-MI300X-192GB", "MI300X-192GB"),
        ("NVIDIA-B200-SXM-192GB", "B200-SXM-180GB"),
        ("NVIDIA-GB200-NVL-192GB", "GB200-186GB"),
        ("h100 pcie", "H100-PCIE-80GB"),
    ],
)
def test_benchmark_report_and_smi_names_resolve(label, expected):
    assert gpus.get_gpu(label).name == expected


def test_unknown_gpu_lists_close_matches_in_one_sentence():
    with pytest.raises(UnknownGPUError) as excinfo:
        gpus.get_gpu("H1000")
    message = str(excinfo.value)
    assert "'H1000'" in message
    assert "H100-SXM-80GB" in message
    assert "--gpu-memory" in message
    assert "\n" not in message


def test_unknown_gpu_without_close_matches_still_says_what_to_do():
    with pytest.raises(UnknownGPUError, match="cfgexplorer gpus"):
        gpus.get_gpu("zzzz")


# ------------------------------------------------------------------ custom GPU


def test_custom_gpu_is_memory_only():
    gpu = gpus.custom_gpu(48)
    assert gpu.custom
    assert gpu.memory_gib_reported == 48.0
    assert gpu.memory_bytes_reported == 48 * 1024**3
    assert gpu.bf16_tflops is None
    assert gpu.memory_bandwidth_gbps is None
    assert gpu.fp8_kv_cache is None
    assert gpu.name == "custom-48GiB"
    assert gpu.notes
    assert gpus.peak_tflops(gpu, "bf16") is None


def test_custom_gpu_keeps_a_given_name():
    assert gpus.custom_gpu(20.5, name="my-card").name == "my-card"


@pytest.mark.parametrize("memory", [0, -1, float("nan"), float("inf"), "lots"])
def test_custom_gpu_rejects_non_positive_memory(memory):
    with pytest.raises(InvalidDeploymentError, match="GPU memory"):
        gpus.custom_gpu(memory)


# ------------------------------------------------------------------ peak TFLOPS


def test_peak_tflops_uses_native_rates_where_supported():
    h100 = gpus.get_gpu("H100")
    assert gpus.peak_tflops(h100, "bfloat16") == pytest.approx(989.4)
    assert gpus.peak_tflops(h100, "fp8") == pytest.approx(1978.9)
    assert gpus.peak_tflops(gpus.get_gpu("B200"), "nvfp4") == 9000


def test_fp8_on_ampere_runs_at_the_16_bit_rate():
    a100 = gpus.get_gpu("A100")
    assert gpus.peak_tflops(a100, "fp8") == a100.bf16_tflops


def test_fp4_without_fp4_tensor_cores_runs_at_the_16_bit_rate():
    h100 = gpus.get_gpu("H100")
    assert gpus.peak_tflops(h100, "mxfp4") == h100.bf16_tflops


def test_bf16_on_t4_runs_as_fp16():
    assert gpus.peak_tflops(gpus.get_gpu("T4"), "bf16") == 65


def test_unknown_dtype_is_a_user_error():
    with pytest.raises(InvalidDeploymentError, match="int3"):
        gpus.peak_tflops(gpus.get_gpu("H100"), "int3")


# ------------------------------------------------------------------ costs


def test_every_gpu_has_a_reference_cost():
    for gpu in gpus.list_gpus():
        cost = gpus.reference_cost_per_hour(gpu.name)
        assert cost is not None, gpu.name
        assert cost > 0, gpu.name


def test_costs_are_labelled_as_relative_reference_values():
    assert "relative" in gpus.COST_LABEL
    assert "not prices" in gpus.COST_DISCLAIMER


def test_reference_cost_resolves_aliases():
    assert gpus.reference_cost_per_hour("h100") == gpus.reference_cost_per_hour("H100-SXM-80GB")


def test_custom_costs_override_reference_values_by_alias():
    costs = gpus.resolve_costs({"H100": 2.5, "a100-sxm4-80gb": 0})
    assert costs["H100-SXM-80GB"] == 2.5
    assert costs["A100-SXM-80GB"] == 0
    assert costs["H200-SXM-141GB"] == gpus.reference_cost_per_hour("H200")
    # The reference table itself is untouched.
    assert gpus.reference_cost_per_hour("H100") != 2.5
    assert gpus.cost_provenance("H100", {"h100": 2.5}) == "custom"
    assert gpus.cost_provenance("H200", {"h100": 2.5}) == "reference"


def test_resolve_costs_rejects_negative_cost_and_unknown_gpu():
    with pytest.raises(InvalidDeploymentError, match="zero or more"):
        gpus.resolve_costs({"H100": -1})
    with pytest.raises(UnknownGPUError):
        gpus.resolve_costs({"H1000": 1})


def test_parse_cost_override_returns_canonical_name():
    assert gpus.parse_cost_override("H100:2.5") == ("H100-SXM-80GB", 2.5)
    assert gpus.parse_cost_override(" nvidia-h100-80gb-hbm3 : 3 ") == ("H100-SXM-80GB", 3.0)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("H100", "NAME:COST"),
        ("H100:", "NAME:COST"),
        (":2.5", "NAME:COST"),
        ("H100:cheap", "not a number"),
        ("H100:-1", "zero or more"),
        ("H100:nan", "zero or more"),
    ],
)
def test_malformed_cost_override_is_one_clear_sentence(text, pattern):
    with pytest.raises(InvalidDeploymentError, match=pattern) as excinfo:
        gpus.parse_cost_override(text)
    assert "\n" not in str(excinfo.value)


def test_cost_override_for_unknown_gpu_is_a_user_error():
    with pytest.raises(UserError, match="unknown GPU 'H1000'"):
        gpus.parse_cost_override("H1000:2")


# ------------------------------------------------------------------ CLI


def test_cli_gpus_lists_the_catalog_as_json(capsys):
    assert main(["gpus"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["count"] == len(gpus.list_gpus())
    assert result["costs"]["label"] == "relative reference values"
    h100 = next(g for g in result["gpus"] if g["name"] == "H100-SXM-80GB")
    assert h100["memory_gib_reported"] == 79.19
    assert h100["reference_cost_per_hour"] == gpus.reference_cost_per_hour("H100")


def test_cli_gpus_search_filters_by_name_and_generation(capsys):
    assert main(["gpus", "--search", "mi3"]) == 0
    names = [g["name"] for g in json.loads(capsys.readouterr().out)["gpus"]]
    assert names == ["MI300X-192GB", "MI325X-256GB", "MI355X-288GB"]

    assert main(["gpus", "--search", "hopper"]) == 0
    names = [g["name"] for g in json.loads(capsys.readouterr().out)["gpus"]]
    assert "H20-96GB" in names
    assert "A100-SXM-80GB" not in names


def test_cli_gpus_search_without_match_is_an_empty_list(capsys):
    assert main(["gpus", "--search", "no-such-gpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["count"] == 0
    assert any("no GPU matches" in note for note in result["notes"])


def test_cli_gpus_pretty_prints_a_table(capsys):
    assert main(["gpus", "--pretty", "--search", "h100"]) == 0
    out = capsys.readouterr().out
    assert "H100-SXM-80GB" in out
    assert "79.19" in out
    assert "relative reference values" in out


def test_cli_gpus_output_file(tmp_path, capsys):
    target = tmp_path / "gpus.json"
    assert main(["gpus", "--output", str(target)]) == 0
    assert capsys.readouterr().out == ""
    assert json.loads(target.read_text())["count"] >= 25


def test_cli_gpus_bad_flag_exits_2(capsys):
    assert main(["gpus", "--no-such-flag"]) == 2
    assert "error" in capsys.readouterr().err


def test_gpus_module_does_not_import_heavy_libraries():
    code = (
        "import sys; import cfgexplorer.gpus, cfgexplorer.commands.gpus; "
        "heavy = {'panel', 'param', 'holoviews', 'pandas', 'transformers', 'rich'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
