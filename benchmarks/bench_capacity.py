"""Speed figures for the catalog and the capacity planner (issues: foundation, capacity).

Prints the median cold process time of ``cfgexplorer models``, ``cfgexplorer model`` and
``cfgexplorer plan`` for a catalog model, and warm-process times of ``load_model`` and
``plan``. Targets: cold <= 1.0 s each; warm load_model <= 5 ms; warm plan <= 1 ms.

Usage: ``python benchmarks/bench_capacity.py [--runs N]``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

COLD_COMMANDS = {
    "cfgexplorer models": ["models"],
    "cfgexplorer model Qwen/Qwen3-32B": ["model", "Qwen/Qwen3-32B"],
    "cfgexplorer plan --model Qwen/Qwen3-32B --gpu H100 --tp 2": [
        "plan",
        "--model",
        "Qwen/Qwen3-32B",
        "--gpu",
        "H100",
        "--tp",
        "2",
    ],
}


def cold(argv: list[str], runs: int) -> float:
    exe = shutil.which("cfgexplorer")
    cmd = [exe, *argv] if exe else [sys.executable, "-m", "cfgexplorer.cli", *argv]
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def warm(fn, repeat: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    print("cold process, median of", args.runs, "runs (target <= 1.0 s):")
    for label, argv in COLD_COMMANDS.items():
        print(f"  {label:60s} {cold(argv, args.runs):.3f} s")

    from cfgexplorer import load_model
    from cfgexplorer.gpus import get_gpu
    from cfgexplorer.memory import Deployment, plan

    spec = load_model("Qwen/Qwen3-32B")
    t_load = warm(lambda: load_model("Qwen/Qwen3-32B"), 2000)
    print(f"warm load_model (catalog, target <= 5 ms): {t_load * 1e3:.4f} ms")
    gpu = get_gpu("H100")
    cases = {
        "Qwen3-32B TP2 (dense)": (spec, Deployment(tp=2, max_model_len=16000)),
        "gpt-oss-120b (sliding + full)": (
            load_model("openai/gpt-oss-120b"),
            Deployment(max_model_len=32768),
        ),
        "Qwen3-Next TP4 (hybrid linear)": (
            load_model("Qwen/Qwen3-Next-80B-A3B-Thinking"),
            Deployment(tp=4, max_model_len=32768),
        ),
        "Llama-3.1-8B PP4": (
            load_model("meta-llama/Llama-3.1-8B-Instruct"),
            Deployment(pp=4, max_model_len=8192),
        ),
    }
    print("warm plan once the spec is loaded (target <= 1 ms):")
    for label, (s, dep) in cases.items():
        t = warm(lambda s=s, dep=dep: plan(s, gpu, dep), 300)

        def fresh(s=s, dep=dep):
            # the per-rank layer sizes are memoised on the spec: drop them to time a new TP
            s.__dict__.pop("_rank_layer_bytes", None)
            return plan(s, gpu, dep)

        t_fresh = warm(fresh, 300)
        print(f"  {label:40s} {t * 1e3:.3f} ms (first plan at this TP: {t_fresh * 1e3:.3f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
