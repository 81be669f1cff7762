"""Speed figures of the sweep explorer (issue 5).

Prints:
- the Pareto front time on 100,000 random rows (target: at most 100 ms);
- at 5,000 rows, the all-pairs reference time over the vectorised time (expect > 100x);
- importing 1,000 generated report files cold (target: at most 15 s) and again from
  the cache (target: at most 1 s).

The 1,000 files are variations of the bundled demo results (llm-d v0.1 YAML reports,
inference-perf stage JSON with its config.yaml, vLLM bench JSON), written to a
temporary directory with a private cache; nothing outside it is touched.

Run: ``python benchmarks/bench_sweep.py``
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

# A checkout need not be installed: make its package importable from anywhere.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PARETO_ROWS = 100_000
RATIO_ROWS = 5_000
IMPORT_FILES = 1_000
FILES_PER_DIR = 10
SEED = 20250513


def _best_of(repeats: int, func) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


def _random_sweep(rows: int, rng: np.random.Generator) -> pd.DataFrame:
    per_user = rng.uniform(5, 200, rows)
    # Throughput per GPU falls as per-user speed rises, with noise: a realistic trade-off.
    per_gpu = 5000 / per_user * rng.lognormal(0, 0.3, rows)
    return pd.DataFrame({"Thpt_per_User": per_user, "Thpt_per_GPU": per_gpu})


def bench_pareto() -> None:
    from cfgexplorer.explore import pareto_front, pareto_front_all_pairs

    rng = np.random.default_rng(SEED)
    metrics = ["Thpt_per_User", "Thpt_per_GPU"]

    big = _random_sweep(PARETO_ROWS, rng)
    seconds = _best_of(5, lambda: pareto_front(big, metrics))
    front = len(pareto_front(big, metrics))
    print(f"pareto_front, {PARETO_ROWS:,} rows: {seconds * 1e3:.1f} ms ({front} on the front)")

    small = _random_sweep(RATIO_ROWS, rng)
    fast = _best_of(5, lambda: pareto_front(small, metrics))
    full = _best_of(1, lambda: pareto_front_all_pairs(small, metrics))
    early = _best_of(1, lambda: pareto_front_all_pairs(small, metrics, early_exit=True))
    expected = pareto_front_all_pairs(small, metrics, early_exit=True).index
    assert pareto_front(small, metrics).index.equals(expected)
    print(
        f"pareto_front, {RATIO_ROWS:,} rows: {fast * 1e3:.2f} ms; all pairs compared: "
        f"{full * 1e3:,.0f} ms ({full / fast:,.0f}x slower); all pairs with early exit: "
        f"{early * 1e3:,.0f} ms ({early / fast:,.0f}x slower)"
    )


def _make_files(root: Path) -> None:
    """Write IMPORT_FILES result files, FILES_PER_DIR per directory, in three formats."""
    import yaml

    from cfgexplorer.paths import data_dir

    demo = data_dir() / "benchmarks"
    report_path = next((demo / "llm-d-guides").glob("inference-scheduling*/*.yaml"))
    report = yaml.safe_load(report_path.read_text())
    ip_dir = demo / "inference-perf" / "kubecon-na-2025_vllm_llama3-8b_1xH100"
    stage = json.loads((ip_dir / "stage_2_lifecycle_metrics.json").read_text())
    vllm = json.loads(next(demo.rglob("benchmark_2025-05-13_04-37-51.json")).read_text())

    for index in range(IMPORT_FILES):
        directory = root / f"run_{index // FILES_PER_DIR:03d}"
        directory.mkdir(exist_ok=True)
        scale = 1 + index / IMPORT_FILES
        kind = index % 3
        if kind == 0:
            report["metrics"]["throughput"]["output_tokens_per_sec"] = 13574.37 * scale
            report["scenario"]["load"]["metadata"]["stage"] = index % 17
            (directory / f"benchmark_report,_stage_{index}_lifecycle_metrics.json.yaml").write_text(
                yaml.safe_dump(report)
            )
        elif kind == 1:
            shutil.copy(ip_dir / "config.yaml", directory / "config.yaml")
            stage["successes"]["throughput"]["output_tokens_per_sec"] = 3820.66 * scale
            (directory / f"stage_{index}_lifecycle_metrics.json").write_text(json.dumps(stage))
        else:
            vllm["output_throughput"] = 698.5 * scale
            (directory / f"benchmark_{index}.json").write_text(json.dumps(vllm))


def bench_import() -> None:
    with tempfile.TemporaryDirectory(prefix="cfgx-bench-") as tmp:
        root = Path(tmp) / "sweep"
        root.mkdir()
        os.environ["CFGEXPLORER_CACHE"] = str(Path(tmp) / "cache")
        _make_files(root)

        from cfgexplorer.benchmarks import load_paths

        start = time.perf_counter()
        cold = load_paths([root])
        cold_s = time.perf_counter() - start
        start = time.perf_counter()
        warm = load_paths([root])
        warm_s = time.perf_counter() - start

        assert not cold.skipped, cold.skipped[:3]
        assert len(cold.table) == IMPORT_FILES
        assert warm.table.equals(cold.table)
        print(f"import {IMPORT_FILES:,} files cold: {cold_s:.2f} s")
        print(f"import {IMPORT_FILES:,} files from the cache: {warm_s * 1e3:.0f} ms")


if __name__ == "__main__":
    bench_pareto()
    bench_import()
