"""SweepExplorer: the sweep page's state, driven without a browser."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from cfgexplorer import benchmarks, explore
from cfgexplorer.benchmarks.loader import MAX_FILE_BYTES
from cfgexplorer.models import SweepExplorer
from cfgexplorer.models.sweep import ALL, UPLOAD_MESSAGE_BYTES, demo_dir

SAMPLES = Path(__file__).resolve().parent / "benchmarks" / "samples"
REPORT = SAMPLES / "llm-d-benchmark-examples" / "br_v0_2_example.yaml"
LAMBDA_8B = (
    SAMPLES / "vllm-benchmark/lambdalabs/1xH100-80GB-SXM/Meta-Llama-3.1-8B-FP8_tp1_len4096.json"
)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CFGEXPLORER_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CFGEXPLORER_SWEEP_ROOT", raising=False)


def test_demo_sweep_is_loaded_at_start():
    sweep = SweepExplorer()
    expected = benchmarks.load_paths([demo_dir()], use_cache=False).table

    assert len(sweep.table) == len(expected)
    assert sweep.message == ""
    assert not sweep.table["File"].str.startswith("/").any()  # no server paths shown


def test_front_equals_the_core_front():
    sweep = SweepExplorer()
    table = benchmarks.load_paths([demo_dir()], use_cache=False).table

    expected = explore.pareto_front(table, ["Thpt_per_User", "Thpt_per_GPU"])

    assert len(sweep.front) == len(expected)
    assert list(sweep.front["Run_UID"]) == list(expected["Run_UID"])


def test_preset_sets_slos_and_filters():
    sweep = SweepExplorer()
    sweep.preset = "chatbot"
    slos = [explore.SLO.parse(s) for s in sweep.slos]

    assert sweep.slos == ["P90_TTFT_ms<=1000", "Mean_TPOT_ms<=50"]
    assert len(sweep.filtered) == len(explore.meet_slos(sweep.table, slos))


def test_scenario_choice_narrows_the_runs():
    sweep = SweepExplorer()
    choice = sweep.param.scenario.objects[1]
    count = int(
        sweep.scenario_table.loc[sweep.scenario_table["scenario"] == choice, "count"].iloc[0]
    )

    sweep.scenario = choice

    assert len(sweep.filtered) == count


def test_bad_slo_sets_message_and_keeps_runs():
    sweep = SweepExplorer()
    sweep.slos = ["TTFT below 2s"]
    assert "cannot read SLO" in sweep.message
    assert len(sweep.filtered) == len(sweep.table)

    sweep.slos = []
    assert sweep.message == ""


def test_upload_of_a_sample_shows_its_front():
    sweep = SweepExplorer()

    sweep.add_upload(REPORT.name, REPORT.read_bytes())

    assert sweep.source == "upload"
    assert list(sweep.table["File"].unique()) == [REPORT.name]
    assert len(sweep.front) == 1
    assert sweep.message == ""


def test_runs_without_both_metrics_say_so():
    sweep = SweepExplorer()
    sweep.add_upload(LAMBDA_8B.name, LAMBDA_8B.read_bytes())  # no GPU count: no Thpt_per_GPU

    assert sweep.front.empty
    assert "Thpt_per_GPU" in sweep.message
    sweep.y_metric = "Output_Token_Throughput"
    assert len(sweep.front) == 1
    assert sweep.message == ""


def test_bad_upload_is_listed_as_skipped():
    sweep = SweepExplorer()
    sweep.add_upload("notes.json", b"{not json")
    assert list(sweep.skipped["file"]) == ["notes.json"]
    assert sweep.table.empty


def test_directories_are_only_those_under_the_root(tmp_path, monkeypatch):
    (tmp_path / "a" / "b").mkdir(parents=True)
    monkeypatch.setenv("CFGEXPLORER_SWEEP_ROOT", str(tmp_path))
    sweep = SweepExplorer()

    assert sweep.param.directory.objects == [".", "a", "a/b"]
    with pytest.raises(ValueError, match="directory"):
        sweep.directory = "../.."
    notes = sweep.apply_query({"source": "directory", "directory": "/etc"})
    assert sweep.directory == "."
    assert notes


def test_directory_source_loads_a_folder_under_the_root(monkeypatch):
    monkeypatch.setenv("CFGEXPLORER_SWEEP_ROOT", str(SAMPLES))
    sweep = SweepExplorer(source="directory", directory="vllm-benchmark/lambdalabs")

    assert len(sweep.table) == 2
    assert set(sweep.table["Link"]) == {
        "sweep-files/vllm-benchmark/lambdalabs/1xH100-80GB-SXM/Meta-Llama-3.1-8B-FP8_tp1_len4096.json",
        "sweep-files/vllm-benchmark/lambdalabs/8xH100-80GB-SXM/Meta-Llama-3.1-70B-Instruct-FP8_tp8_len8192.json",
    }


def test_link_round_trip_and_fallbacks():
    first = SweepExplorer(preset="chatbot", by=["GPU"])
    query = first.to_query()
    second = SweepExplorer()
    assert second.apply_query(query) == []
    assert second.slos == first.slos
    assert second.by == ["GPU"]

    third = SweepExplorer()
    notes = third.apply_query({"source": "upload", "x_metric": "Colour", "scenario": "nope"})
    assert third.source == "demo"
    assert third.x_metric == "Thpt_per_User"
    assert third.scenario == ALL
    assert len(notes) == 3
    assert any("scenario" in n for n in third.notes)


def test_oversized_file_is_skipped_and_the_rest_of_the_upload_loads():
    sweep = SweepExplorer()
    big = b"[" + b" " * MAX_FILE_BYTES + b"]"

    sweep.add_uploads([("huge.json", big), (REPORT.name, REPORT.read_bytes())])

    assert list(sweep.table["File"].unique()) == [REPORT.name]
    reasons = dict(zip(sweep.skipped["file"], sweep.skipped["reason"], strict=True))
    assert reasons == {"huge.json": "file is 50 MB, over the 50 MB limit"}
    assert any("huge.json" in n and "over the 50 MB limit" in n for n in sweep.notes)


def test_an_upload_message_holds_four_files_at_the_limit_in_base64():
    base64_file = 4 * -(-MAX_FILE_BYTES // 3)
    assert 4 * base64_file <= UPLOAD_MESSAGE_BYTES
    assert UPLOAD_MESSAGE_BYTES < 300 * 10**6  # one upload must not take a server's memory


def test_tables_show_no_server_paths():
    sweep = SweepExplorer()

    table = sweep.filtered

    assert len(table)
    for column in ("File", "Directory", "Link"):
        assert not table[column].astype(str).str.startswith("/").any(), column
    assert not table.astype(str).apply(lambda c: c.str.contains(str(demo_dir()))).any().any()
    first = table.iloc[0]
    assert first["Directory"] == str(PurePosixPath(first["File"]).parent)
