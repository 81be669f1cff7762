"""``cfgexplorer estimate``: which GPU, how many, what parallelism, how fast, what cost.

JSON keys: ``input_parameters``, ``estimated_best_performance`` (``highest_throughput``,
``lowest_ttft``, ``lowest_itl``, ``lowest_e2e_latency``, ``lowest_cost``,
``lowest_cost_per_million_tokens``), ``gpu_results`` (per GPU: ``num_gpus``, ``tp``,
``best_latency``, ``best_output_throughput``, ``cost``, ``memory``, ``sizing`` with a
target, and ``points`` with ``--verbose``, ``--concurrency`` or ``--request-rate``),
``failed_gpus`` (name -> reason), ``slo_basis``, ``costs``, ``provenance`` (with the
``arrivals`` model used), ``notes``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from cfgexplorer.errors import InvalidDeploymentError


def register(subparsers: Any) -> None:
    """Add the ``estimate`` subcommand."""
    from cfgexplorer.cli import add_common_output_args

    parser = subparsers.add_parser(
        "estimate",
        help="recommend GPUs, parallelism and concurrency under latency SLOs",
        description=(
            "Estimate TTFT, ITL, E2E latency and throughput with an analytical roofline model "
            "for every GPU type, GPU count, TP size and concurrency, and rank what meets the "
            "SLOs (checked against the upper edge of the calibrated error band)."
        ),
    )
    parser.add_argument("--model", required=True, help="catalog id, Hub id or local config path")
    parser.add_argument("--input-len", type=int, required=True, metavar="I", help="prompt tokens")
    parser.add_argument("--output-len", type=int, required=True, metavar="O", help="output tokens")
    parser.add_argument(
        "--max-gpus",
        type=int,
        default=8,
        metavar="N",
        help="most GPUs per deployment, 1 to 1024 (default 8)",
    )
    parser.add_argument(
        "--max-gpus-per-type",
        action="append",
        default=[],
        metavar="NAME:N",
        help="a per-GPU-type limit such as H100:8 (repeatable)",
    )
    parser.add_argument("--gpu-list", metavar="A,B", help="only these GPU types")
    parser.add_argument("--max-ttft", type=float, metavar="MS", help="TTFT SLO, milliseconds")
    parser.add_argument("--max-itl", type=float, metavar="MS", help="ITL SLO, milliseconds")
    parser.add_argument("--max-latency", type=float, metavar="S", help="E2E SLO, seconds")
    parser.add_argument(
        "--custom-gpu-cost",
        action="append",
        default=[],
        metavar="NAME:COST",
        help="cost per GPU-hour overriding the reference value (repeatable)",
    )
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--target-rps", type=float, metavar="R", help="requests per second to serve"
    )
    target.add_argument(
        "--target-concurrency", type=int, metavar="N", help="concurrent requests to serve"
    )
    parser.add_argument("--tp", type=int, metavar="N", help="only this tensor-parallel size")
    load = parser.add_mutually_exclusive_group()
    load.add_argument(
        "--concurrency", metavar="1,8,32", help="total concurrencies per deployment to report"
    )
    load.add_argument(
        "--request-rate",
        type=float,
        metavar="R",
        help="requests per second per deployment (open loop; concurrency = rate x E2E)",
    )
    parser.add_argument(
        "--arrivals",
        default="random",
        choices=["random", "synchronized", "static"],
        help=(
            "random: Poisson-like traffic (default); synchronized: fixed-length closed-loop "
            "clients in lockstep, as the NIM calibration benchmarks ran; static: one batch "
            "that starts and ends together, as TensorRT-LLM's gptSessionBenchmark ran"
        ),
    )
    parser.add_argument(
        "--allow-long-max-model-len",
        action="store_true",
        help="allow input + output beyond the model's maximum context (as vLLM's "
        "VLLM_ALLOW_LONG_MAX_MODEL_LEN=1)",
    )
    parser.add_argument("--quantization", choices=["fp8"], help="vLLM runtime quantization")
    parser.add_argument(
        "--kv-cache-dtype", default="auto", choices=["auto", "fp8"], help="KV-cache dtype"
    )
    parser.add_argument(
        "--engine",
        default="vllm",
        choices=["vllm", "sglang", "trtllm"],
        help="serving engine whose efficiency is assumed (default vllm)",
    )
    parser.add_argument(
        "--engine-profile", metavar="NAME", help="capacity-model engine profile (vLLM release)"
    )
    add_common_output_args(parser, output_help="write the JSON (or table) to FILE")
    parser.set_defaults(handler=run)


def _name_value(text: str, flag: str, kind: type) -> tuple[str, Any]:
    """Parse NAME:VALUE for flags other than the cost (which gpus.parse_cost_override owns)."""
    name, sep, value = text.rpartition(":")
    if not sep or not name.strip():
        raise InvalidDeploymentError(f"{flag} {text!r} is not NAME:N; write it like H100:8")
    try:
        return name.strip(), kind(value)
    except ValueError:
        raise InvalidDeploymentError(
            f"{flag} {text!r} has a value that is not a whole number; write it like H100:8"
        ) from None


def _whole_numbers(text: str, flag: str) -> tuple[int, ...]:
    """A comma-separated list of whole numbers; an empty item or a non-number is an error."""
    parts = [part.strip() for part in text.split(",")]
    try:
        if not all(parts):
            raise ValueError
        return tuple(int(part) for part in parts)
    except ValueError:
        raise InvalidDeploymentError(
            f"{flag} {text!r} is not a list of whole numbers like 1,8,32"
        ) from None


def _known_gpu(resolve: Callable[[str], Any], text: str, flag: str) -> Any:
    """Resolve a GPU name with ``resolve``; an unknown one names the flag and `cfgexplorer gpus`.

    The catalog's own message ends with a way out that only ``plan`` has (``--gpu-memory``);
    estimate needs the TFLOPS and bandwidth of a catalog GPU, so it points at the list.
    """
    from cfgexplorer.errors import UnknownGPUError

    try:
        return resolve(text)
    except UnknownGPUError as exc:
        first = str(exc).split(";")[0]
        raise UnknownGPUError(
            f"{flag}: {first}; estimate needs a catalog GPU, run `cfgexplorer gpus` to list them"
        ) from None


def build_request(args: argparse.Namespace) -> Any:
    """Turn parsed arguments into a RecommendRequest (validating names and numbers)."""
    from cfgexplorer.gpus import get_gpu, parse_cost_override
    from cfgexplorer.recommend import RecommendRequest

    costs = dict(
        _known_gpu(parse_cost_override, text, "--custom-gpu-cost") for text in args.custom_gpu_cost
    )
    limits = {}
    for text in args.max_gpus_per_type:
        name, value = _name_value(text, "--max-gpus-per-type", int)
        limits[_known_gpu(get_gpu, name, "--max-gpus-per-type").name] = value
    gpu_list = None
    if args.gpu_list is not None:  # an empty --gpu-list "" is a mistake, not "every GPU"
        names = [n.strip() for n in args.gpu_list.split(",")]
        if not any(names):
            raise InvalidDeploymentError("--gpu-list is empty; give names like H100,A100-80GB")
        if not all(names):
            raise InvalidDeploymentError(
                f"--gpu-list {args.gpu_list!r} has an empty name; give names like H100,A100-80GB"
            )
        gpu_list = tuple(_known_gpu(get_gpu, n, "--gpu-list").name for n in names)
    concurrency = None
    if args.concurrency is not None:
        concurrency = _whole_numbers(args.concurrency, "--concurrency")
    return RecommendRequest(
        model=args.model,
        input_len=args.input_len,
        output_len=args.output_len,
        max_gpus=args.max_gpus,
        max_gpus_per_type=limits,
        gpu_list=gpu_list,
        max_ttft_ms=args.max_ttft,
        max_itl_ms=args.max_itl,
        max_e2e_s=args.max_latency,
        custom_costs=costs,
        target_rps=args.target_rps,
        target_concurrency=args.target_concurrency,
        tp=args.tp,
        concurrency=concurrency,
        quantization=args.quantization,
        kv_cache_dtype=args.kv_cache_dtype,
        engine=args.engine,
        engine_profile=args.engine_profile,
        include_points=bool(args.verbose) or args.request_rate is not None,
        arrivals=args.arrivals,
        request_rate=args.request_rate,
        allow_long_max_model_len=args.allow_long_max_model_len,
    )


def run(args: argparse.Namespace) -> int:
    """Search and print the recommendation."""
    from cfgexplorer.cli import emit
    from cfgexplorer.recommend import recommend, validate_request

    request = build_request(args)
    validate_request(request)
    result = recommend(request).to_dict()
    return emit(result, args, _render_pretty)


def _render_pretty(result: dict[str, Any]) -> str:
    """The ranked table and the exclusions grouped by reason (rich imported only here)."""
    from rich.console import Console
    from rich.table import Table

    params = result["input_parameters"]
    table = Table(
        title=(
            f"{params['model']}  ISL {params['input_len']}  OSL {params['output_len']}  "
            f"engine {params['engine']}  arrivals {params['arrivals']}"
            + (f"  {params['request_rate']:g} req/s" if params["request_rate"] else "")
        ),
        header_style="bold",
    )
    for title in (
        "GPU",
        "GPUs",
        "TP",
        "conc",
        "out tok/s",
        "tok/s/GPU",
        "TTFT ms",
        "ITL ms",
        "E2E s",
        "bound",
        "$/h",
        "$/M tok",
        "c=1 E2E s",
    ):
        table.add_column(title, justify="left" if title in ("GPU", "bound") else "right")
    for name, r in result["gpu_results"].items():
        b = r["best_output_throughput"]
        cost = r["cost"]["best_output_throughput"]
        table.add_row(
            name,
            str(b["num_gpus"]),
            str(b["tp"]),
            f"{b['concurrency']:g}",
            f"{b['output_tok_s']:,.0f}",
            f"{b['output_tok_s_per_gpu']:,.0f}",
            f"{b['ttft_ms']:,.1f}",
            f"{b['itl_ms']:.2f}",
            f"{b['e2e_s']:.2f}",
            b["bound"],
            "-" if cost["per_hour"] is None else f"{cost['per_hour']:.2f}",
            "-"
            if cost["per_million_output_tokens"] is None
            else f"{cost['per_million_output_tokens']:.3f}",
            f"{r['best_latency']['e2e_s']:.2f}",
        )

    console = Console(width=170, record=True, force_terminal=False)
    with console.capture() as capture:
        console.print(table)
        best = result["estimated_best_performance"]
        for key, item in best.items():
            if item:
                where = f"tp {item['tp']}"
                if "concurrency" in item:
                    where += f", concurrency {item['concurrency']}"
                console.print(
                    f"{key}: {item['gpu']} x{item['num_gpus']} ({where}) "
                    f"{item['metric']} = {item['value']}"
                )
        _print_sizing(console, result)
        groups: dict[str, list[str]] = {}
        for name, reason in result["failed_gpus"].items():
            # The reason's category is its opening words, up to the first ":" or " (".
            cut = min((i for i in (reason.find(":"), reason.find(" (")) if i > 0), default=None)
            groups.setdefault(reason[:cut], []).append(f"{name}: {reason}")
        for head, lines in groups.items():
            console.print(f"\nExcluded — {head}:")
            for line in lines:
                console.print(f"  {line}")
        console.print(f"\n{result['slo_basis']}.")
        console.print(f"Costs: {result['costs']['label']}. {result['costs']['disclaimer']}")
        prov = result["provenance"]
        console.print(
            f"Provenance: {prov['kind']} by {prov['model']} {prov['model_version']}, "
            f"engine {prov['engine']}; arrivals {prov['arrivals']}; band: {prov['error_band']}"
        )
    return capture.get()


def _print_sizing(console: Any, result: dict[str, Any]) -> None:
    """With --target-rps or --target-concurrency: the replicas each GPU type needs."""
    sized = {n: r["sizing"] for n, r in result["gpu_results"].items() if r.get("sizing")}
    if not sized:
        return
    from rich.table import Table

    first = next(iter(sized.values()))
    target = (
        f"{first['target_rps']:g} requests/s"
        if first.get("target_rps") is not None
        else f"{first['target_concurrency']} concurrent requests"
    )
    table = Table(title=f"Sized for {target}", header_style="bold")
    columns = [
        ("GPU", None, "{}"),
        ("TP", "tp", "{}"),
        ("replicas", "replicas", "{}"),
        ("GPUs", "num_gpus", "{}"),
        ("conc/replica", "concurrency_per_replica", "{:,.1f}"),
        ("req/s/replica", "request_rate_per_replica", "{:,.2f}"),
        ("TTFT ms", "ttft_ms", "{:,.1f}"),
        ("ITL ms", "itl_ms", "{:.2f}"),
        ("E2E s", "e2e_s", "{:.2f}"),
        ("$/h", "cost_per_hour", "{:.2f}"),
        ("note", None, "{}"),
    ]
    for title, _key, _fmt in columns:
        table.add_column(title, justify="left" if title in ("GPU", "note") else "right")
    for name, z in sized.items():
        cells = [
            "-" if z.get(key) is None else fmt.format(z[key]) for _t, key, fmt in columns[1:-1]
        ]
        note = "" if z.get("within_max_gpus", True) else "more GPUs than --max-gpus"
        table.add_row(name, *cells, note)
    console.print(table)
