"""``cfgexplorer sweep``: exit statuses, JSON keys, --output formats, presets."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from cfgexplorer.cli import main
from cfgexplorer.paths import data_dir


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CFGEXPLORER_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def demo() -> Path:
    return data_dir() / "benchmarks"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["sweep", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_demo_sweep_json(capsys: pytest.CaptureFixture[str], demo: Path) -> None:
    status, out, err = _run(capsys, str(demo), "--slo", "P90_TTFT_ms<=2000")
    result = json.loads(out)

    assert status == 0
    assert err == ""
    assert list(result) == [
        "loaded",
        "preset",
        "scenario_columns",
        "scenarios",
        "slos",
        "meeting_slos",
        "pareto",
        "output",
    ]
    assert result["loaded"]["rows"] == 15
    assert result["loaded"]["skipped"] == []
    assert result["slos"] == ["P90_TTFT_ms<=2000"]
    assert 0 < result["meeting_slos"] < 15
    front = result["pareto"]["rows"]
    assert front
    assert all(row["Thpt_per_GPU"] is not None for row in front)
    assert result["pareto"]["metrics"] == ["Thpt_per_User", "Thpt_per_GPU"]


def test_demo_pd_rows_have_gpu_counts(capsys: pytest.CaptureFixture[str], demo: Path) -> None:
    status, out, _ = _run(capsys, str(demo), "--preset", "pd-vs-aggregate")
    rows = json.loads(out)["pareto"]["rows"]

    assert status == 0
    counts = {(r["Is_PD"], r["Num_GPUs"]) for r in rows if "llm-d-exp-7" in r["File"]}
    assert counts <= {(True, 2.0), (True, 3.0), (False, 2.0), (False, 3.0)}
    assert any(r["Is_PD"] for r in rows)
    assert any(r["Is_PD"] is False for r in rows)


@pytest.mark.parametrize("suffix", [".json", ".csv", ".parquet"])
def test_output_writes_the_filtered_table(
    capsys: pytest.CaptureFixture[str], demo: Path, tmp_path: Path, suffix: str
) -> None:
    target = tmp_path / f"table{suffix}"

    status, out, _ = _run(capsys, str(demo), "--slo", "Mean_TPOT_ms<=10", "--output", str(target))
    meeting = json.loads(out)["meeting_slos"]

    assert status == 0
    if suffix == ".json":
        rows = json.loads(target.read_text())
        assert isinstance(rows, list)
        assert len(rows) == meeting
        assert all(r["Mean_TPOT_ms"] <= 10 for r in rows)
        assert {"Model", "GPU", "Num_GPUs", "P90_TTFT_ms"} <= set(rows[0])
    elif suffix == ".csv":
        assert len(pd.read_csv(target)) == meeting
    else:
        assert len(pd.read_parquet(target)) == meeting


def test_missing_path_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = _run(capsys, "/no/such/dir")

    assert status == 2
    assert out == ""
    assert err.count("\n") == 1
    assert "no such file or directory" in err


def test_bad_slo_exits_2(capsys: pytest.CaptureFixture[str], demo: Path) -> None:
    status, _, err = _run(capsys, str(demo), "--slo", "P90_TTFT_ms>=5")

    assert status == 2
    assert "lower is better" in err


def test_unknown_pareto_column_exits_2(capsys: pytest.CaptureFixture[str], demo: Path) -> None:
    status, _, err = _run(capsys, str(demo), "--pareto", "Speed,Thpt_per_GPU")

    assert status == 2
    assert "unknown column 'Speed'" in err


def test_nothing_loadable_exits_2_naming_each_file_and_its_reason(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "junk.yaml").write_text("just: text\n")
    (tmp_path / "empty.json").write_text("")

    status, out, err = _run(capsys, str(tmp_path))

    assert status == 2
    assert out == ""  # nothing half-printed: one sentence on stderr
    assert len(err.strip().splitlines()) == 1
    assert "no benchmark results could be loaded" in err
    assert f"{tmp_path / 'empty.json'}: empty file" in err
    assert f"{tmp_path / 'junk.yaml'}: unknown format" in err
    empty = tmp_path / "nothing"
    empty.mkdir()
    status, _, err = _run(capsys, str(empty))
    assert status == 2
    assert f"no result files found in {empty}" in err


def test_bad_output_suffix_exits_2(
    capsys: pytest.CaptureFixture[str], demo: Path, tmp_path: Path
) -> None:
    status, _, err = _run(capsys, str(demo), "--output", str(tmp_path / "t.xlsx"))

    assert status == 2
    assert ".csv, .json or .parquet" in err


def test_pretty_output_shows_tables(capsys: pytest.CaptureFixture[str], demo: Path) -> None:
    status, out, _ = _run(capsys, str(demo), "--pretty", "--preset", "chatbot")

    assert status == 0
    assert out.startswith("Loaded 15 runs from 15 files; skipped 0.")
    assert "Pareto front of Thpt_per_User vs Thpt_per_GPU" in out
    assert "P90_TTFT_ms<=1000" in out


def test_list_columns(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, "--list", "columns")
    names = {c["name"]: c for c in json.loads(out)["columns"]}

    assert status == 0
    assert names["P90_TTFT_ms"]["direction"] == "lower"
    assert names["Thpt_per_GPU"]["unit"] == "tokens/s/GPU"


@pytest.mark.parametrize(
    ("slo", "fragment"),
    [
        ("Model<=3", "bounds Model, which is not a numeric column"),
        ("Nope<=3", "unknown column 'Nope'; run `cfgexplorer sweep --list columns`"),
    ],
)
def test_slo_on_a_non_numeric_or_unknown_column_exits_2(
    capsys: pytest.CaptureFixture[str], demo: Path, slo: str, fragment: str
) -> None:
    status, out, err = _run(capsys, str(demo), "--slo", slo)

    assert status == 2
    assert out == ""
    assert fragment in err
    assert err.count("\n") == 1


def test_strict_slo_is_kept_strict(capsys: pytest.CaptureFixture[str], demo: Path) -> None:
    from cfgexplorer.benchmarks import load_paths

    ttfts = load_paths([demo]).table.P90_TTFT_ms.dropna()
    bound = float(ttfts.sort_values().iloc[len(ttfts) // 2])  # a value some run has exactly

    _, strict, _ = _run(capsys, str(demo), "--slo", f"P90_TTFT_ms < {bound!r}")
    _, inclusive, _ = _run(capsys, str(demo), "--slo", f"P90_TTFT_ms<={bound!r}")

    assert json.loads(strict)["slos"] == [f"P90_TTFT_ms<{bound:g}"]
    assert json.loads(strict)["meeting_slos"] == int((ttfts < bound).sum())
    assert json.loads(inclusive)["meeting_slos"] == int((ttfts <= bound).sum())
    assert (ttfts < bound).sum() < (ttfts <= bound).sum()


def test_unknown_scenario_column_names_the_list_flag(
    capsys: pytest.CaptureFixture[str], demo: Path
) -> None:
    status, _, err = _run(capsys, str(demo), "--scenario", "Model,Nope")

    assert status == 2
    assert "`cfgexplorer sweep --list columns`" in err


def test_unwritable_output_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], demo: Path, tmp_path: Path
) -> None:
    target = tmp_path / "no" / "such" / "dir" / "table.csv"

    status, out, err = _run(capsys, str(demo), "--output", str(target))

    assert status == 2
    assert out == ""
    assert err.startswith(f"cfgexplorer: error: cannot write --output {target}")
    assert "choose a writable file path" in err
    assert err.count("\n") == 1


def test_empty_pareto_list_is_refused_and_repeated_scenario_columns_count_once(
    capsys: pytest.CaptureFixture[str], demo: Path
) -> None:
    status, out, err = _run(capsys, str(demo), "--pareto", ",")
    assert status == 2
    assert out == ""
    assert "--pareto ',' names no column" in err

    status, _, err = _run(capsys, str(demo), "--pareto", "Thpt_per_User,Thpt_per_User")
    assert status == 2
    assert "--pareto needs two different metrics" in err
    for flag in ("--scenario", "--by"):
        status, _, err = _run(capsys, str(demo), flag, ",")
        assert status == 2
        assert f"{flag} ',' names no column" in err

    status, out, _ = _run(capsys, str(demo), "--scenario", "Model,Model")
    assert status == 0
    scenarios = json.loads(out)["scenarios"]
    assert scenarios
    assert all(list(s).count("Model") == 1 for s in scenarios)
