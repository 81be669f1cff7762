"""``cfgexplorer models`` and ``cfgexplorer model``: the catalog and one resolved model."""

from __future__ import annotations

import argparse
from typing import Any

from cfgexplorer.cli import add_common_output_args, emit


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the bundled model catalog")
    p.add_argument("--search", metavar="TEXT", help="only ids containing TEXT (any case)")
    p.add_argument("--json", action="store_true", help="JSON output (the default)")
    add_common_output_args(p, "write the JSON list to FILE")
    p.set_defaults(handler=run_models)

    p = sub.add_parser("model", help="show one resolved model and its parameter breakdown")
    p.add_argument("model", metavar="MODEL", help="catalog id, Hub id, or local config path")
    p.add_argument("--hf-token", metavar="TOKEN", help="token for gated Hub models (or HF_TOKEN)")
    p.add_argument("--revision", help="Hub revision (branch, tag or commit)")
    p.add_argument("--json", action="store_true", help="JSON output (the default)")
    add_common_output_args(p, "write the JSON to FILE")
    p.set_defaults(handler=run_model)


def model_summary(model_id: str) -> dict[str, Any]:
    """One catalog line: id, architecture, sizes, attention kinds, MoE, quantization, context."""
    from cfgexplorer.catalog import catalog_spec, entries

    spec = catalog_spec(model_id)
    entry = entries()[model_id]
    return {
        "id": model_id,
        "architecture": spec.architecture,
        "model_type": spec.model_type,
        "params_total": spec.params_total,
        "params_active": spec.params_active,
        "params_billion": round(spec.params_total / 1e9, 2),
        "active_billion": round(spec.params_active / 1e9, 2),
        "attention": spec.attention_kinds,
        "moe": (
            f"{spec.moe.num_experts} experts, top-{spec.moe.experts_per_token}"
            if spec.moe
            else None
        ),
        "quantization": spec.quant.method,
        "max_context": spec.max_position_embeddings,
        "weight_gib": round(spec.weight_bytes / 2**30, 2),
        "published_params": entry.published_params,
        "published_basis": entry.published_basis,
    }


def run_models(args: argparse.Namespace) -> int:
    from cfgexplorer.catalog import search

    rows = [model_summary(e.model_id) for e in search()]
    if args.search:
        # Every word must appear in the id, architecture, type, attention kinds, MoE or quant.
        words = args.search.lower().split()
        rows = [r for r in rows if all(w in _haystack(r) for w in words)]
    return emit(rows, args, _render_models)


def _haystack(row: dict[str, Any]) -> str:
    parts = [
        row["id"],
        row["architecture"],
        row["model_type"],
        row["quantization"],
        " ".join(row["attention"]),
        (row["moe"] and "moe " + row["moe"]) or "dense",
    ]
    return " ".join(parts).lower().replace("-", " ") + " " + row["id"].lower()


def _render_models(rows: list[dict[str, Any]]) -> str:
    from rich.table import Table

    table = Table(title=f"{len(rows)} bundled models", show_lines=False)
    for col in ("id", "architecture", "total B", "active B", "attention", "MoE", "quant", "ctx"):
        table.add_column(col, overflow="fold")
    for r in rows:
        kinds = ", ".join(f"{n} {k}" for k, n in r["attention"].items())
        table.add_row(
            r["id"],
            r["architecture"],
            f"{r['params_billion']:g}",
            f"{r['active_billion']:g}",
            kinds,
            r["moe"] or "-",
            r["quantization"],
            f"{r['max_context']:,}",
        )
    return _render(table)


def _render(renderable: Any) -> str:
    from rich.console import Console

    console = Console(record=True, width=160, force_terminal=False)
    with console.capture() as cap:
        console.print(renderable)
    return cap.get()


def run_model(args: argparse.Namespace) -> int:
    from cfgexplorer.sources import load_model

    spec = load_model(args.model, token=args.hf_token, revision=args.revision)
    result = spec.to_dict()
    from cfgexplorer.catalog import find

    entry = find(spec.model_id) if spec.source == "catalog" else None
    if entry:
        result["catalog"] = {
            "origin": entry.origin,
            "published_params": entry.published_params,
            "published_basis": entry.published_basis,
            "published_source": entry.published_source,
        }
    result["layers"] = [la.to_dict() for la in spec.layers]
    return emit(result, args, _render_model)


def _render_model(r: dict[str, Any]) -> str:
    from rich.table import Table

    lines = [
        f"{r['model_id']}  ({r['architecture']}, {r['model_type']}, from {r['source']})",
        f"  {r['num_layers']} layers, hidden {r['hidden_size']}, {r['attention']}, "
        f"head_dim {r['head_dim']}, vocab {r['vocab_size']:,}, dtype {r['dtype']}",
        f"  max context {r['max_position_embeddings']:,} tokens; quantization: "
        f"{r['quantization']['description']}",
        f"  parameters: {r['params_total']:,} total, {r['params_active']:,} active per token; "
        f"weights {r['weight_gib']:.2f} GiB as loaded",
    ]
    if r.get("moe"):
        m = r["moe"]
        lines.append(
            f"  MoE: {m['num_experts']} experts, top-{m['experts_per_token']}, expert width "
            f"{m['expert_intermediate_size']}, {m['moe_layers']} MoE layers"
        )
    table = Table(title="parameters by module")
    table.add_column("module")
    table.add_column("parameters", justify="right")
    table.add_column("share", justify="right")
    total = max(r["params_total"], 1)
    for name, count in r["params_by_module"].items():
        table.add_row(name, f"{count:,}", f"{count / total:.1%}")
    notes = [f"  note: {n}" for n in r.get("notes", [])]
    return "\n".join(lines) + "\n" + _render(table) + "\n".join(notes) + ("\n" if notes else "")
