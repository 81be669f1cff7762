"""Speed figures of the performance model and recommender (issue 4).

Prints:
- the default search for one model (every catalog GPU, counts 1/2/4/8, every valid TP,
  the concurrency ladder) in a warm process, best of several runs (target: at most 0.5 s),
  for a dense, an MoE and an MLA model;
- ``cfgexplorer estimate`` run cold in a fresh interpreter, best of three
  (target: at most 2 s).

Run: ``python benchmarks/bench_estimate.py``
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

# A checkout need not be installed: make its package importable from anywhere.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cfgexplorer import load_model
from cfgexplorer.recommend import RecommendRequest, recommend

MODELS = ("Qwen/Qwen3-32B", "Qwen/Qwen3-30B-A3B", "deepseek-ai/DeepSeek-V3")
WARM_TARGET_S = 0.5
COLD_TARGET_S = 2.0
REPEATS = 5


def warm_search(model: str) -> tuple[float, int]:
    """Best wall time of the default search in this process, and the points it estimated."""
    spec = load_model(model)
    request = RecommendRequest(model=model, input_len=1000, output_len=200, spec=spec)
    recommend(request)  # warm the imports and file caches, not the search itself
    best, points = float("inf"), 0
    for _ in range(REPEATS):
        start = time.perf_counter()
        rec = recommend(request)
        best = min(best, time.perf_counter() - start)
        points = sum(len(r.points) for r in rec.results)
    return best, points


def cold_cli() -> float:
    """Best wall time of a fresh ``cfgexplorer estimate`` process."""
    cmd = [
        sys.executable,
        "-m",
        "cfgexplorer.cli",
        "estimate",
        "--model",
        "Qwen/Qwen3-32B",
        "--input-len",
        "1000",
        "--output-len",
        "200",
    ]
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    for model in MODELS:
        seconds, points = warm_search(model)
        verdict = "ok" if seconds <= WARM_TARGET_S else "OVER TARGET"
        print(
            f"default search, warm, {model}: {seconds:.3f} s for {points} points "
            f"(target <= {WARM_TARGET_S} s) {verdict}"
        )
    seconds = cold_cli()
    verdict = "ok" if seconds <= COLD_TARGET_S else "OVER TARGET"
    print(f"cfgexplorer estimate, cold: {seconds:.3f} s (target <= {COLD_TARGET_S} s) {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
