"""Walking, skipping bad files with a reason, deduplication, context files and the cache."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pytest
import yaml

from cfgexplorer.benchmarks import load_bytes, load_paths, loader
from cfgexplorer.errors import ReportFileError

V01 = "llm-d-benchmark-examples/br_v0_1_example.yaml"
WIDE_EP = (
    "llm-d-guides/wide-ep-lws_deepseek-r1_32xH200/"
    "benchmark_report_v0.2,_stage_0_lifecycle_metrics.json.yaml"
)
VLLM = "vllm-benchmark/llm-d-exp-7/H100/llm-d-1p1d/benchmark_2025-05-13_04-37-51.json"


def _reasons(result: loader.LoadResult) -> dict[str, str]:
    return {Path(p).name: r for p, r in result.skipped}


@pytest.fixture
def mixed_dir(tmp_path: Path, samples: Path) -> Path:
    """Two good files and one of each kind of bad file."""
    shutil.copy(samples / V01, tmp_path / "good_v01.yaml")
    shutil.copy(samples / VLLM, tmp_path / "good_vllm.json")

    (tmp_path / "malformed.yaml").write_text("version: '0.1'\nscenario: [unclosed\n  - x: 1\n")
    (tmp_path / "unknown.json").write_text(json.dumps({"hello": "world"}))

    bad_schema = yaml.safe_load((samples / V01).read_text())
    bad_schema["scenario"]["host"]["type"][0] = "sidecar"  # not replica/prefill/decode
    (tmp_path / "schema.yaml").write_text(yaml.safe_dump(bad_schema))

    no_metrics = yaml.safe_load((samples / WIDE_EP).read_text())
    aggregate = no_metrics["results"]["request_performance"]["aggregate"]
    del aggregate["latency"], aggregate["throughput"]  # like an all-failed run
    (tmp_path / "nometrics.yaml").write_text(yaml.safe_dump(no_metrics))

    with open(tmp_path / "huge.json", "wb") as handle:  # sparse: no disk used
        handle.truncate(loader.MAX_FILE_BYTES + 1)
    (tmp_path / "binary.json").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 10)
    (tmp_path / "notes.txt").write_text("not a candidate: wrong suffix")
    return tmp_path


def test_each_bad_file_is_skipped_with_its_reason_and_good_ones_load(mixed_dir: Path) -> None:
    result = load_paths([mixed_dir], use_cache=False)
    reasons = _reasons(result)

    assert len(result.table) == 2
    assert sorted(Path(p).name for p in result.loaded) == ["good_v01.yaml", "good_vllm.json"]
    assert reasons["malformed.yaml"].startswith("malformed YAML: line")
    assert reasons["unknown.json"].startswith("unknown format")
    assert reasons["schema.yaml"].startswith("schema violation (v0.1) at scenario/host/type/0")
    assert reasons["nometrics.yaml"].startswith("missing metrics")
    assert "over the 50 MB limit" in reasons["huge.json"]
    assert reasons["binary.json"].startswith("binary file")
    assert "notes.txt" not in reasons
    assert len(reasons) == 6


def test_explicit_file_is_tried_whatever_its_name(tmp_path: Path, samples: Path) -> None:
    target = tmp_path / "results.txt"
    shutil.copy(samples / VLLM, target)

    result = load_paths([target], use_cache=False)

    assert len(result.table) == 1
    assert result.table.Format.iloc[0] == "vllm-bench"


def test_missing_path_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(ReportFileError, match="no such file"):
        load_paths([tmp_path / "nope"])


def test_unsupported_report_version_is_named(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text("version: '0.3'\nrun: {}\nresults: {}\n")

    result = load_paths([tmp_path], use_cache=False)

    assert "report version '0.3'" in result.skipped[0][1]


def test_unquoted_float_version_is_recognised(tmp_path: Path, samples: Path) -> None:
    text = (samples / WIDE_EP).read_text().replace("version: '0.2'", "version: 0.2")
    (tmp_path / "r.yaml").write_text(text)

    result = load_paths([tmp_path], use_cache=False)

    assert result.table.Report_Version.tolist() == ["0.2"]


def test_v01_and_v02_of_one_native_file_keep_the_newer(tmp_path: Path, samples: Path) -> None:
    v02 = samples / WIDE_EP
    shutil.copy(v02, tmp_path / "benchmark_report_v0.2,_stage_0_lifecycle_metrics.json.yaml")
    doc = yaml.safe_load((samples / V01).read_text())
    (tmp_path / "benchmark_report,_stage_0_lifecycle_metrics.json.yaml").write_text(
        yaml.safe_dump(doc)
    )

    result = load_paths([tmp_path], use_cache=False)

    assert result.table.Report_Version.tolist() == ["0.2"]
    assert len(result.loaded) == 1
    assert "duplicate of benchmark_report_v0.2" in result.skipped[0][1]


def test_symlinks_are_followed_only_when_asked(tmp_path: Path, samples: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    shutil.copy(samples / VLLM, real / "run.json")
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(real, root / "linked")

    plain = load_paths([root], use_cache=False)
    followed = load_paths([root], follow_symlinks=True, use_cache=False)

    assert plain.table.empty
    assert plain.skipped == [(str(root / "linked"), "symbolic link not followed")]
    assert len(followed.table) == 1


def test_context_file_fills_missing_deployment_facts(tmp_path: Path, samples: Path) -> None:
    run_dir = tmp_path / "llm-d-1p1d"
    run_dir.mkdir()
    shutil.copy(samples / VLLM, run_dir / "run.json")
    (tmp_path / loader.CONTEXT_FILE_NAME).write_text("GPU_Raw: H100\nP_TP: 1\nD_TP: 1\n")

    row = load_paths([tmp_path], use_cache=False).table.iloc[0]

    assert row.Num_GPUs == 2  # 1 prefill + 1 decode pod at TP1
    assert row.Thpt_per_GPU == pytest.approx(698.4979897701463 / 2)
    assert "from cfgexplorer-context.yaml" in row.Notes


def test_bad_context_file_is_reported_not_fatal(tmp_path: Path, samples: Path) -> None:
    shutil.copy(samples / VLLM, tmp_path / "run.json")
    (tmp_path / loader.CONTEXT_FILE_NAME).write_text("Mean_TTFT_ms: 1\n")

    result = load_paths([tmp_path], use_cache=False)

    assert len(result.table) == 1
    assert "may not set: Mean_TTFT_ms" in _reasons(result)[loader.CONTEXT_FILE_NAME]


def test_second_load_comes_from_the_cache(mixed_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_paths([mixed_dir])

    def no_parsing(*_args: object) -> None:
        raise AssertionError("parsed a file that the cache holds")

    monkeypatch.setattr(loader, "_import_file", no_parsing)
    second = load_paths([mixed_dir])

    assert second.table.equals(first.table)
    assert sorted(second.skipped) == sorted(first.skipped)
    assert second.loaded == first.loaded


def test_changed_file_is_parsed_again(mixed_dir: Path, samples: Path) -> None:
    load_paths([mixed_dir])
    doc = json.loads((samples / VLLM).read_text())
    doc["mean_ttft_ms"] = 123.0
    target = mixed_dir / "good_vllm.json"
    target.write_text(json.dumps(doc))
    os.utime(target, ns=(1, 1))  # a different mtime even on coarse clocks

    table = load_paths([mixed_dir]).table

    assert table.loc[table.Format == "vllm-bench", "Mean_TTFT_ms"].tolist() == [123.0]


def test_load_bytes_reads_an_upload_and_reports_a_bad_one(samples: Path) -> None:
    good = load_bytes("/some/where/run.json", (samples / VLLM).read_bytes())
    bad = load_bytes("broken.yaml", b"a: [1, 2\n")

    assert good.table.File.tolist() == ["run.json"]
    assert good.table.Mean_TTFT_ms.iloc[0] == pytest.approx(249.5401489152573)
    assert bad.table.empty
    assert bad.skipped[0][0] == "broken.yaml"
    assert bad.skipped[0][1].startswith("malformed YAML")


def test_json_with_infinity_is_accepted(samples: Path) -> None:
    doc = json.loads((samples / VLLM).read_text())
    text = json.dumps(doc).replace('"max_concurrency": null', '"max_concurrency": Infinity')

    table = load_bytes("run.json", text.encode()).table

    assert table.Max_Concurrency.iloc[0] == float("inf")


def test_overlapping_arguments_count_each_file_once(tmp_path: Path, samples: Path) -> None:
    shutil.copy(samples / VLLM, tmp_path / "run.json")

    result = load_paths([tmp_path, tmp_path / "run.json"], use_cache=False)

    assert len(result.table) == 1


def test_inference_perf_summary_file_is_not_another_stage(tmp_path: Path, samples: Path) -> None:
    stage = samples / "inference-perf/kubecon-na-2025_vllm_llama3-8b_1xH100"
    shutil.copy(stage / "stage_0_lifecycle_metrics.json", tmp_path)
    shutil.copy(
        stage / "stage_0_lifecycle_metrics.json", tmp_path / "summary_lifecycle_metrics.json"
    )

    result = load_paths([tmp_path], use_cache=False)

    assert len(result.table) == 1
    assert _reasons(result)["summary_lifecycle_metrics.json"].startswith("summary file")


def test_dangling_symlink_is_skipped_when_following_links(tmp_path: Path, samples: Path) -> None:
    shutil.copy(samples / VLLM, tmp_path / "run.json")
    os.symlink(tmp_path / "nonexistent", tmp_path / "dangling.json")

    result = load_paths([tmp_path], follow_symlinks=True, use_cache=False)

    assert len(result.table) == 1
    assert [Path(p).name for p in result.loaded] == ["run.json"]
    assert _reasons(result) == {"dangling.json": "broken symbolic link: its target does not exist"}


def test_report_version_without_report_sections_says_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text("version: '0.2'\nhello: world\n")
    (tmp_path / "old.yaml").write_text("version: '0.1'\nhello: world\n")

    reasons = _reasons(load_paths([tmp_path], use_cache=False))

    assert reasons["r.yaml"] == (
        "not a valid llm-d report: it says version 0.2 but has no 'results' or 'run' "
        "section; check that the file is a complete benchmark report"
    )
    assert "no 'metrics' or 'scenario' section" in reasons["old.yaml"]


def _vllm_with(samples: Path, tmp_path: Path, name: str, **changes: object) -> None:
    doc = json.loads((samples / VLLM).read_text())
    doc.update(changes)
    (tmp_path / name).write_text(json.dumps(doc))


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        (
            {"mean_ttft_ms": -5.0},
            "Mean_TTFT_ms is negative (-5); latencies, throughputs and request counts "
            "cannot be, so the file is skipped: fix the value or remove it",
        ),
        ({"output_throughput": -1.0}, "Output_Token_Throughput is negative (-1)"),
        (
            {"output_throughput": float("inf")},
            "Output_Token_Throughput is infinite; a measured latency, throughput or request "
            "count is a finite number",
        ),
        (
            {"p99_ttft_ms": "fast"},
            "p99_ttft_ms is 'fast', not a number; a measured value must be a number or null, "
            "so fix or remove it",
        ),
        ({"request_throughput": [1, 2]}, "request_throughput is [1, 2], not a number"),
    ],
)
def test_negative_or_non_numeric_metric_skips_the_file(
    tmp_path: Path, samples: Path, changes: dict[str, object], reason: str
) -> None:
    shutil.copy(samples / VLLM, tmp_path / "good.json")
    _vllm_with(samples, tmp_path, "bad.json", **changes)

    result = load_paths([tmp_path], use_cache=False)

    assert [Path(p).name for p in result.loaded] == ["good.json"]
    assert _reasons(result)["bad.json"].startswith(reason)


def test_null_or_nan_metric_is_absent_not_an_error(tmp_path: Path, samples: Path) -> None:
    _vllm_with(samples, tmp_path, "run.json", p99_ttft_ms=None, std_ttft_ms=float("nan"))

    result = load_paths([tmp_path], use_cache=False)

    assert result.skipped == []
    assert math.isnan(result.table.P99_TTFT_ms.iloc[0])
    assert math.isnan(result.table.StdDev_TTFT_ms.iloc[0])


def test_negative_throughput_in_an_llmd_report_skips_it(tmp_path: Path, samples: Path) -> None:
    doc = yaml.safe_load((samples / V01).read_text())
    doc["metrics"]["throughput"]["output_tokens_per_sec"] = -10.0
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(doc))

    result = load_paths([tmp_path], use_cache=False)

    assert result.table.empty
    assert _reasons(result)["r.yaml"].startswith("Output_Token_Throughput is negative (-10)")
