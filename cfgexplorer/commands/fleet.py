"""``cfgexplorer fleet``: plan GPUs, servers, power and procurement for many models at once.

JSON on stdout (keys: ``name``, ``models``, ``procurement``, ``servers``,
``totals``, ``errors``, ``warnings``, ``assumptions``); ``totals`` holds
``gpus_needed``, ``gpus_to_buy``, ``servers``, ``servers_lower_bound``,
``gpu_power_kw``, ``facility_power_kw``, ``annual_energy_kwh`` and more.
``--csv-dir`` writes ``models.csv``, ``procurement.csv``, ``servers.csv`` and
``summary.txt`` (the plain-text summary for finance). A mistake in the fleet
file exits with status 2; a model that cannot be planned or does not fit is
reported under ``errors``/``warnings`` and left out, and the exit status is 0
unless ``--strict`` is given.
"""

from __future__ import annotations

import argparse
from typing import Any

from cfgexplorer.cli import EXIT_BAD_INPUT, add_common_output_args, emit
from cfgexplorer.errors import UserError


def register(subparsers: Any) -> None:
    """Add the ``fleet`` subcommand."""
    parser = subparsers.add_parser(
        "fleet",
        help="plan GPUs, servers, power and procurement for a fleet of models",
        description=(
            "Plan a fleet from a YAML or JSON file: GPUs and memory per model (with the "
            "capacity planner), servers by first-fit-decreasing packing (a TP group never "
            "spans servers), GPUs to buy after the inventory, power with PUE, annual energy "
            "and costs. See data/examples/fleet.yaml."
        ),
    )
    parser.add_argument("fleet_file", metavar="FLEET.yaml", help="the fleet file (YAML or JSON)")
    parser.add_argument(
        "--csv-dir",
        metavar="DIR",
        help="write models.csv, procurement.csv, servers.csv and summary.txt to DIR",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit with status 2 when any model errors or does not fit",
    )
    add_common_output_args(parser, output_help="write the JSON (or tables) to FILE")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Plan the fleet file and write the result and any exports."""
    from cfgexplorer.fleet import Fleet

    fleet_plan = Fleet.from_file(args.fleet_file).plan()
    if args.csv_dir:
        try:
            fleet_plan.write_csv(args.csv_dir)
        except OSError as exc:
            raise UserError(
                f"cannot write --csv-dir {args.csv_dir} ({exc.strerror or exc}); "
                "choose a writable directory"
            ) from None
    status = emit(fleet_plan.to_dict(), args, _render_pretty)
    if args.strict and fleet_plan.totals.models_left_out:
        return EXIT_BAD_INPUT
    return status


def _fmt(value: Any, digits: int = 2) -> str:
    """A number for a table cell; a dash for None."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _runs(slots: list[str | None]) -> list[str]:
    """Consecutive slots of one model as 'name x3'; empty slots as 'free x2'."""
    out: list[str] = []
    previous, count = object(), 0
    for name in [*slots, object()]:
        if name == previous:
            count += 1
            continue
        if count:
            label = previous if isinstance(previous, str) else "free"
            out.append(f"{label} x{count}")
        previous, count = name, 1
    return out


def _render_pretty(result: dict[str, Any]) -> str:
    """Render the plan as rich tables (rich imported only here)."""
    from rich.console import Console
    from rich.table import Table

    models = Table(title="Models", header_style="bold")
    for title in ("model", "source", "GPU", "TP", "PP", "DP", "GPUs", "weights GiB", "per GPU"):
        models.add_column(title)
    for title in ("KV pool GiB", "max conc. (all DP)", "kW", "status"):
        models.add_column(title)
    for m in result["models"]:
        models.add_row(
            m["name"],
            _fmt(m["source"]),
            m["gpu"],
            str(m["tp"]),
            str(m["pp"]),
            str(m["dp"]),
            str(m["gpus"]),
            _fmt(m["weights_total_gib"]),
            _fmt(m["weights_per_gpu_gib"]),
            _fmt(m["kv_pool_per_gpu_gib"]),
            _fmt(m["max_concurrency_all_replicas"], 1),
            _fmt(m["power_kw"]),
            m["status"].replace("_", " "),
        )

    procurement = Table(title="Procurement", header_style="bold")
    for title in ("GPU", "per server", "needed", "owned", "to buy", "servers", "lower bound"):
        procurement.add_column(title)
    procurement.add_column("kW")
    procurement.add_column("capital")
    for p in result["procurement"]:
        procurement.add_row(
            p["gpu"],
            str(p["gpus_per_server"]),
            str(p["needed"]),
            str(p["owned"]),
            str(p["to_buy"]),
            str(p["servers"]),
            str(p["servers_lower_bound"]),
            _fmt(p["power_kw"]),
            _fmt(p["capital_cost"]),
        )

    servers = Table(title="Servers", header_style="bold")
    for title in ("#", "GPU", "used", "slots"):
        servers.add_column(title)
    for s in result["servers"]:
        slots = " | ".join(_runs(s["slots"]))
        servers.add_row(str(s["server"]), s["gpu"], f"{s['used']}/{s['gpus_per_server']}", slots)

    t = result["totals"]
    totals = Table(title="Totals", header_style="bold", show_header=False)
    totals.add_column("what")
    totals.add_column("value", justify="right")
    rows = [
        ("GPUs needed", t["gpus_needed"]),
        ("GPUs owned and used", t["gpus_owned_used"]),
        ("GPUs to buy", t["gpus_to_buy"]),
        ("servers", t["servers"]),
        ("servers lower bound", t["servers_lower_bound"]),
        ("GPU power kW", t["gpu_power_kw"]),
        ("IT power kW", t["it_power_kw"]),
        (f"facility power kW (PUE {t['pue']:g})", t["facility_power_kw"]),
        ("annual energy kWh", t["annual_energy_kwh"]),
        (f"annual energy cost {t['currency']}", t["annual_energy_cost"]),
        (f"capital cost {t['currency']}", t["capital_cost"]),
        ("power headroom kW", t["power_headroom_kw"]),
        ("rack slots free", t["rack_slots_headroom"]),
    ]
    for label, value in rows:
        totals.add_row(label, _fmt(value))

    console = Console(width=160, record=True, force_terminal=False)
    with console.capture() as capture:
        for table in (models, procurement, servers, totals):
            console.print(table)
        for error in result["errors"]:
            console.print(f"error: {error['model']}: {error['message']}")
        for warning in result["warnings"]:
            console.print(f"warning: {warning['message']}")
    return capture.get()
