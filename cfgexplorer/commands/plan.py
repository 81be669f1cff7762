"""``cfgexplorer plan`` and ``cfgexplorer profiles``: the capacity planner."""

from __future__ import annotations

import argparse
import math
import re
from typing import Any

from cfgexplorer.cli import add_common_output_args, emit
from cfgexplorer.errors import InvalidDeploymentError

BAR_WIDTH = 60  # characters of the budget bar in --pretty output


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{value} is outside (0, 1]; vLLM's default is 0.9")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{value} must be a finite number > 0")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plan",
        help="per-GPU memory of a vLLM deployment: weights, activation, KV cache, concurrency",
    )
    p.add_argument("--model", required=True, help="catalog id, Hub id or local config path")
    gpu = p.add_mutually_exclusive_group()
    gpu.add_argument("--gpu", default=None, help="GPU name from the catalog (default H100)")
    gpu.add_argument(
        "--gpu-memory", type=_positive_float, metavar="GIB", help="a custom GPU of this many GiB"
    )
    p.add_argument(
        "--tp", "--tensor-parallel-size", type=_positive_int, dest="tp", help="default 1"
    )
    p.add_argument(
        "--pp", "--pipeline-parallel-size", type=_positive_int, dest="pp", help="default 1"
    )
    p.add_argument("--dp", "--data-parallel-size", type=_positive_int, dest="dp", help="default 1")
    p.add_argument("--enable-expert-parallel", action="store_true")
    p.add_argument("--max-model-len", type=_positive_int, help="default: the model's maximum")
    p.add_argument(
        "--allow-long-max-model-len",
        action="store_true",
        help="allow max_model_len above the model's maximum (VLLM_ALLOW_LONG_MAX_MODEL_LEN=1)",
    )
    p.add_argument(
        "--gpu-memory-utilization",
        "--gpu-mem-util",
        type=_fraction,
        dest="gpu_memory_utilization",
        help="fraction of device memory vLLM may use (profile default 0.9)",
    )
    p.add_argument("--dtype", default="auto", choices=["auto", "bfloat16", "float16", "float32"])
    p.add_argument("--quantization", choices=["fp8"], help="runtime quantization of the weights")
    p.add_argument(
        "--kv-cache-dtype", default="auto", choices=["auto", "fp8", "fp8_e4m3", "fp8_e5m2"]
    )
    p.add_argument("--block-size", type=_positive_int)
    p.add_argument("--max-num-seqs", type=_positive_int)
    p.add_argument("--max-num-batched-tokens", type=_positive_int)
    p.add_argument("--engine-profile", help="vLLM release profile (see 'cfgexplorer profiles')")
    p.add_argument(
        "--batch-size",
        type=_positive_int,
        help="requests that must run at once: the plan fails if fewer fit",
    )
    p.add_argument(
        "--show-possible-tp", action="store_true", help="list every TP size with vLLM's verdict"
    )
    p.add_argument(
        "--auto-parallel",
        action="store_true",
        help="pick the smallest TP x PP that holds --batch-size requests of --max-model-len",
    )
    p.add_argument("--max-gpus", type=_positive_int, default=64, help="limit for --auto-parallel")
    p.add_argument("--hf-token", metavar="TOKEN", help="token for gated Hub models (or HF_TOKEN)")
    add_common_output_args(p, "write the JSON plan to FILE")
    p.set_defaults(handler=run_plan)

    p = sub.add_parser("profiles", help="engine profiles (vLLM releases) and their constants")
    add_common_output_args(p, "write the JSON to FILE")
    p.set_defaults(handler=run_profiles)


def build(args: argparse.Namespace) -> Any:
    """Resolve model and GPU and return the Plan for parsed CLI arguments."""
    from cfgexplorer.gpus import custom_gpu, get_gpu
    from cfgexplorer.memory import Deployment, get_profile, plan
    from cfgexplorer.sources import load_model

    profile = get_profile(args.engine_profile)
    if args.gpu is not None and not args.gpu.strip():
        raise InvalidDeploymentError("--gpu is empty; name a GPU (cfgexplorer gpus lists them)")
    gpu = custom_gpu(args.gpu_memory) if args.gpu_memory else get_gpu(args.gpu or "H100")
    spec = load_model(args.model, token=args.hf_token)
    auto = getattr(args, "auto_parallel", False)
    if auto and (args.tp or args.pp):
        raise InvalidDeploymentError(
            "--auto-parallel chooses tp and pp itself; drop --tp/--pp, or drop --auto-parallel"
        )
    dep = Deployment(
        tp=args.tp or 1,
        pp=args.pp or 1,
        dp=args.dp or 1,
        enable_expert_parallel=args.enable_expert_parallel,
        gpu_memory_utilization=args.gpu_memory_utilization,
        max_model_len=args.max_model_len,
        dtype=args.dtype,
        quantization=args.quantization,
        kv_cache_dtype=args.kv_cache_dtype,
        block_size=args.block_size,
        max_num_seqs=args.max_num_seqs,
        max_num_batched_tokens=args.max_num_batched_tokens,
        allow_long_max_model_len=args.allow_long_max_model_len,
    )
    if auto:
        from cfgexplorer.memory import smallest_parallelism

        found = smallest_parallelism(
            spec,
            gpu,
            max_model_len=args.max_model_len,
            concurrency=args.batch_size or 1,
            max_gpus=args.max_gpus,
            base=dep,
            profile=profile.name,
        )
        if found is None:
            raise InvalidDeploymentError(
                f"no TP x PP up to {args.max_gpus} {gpu.name} GPUs holds "
                f"{args.batch_size or 1} request(s) of {args.max_model_len or 'maximum'} tokens; "
                "raise --max-gpus, quantize, or shorten --max-model-len"
            )
        found.notes.insert(
            0,
            f"--auto-parallel chose tp={found.deployment.tp} pp={found.deployment.pp}: the "
            "fewest GPUs that fit",
        )
        return found
    return plan(spec, gpu, dep, profile)


