"""``cfgexplorer gpus``: list the GPU catalog with reference costs.

JSON keys: ``gpus`` (list of GPU records, each with ``reference_cost_per_hour``),
``count``, ``costs`` (``label``, ``disclaimer``, ``currency``, ``unit``) and
``notes``.
"""

from __future__ import annotations

import argparse
from typing import Any

from cfgexplorer.cli import add_common_output_args, emit


def register(subparsers: Any) -> None:
    """Add the ``gpus`` subcommand."""
    parser = subparsers.add_parser(
        "gpus",
        help="list the GPU catalog",
        description=(
            "List the GPUs the planner knows: reported memory, dense peaks, bandwidth, "
            "interconnect and reference costs (relative values, not prices)."
        ),
    )
    parser.add_argument(
        "--search",
        metavar="TEXT",
        help="keep GPUs whose name, alias, vendor or generation contains TEXT",
    )
    add_common_output_args(parser, output_help="write the JSON (or table) to FILE")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """List the catalog, filtered by ``--search``."""
    from cfgexplorer import gpus

    selected = [g for g in gpus.list_gpus() if _matches(g, args.search)]
    costs = gpus.reference_costs()

    records = []
    for gpu in selected:
        record = gpu.to_dict()
        record["reference_cost_per_hour"] = costs.get(gpu.name)
        records.append(record)

    notes = [
        "memory_gib_reported is what the device reports to CUDA/ROCm (GiB); "
        "vLLM's budget is gpu_memory_utilization times this figure",
        "TFLOPS are dense (not 2:4 sparse) tensor peaks; null means not supported",
        "fields listed under 'estimates' are not datasheet or measured figures; "
        "see each entry's 'source'",
    ]
    if args.search and not records:
        notes.append(f"no GPU matches {args.search!r}")

    result = {
        "count": len(records),
        "gpus": records,
        "costs": {
            "label": gpus.COST_LABEL,
            "disclaimer": gpus.COST_DISCLAIMER,
            "currency": "USD",
            "unit": "per GPU-hour",
        },
        "notes": notes,
    }
    return emit(result, args, _render_pretty)


def _matches(gpu: Any, text: str | None) -> bool:
    """True when the search text appears in a GPU's names, vendor or generation."""
    if not text:
        return True
    from cfgexplorer.gpus import normalize_name

    needle = normalize_name(text)
    haystack = [gpu.name, *gpu.aliases, gpu.vendor, gpu.generation]
    return any(needle in normalize_name(item) for item in haystack)


def _fmt(value: Any, digits: int = 0) -> str:
    """Format a number for the table; a dash for missing values."""
    if value is None:
        return "-"
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}"
    return f"{value:,.0f}" if isinstance(value, int | float) else str(value)


def _render_pretty(result: dict[str, Any]) -> str:
    """Render the catalog as a rich table (rich imported only here)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"GPU catalog ({result['count']} GPUs)", header_style="bold")
    columns = [
        ("GPU", "left"),
        ("arch", "left"),
        ("mem GB", "right"),
        ("reported GiB", "right"),
        ("bf16 TF", "right"),
        ("fp8 TF", "right"),
        ("fp4 TF", "right"),
        ("BW GB/s", "right"),
        ("link GB/s", "right"),
        ("per srv", "right"),
        ("TDP W", "right"),
        ("fp8 KV", "center"),
        ("ref $/h", "right"),
    ]
    for title, justify in columns:
        table.add_column(title, justify=justify)  # type: ignore[arg-type]

    for gpu in result["gpus"]:
        reported = f"{gpu['memory_gib_reported']:.2f}"
        if "memory_gib_reported" in gpu["estimates"]:
            reported += "*"
        table.add_row(
            gpu["name"],
            gpu["generation"],
            _fmt(gpu["memory_gb_nominal"]),
            reported,
            _fmt(gpu["bf16_tflops"] or gpu["fp16_tflops"]),
            _fmt(gpu["fp8_tflops"]),
            _fmt(gpu["fp4_tflops"]),
            _fmt(gpu["memory_bandwidth_gbps"]),
            f"{_fmt(gpu['interconnect_gbps'])} {gpu['interconnect_kind'] or ''}".strip(),
            _fmt(gpu["gpus_per_server"]),
            _fmt(gpu["tdp_watts"]),
            {True: "yes", False: "no", None: "?"}[gpu["fp8_kv_cache"]],
            _fmt(gpu["reference_cost_per_hour"], 2),
        )

    console = Console(width=160, record=True, force_terminal=False)
    with console.capture() as capture:
        console.print(table)
        console.print("* estimated reported memory (see the entry's source)")
        console.print(f"Costs: {result['costs']['label']}. {result['costs']['disclaimer']}")
    return capture.get()
