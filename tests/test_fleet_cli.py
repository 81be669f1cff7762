"""``cfgexplorer fleet``: exit statuses, JSON keys, --output, --csv-dir, --pretty, --strict."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from cfgexplorer.cli import main
from cfgexplorer.paths import data_dir

EXAMPLE = data_dir() / "examples" / "fleet.yaml"

# A: TP4 x DP3, B: TP2 x PP2, C: TP8, all small manual entries on 8-GPU H100 servers.
HAND_CHECKED = """\
infrastructure: {gpus_per_server: 8, pue: 1.5, electricity_price_per_kwh: 0.2}
inventory: {H100: 30}
models:
  - {name: A, params_billion: 1, gpu: H100, tp: 4, dp: 3}
  - {name: B, params_billion: 1, gpu: H100, tp: 2, pp: 2}
  - {name: C, params_billion: 1, gpu: H100, tp: 8}
"""


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["fleet", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def _write(tmp_path: Path, text: str, name: str = "fleet.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_example_fleet_json(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = _run(capsys, str(EXAMPLE))
    result = json.loads(out)

    assert status == 0
    assert err == ""
    assert list(result) == [
        "name",
        "models",
        "procurement",
        "servers",
        "totals",
        "errors",
        "warnings",
        "assumptions",
    ]
    for key in (
        "gpus_needed",
        "gpus_to_buy",
        "servers",
        "servers_lower_bound",
        "gpu_power_kw",
        "facility_power_kw",
        "annual_energy_kwh",
    ):
        assert isinstance(result["totals"][key], int | float)
    for server in result["servers"]:
        assert server["gpu"]
        assert len(server["slots"]) == server["gpus_per_server"]
    assert result["errors"] == []


def test_hand_checked_fleet_through_the_cli(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    status, out, _ = _run(capsys, _write(tmp_path, HAND_CHECKED))
    totals = json.loads(out)["totals"]

    # 24 GPUs in 3 servers (lower bound 3); 30 owned -> nothing to buy, 6 idle and unpowered.
    # Power 24 x 0.7 = 16.8 kW; x 1.5 = 25.2 kW; x 8760 = 220,752 kWh; x 0.2 = 44,150.4.
    assert status == 0
    assert (totals["gpus_needed"], totals["gpus_to_buy"]) == (24, 0)
    assert (totals["servers"], totals["servers_lower_bound"]) == (3, 3)
    assert totals["gpu_power_kw"] == pytest.approx(16.8)
    assert totals["facility_power_kw"] == pytest.approx(25.2)
    assert totals["annual_energy_kwh"] == pytest.approx(220_752)
    assert totals["annual_energy_cost"] == pytest.approx(44_150.4)


def test_output_writes_the_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "plan.json"

    status, out, _ = _run(capsys, _write(tmp_path, HAND_CHECKED), "--output", str(target))

    assert status == 0
    assert out == ""
    assert json.loads(target.read_text())["totals"]["servers"] == 3


def test_csv_dir_writes_one_csv_per_table_and_the_summary(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out_dir = tmp_path / "exports"

    status, _, _ = _run(capsys, _write(tmp_path, HAND_CHECKED), "--csv-dir", str(out_dir))

    assert status == 0
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "models.csv",
        "procurement.csv",
        "servers.csv",
        "summary.txt",
    ]
    with (out_dir / "servers.csv").open(newline="") as handle:
        servers = list(csv.DictReader(handle))
    with (out_dir / "procurement.csv").open(newline="") as handle:
        procurement = list(csv.DictReader(handle))
    assert [row["slots"] for row in servers] == [
        " | ".join(["C"] * 8),
        " | ".join(["A"] * 8),
        " | ".join(["A"] * 4 + ["B"] * 4),
    ]
    assert procurement[0]["needed"] == "24"
    assert "GPUs needed: 24" in (out_dir / "summary.txt").read_text()


def test_pretty_prints_tables(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, out, _ = _run(capsys, _write(tmp_path, HAND_CHECKED), "--pretty")

    assert status == 0
    for title in ("Models", "Procurement", "Servers", "Totals"):
        assert title in out
    assert "C x8" in out
    assert "A x4 | B x4" in out


def test_per_model_error_keeps_exit_zero_unless_strict(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = _write(tmp_path, HAND_CHECKED.replace("gpus_per_server: 8", "gpus_per_server: 4"))

    status, out, _ = _run(capsys, path)
    result = json.loads(out)
    strict_status, _, _ = _run(capsys, path, "--strict")

    assert status == 0
    assert [e["model"] for e in result["errors"]] == ["C"]
    assert strict_status == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("models:\n  - {model: Qwen/Qwen3-8B, gpu: H100, tp: -1}\n", "tp must be a whole number"),
        ("models:\n  - {model: Qwen/Qwen3-8B, gpu: H10}\n", "unknown GPU 'H10' (close matches"),
        ("models:\n  - {model: Qwen/Qwen3-8B, gpu: H100, tensor: 2}\n", "unknown key 'tensor'"),
        ("models: [\n", "is not valid YAML"),
    ],
)
def test_bad_fleet_file_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, expected: str
) -> None:
    status, out, err = _run(capsys, _write(tmp_path, text))

    assert status == 2
    assert out == ""
    assert err.startswith("cfgexplorer: error: fleet.yaml")
    assert expected in err
    assert err.count("\n") == 1


def test_missing_fleet_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, _, err = _run(capsys, str(tmp_path / "absent.yaml"))

    assert status == 2
    assert "does not exist" in err


def test_unwritable_csv_dir_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")

    status, out, err = _run(capsys, _write(tmp_path, HAND_CHECKED), "--csv-dir", str(blocker))

    assert status == 2
    assert out == ""
    assert err.startswith(f"cfgexplorer: error: cannot write --csv-dir {blocker}")
    assert "choose a writable directory" in err
    assert err.count("\n") == 1


def test_huge_replica_count_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text = "models:\n  - {name: A, params_billion: 1, gpu: H100, tp: 1, dp: 1000000000}\n"

    status, out, err = _run(capsys, _write(tmp_path, text))

    assert status == 2
    assert out == ""
    assert "dp must be at most 100,000" in err
    assert err.count("\n") == 1