def run_plan(args: argparse.Namespace) -> int:
    from cfgexplorer.memory import valid_tp_sizes

    result = build(args)
    out = result.to_dict()
    if args.show_possible_tp:
        from cfgexplorer.sources import load_model

        spec = load_model(args.model, token=args.hf_token)
        out["valid_tp"] = valid_tp_sizes(spec, 64, bool(args.enable_expert_parallel))
    if args.batch_size and result.max_concurrency < args.batch_size:
        out["fits"] = False
        out["problems"].append(
            f"only {result.max_concurrency:.2f} requests of {result.max_model_len} tokens fit, "
            f"fewer than the {args.batch_size} asked for; lower max_model_len or add GPUs"
        )
    return emit(out, args, render_plan)


def render_plan(r: dict[str, Any]) -> str:
    """A breakdown that reads like vLLM's start-up log, with a bar of the budget."""
    m, kv, d = r["memory_gib"], r["kv_cache"], r["deployment"]
    lines = [
        f"{r['model']} on {d['num_gpus']} x {r['gpu']} (tp={d['tp']} pp={d['pp']} dp={d['dp']}), "
        f"engine profile {r['engine_profile']}",
        f"  device total {m['device_total']:.2f} GiB x gpu_memory_utilization "
        f"{d['gpu_memory_utilization']:g} = budget {m['budget']:.2f} GiB per GPU",
        f"  Model loading took {m['weights']:.2f} GiB memory",
        f"  torch peak memory increase: {m['activation']:.2f} GiB; "
        f"non-torch forward increase memory: {m['non_torch']:.2f} GiB",
        f"  Available KV cache memory: {m['kv_pool']:.2f} GiB",
        f"  GPU KV cache size: {kv['tokens']:,} tokens ({kv['blocks']:,} blocks of "
        f"{kv['block_size']}, {kv['bytes_per_token']:,} bytes per token, KV dtype {kv['dtype']})",
        f"  Maximum concurrency for {d['max_model_len']:,} tokens per request: "
        f"{kv['max_concurrency']:.2f}x",
        "",
        "  " + budget_bar(m),
        "",
        f"  verdict: {'FITS' if r['fits'] else 'DOES NOT FIT'} (largest term: "
        f"{r['dominant_term']}); largest max_model_len that fits: "
        f"{r['max_model_len_that_fits'] or 'none'}",
    ]
    lines += [f"  problem: {p}" for p in r["problems"]]
    if len(r["stages"]) > 1:
        lines.append("  pipeline stages (per GPU):")
        for s in r["stages"]:
            lines.append(
                f"    stage {s['stage']} layers {s['layers']}: weights {s['weights_gib']:.2f}, "
                f"activation {s['activation_gib']:.2f}, KV pool {s['kv_pool_gib']:.2f} GiB, "
                f"{s['kv_tokens']:,} tokens"
            )
    tp = r["valid_tp"]
    lines.append(f"  valid TP sizes: {', '.join(map(str, tp['valid'])) or 'none'}")
    lines += [f"    rejected {sizes}: {why}" for why, sizes in rejected_tp_groups(tp["rejected"])]
    lines.append(f"  {r['vllm_serve']}")
    lines += [f"  note: {n}" for n in r["notes"]]
    return "\n".join(lines) + "\n"


def rejected_tp_groups(rejected: dict[str, str]) -> list[tuple[str, str]]:
    """Rejected TP sizes that share a reason, as (reason with TP for the size, "3, 5, 6")."""
    groups: dict[str, list[str]] = {}
    for size, reason in rejected.items():
        generic = re.sub(rf"\b{re.escape(size)}\b", "TP", reason)
        groups.setdefault(generic, []).append(size)
    return [(why, ", ".join(sizes)) for why, sizes in groups.items()]


def budget_bar(m: dict[str, float]) -> str:
    """A text bar of the device: weights W, activation A, non-torch N, KV cache K, unused ."""
    total = m["device_total"] or 1.0
    parts = [
        ("W", m["weights"]),
        ("A", m["activation"]),
        ("N", m["non_torch"]),
        ("K", max(m["kv_pool"], 0.0)),
    ]
    bar = ""
    for ch, gib in parts:
        share = min(max(gib / total, 0.0), 1.0)  # a term larger than the device fills the bar
        bar += ch * round(BAR_WIDTH * share)
    bar = bar[:BAR_WIDTH].ljust(BAR_WIDTH, ".")
    return f"[{bar}] W weights A activation N non-torch K KV cache . unused"


def run_profiles(args: argparse.Namespace) -> int:
    from cfgexplorer.memory import engine_profiles

    rows = [p.to_dict() for p in engine_profiles().values()]
    return emit(rows, args, _render_profiles)


def _render_profiles(rows: list[dict[str, Any]]) -> str:
    lines = []
    for r in rows:
        lines.append(f"{r['name']}{' (default)' if r['default'] else ''}: vLLM {r['vllm_version']}")
        lines.append(f"  {r['description']}")
        lines.append("  defaults: " + ", ".join(f"{k}={v}" for k, v in r["defaults"].items()))
        for k, v in r["constants"].items():
            lines.append(f"  {k} = {v['value']:g}  ({v['source']})")
        lines.append("")
    return "\n".join(lines)
