"""FleetPlanner: the state of the fleet page (many models, servers, power, procurement).

The model table, the inventory and the per-GPU-type table (GPUs per server and
prices) are DataFrames the page edits in place; the rest of the infrastructure
is a handful of numbers. The page starts from the bundled example fleet, read
with :meth:`cfgexplorer.fleet.Fleet.from_file` as ``cfgexplorer fleet`` reads it,
and every output comes from one call of :meth:`cfgexplorer.fleet.Fleet.plan` on
the fleet the inputs describe, so the page and the CLI agree on the same fleet.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping
from typing import Any, ClassVar

import pandas as pd
import param

from cfgexplorer.errors import UserError
from cfgexplorer.models.base import PageState
from cfgexplorer.paths import data_dir

log = logging.getLogger(__name__)

MODEL_COLUMNS = [
    "name",
    "model",
    "gpu",
    "tp",
    "pp",
    "dp",
    "max_model_len",
    "concurrency",
    "params_billion",
    "quantization",
    "moe",
]
INTEGER_COLUMNS = ("tp", "pp", "dp", "max_model_len", "concurrency")
NUMBER_COLUMNS = (*INTEGER_COLUMNS, "params_billion")
INVENTORY_COLUMNS = ["gpu", "count"]
PER_GPU_KEYS = ("gpus_per_server", "gpu_price", "server_price")  # a number or GPU -> number
GPU_TYPE_COLUMNS = ["gpu", *PER_GPU_KEYS]
DEFAULT_ROW = "default"  # the GPU-type row that applies to every type without its own row
INFRA_SCALARS = (
    "pue",
    "power_budget_kw",
    "rack_slots",
    "server_power_kw",
    "electricity_price_per_kwh",
    "currency",
)
MAX_MODELS = 200  # rows of the model table
EXAMPLE_FILE = "examples/fleet.yaml"  # under the bundled data directory
SLOT_GAP = 0.1  # width of the gap between two GPU slots in the layout drawing


def example_fleet() -> dict[str, Any]:
    """The bundled example fleet as ``cfgexplorer fleet`` reads it (the page's start)."""
    from cfgexplorer.fleet import Fleet

    return Fleet.from_file(data_dir() / EXAMPLE_FILE).to_dict()


def models_frame(entries: list[dict[str, Any]]) -> pd.DataFrame:
    """A model table with every column, in order, from file-style entries."""
    frame = pd.DataFrame(entries).reindex(columns=MODEL_COLUMNS)
    for col in ("tp", "pp", "dp"):
        frame[col] = frame[col].fillna(1).astype(int)
    frame["moe"] = frame["moe"].fillna(False).astype(bool)
    return frame.astype(object).where(frame.notna(), None)


def inventory_frame(counts: Mapping[str, Any]) -> pd.DataFrame:
    """The inventory table from a fleet file's ``inventory`` mapping."""
    return pd.DataFrame(list(counts.items()), columns=INVENTORY_COLUMNS)


def gpu_types_frame(infrastructure: Mapping[str, Any]) -> pd.DataFrame:
    """The per-GPU-type table from a fleet file's infrastructure, the default row first.

    A number in the file (every GPU type) goes in the default row; a mapping
    GPU name -> number gives one row per GPU type. Empty cells mean: use the
    default row, and where that is empty too, 8 GPUs per server and no price.
    """
    rows: dict[str, dict[str, Any]] = {DEFAULT_ROW: {}}
    for key in PER_GPU_KEYS:
        value = infrastructure.get(key)
        if isinstance(value, Mapping):
            for gpu, item in value.items():
                rows.setdefault(str(gpu), {})[key] = item
        elif value is not None:
            rows[DEFAULT_ROW][key] = value
    return gpu_rows_frame([{"gpu": g, **v} for g, v in rows.items()])


def gpu_rows_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A GPU-type table with every column, whole numbers kept whole, empty cells None."""
    records = [
        [_number_cell(r.get(c)) if c != "gpu" else r.get(c) for c in GPU_TYPE_COLUMNS] for r in rows
    ]
    return pd.DataFrame(records, columns=GPU_TYPE_COLUMNS, dtype=object)


def per_gpu_values(frame: pd.DataFrame, gpus_in_use: list[str]) -> dict[str, Any]:
    """The GPU-type table as a fleet file writes it: a number, or GPU name -> number.

    The default row becomes the single number when no type has its own value,
    and otherwise fills in the types in use (models, inventory) left without one.
    """
    per_type: dict[str, dict[str, Any]] = {k: {} for k in PER_GPU_KEYS}
    default: dict[str, Any] = {}
    for row in frame.to_dict("records"):
        gpu = _clean(row.get("gpu"))
        if gpu is None:
            continue
        for key in PER_GPU_KEYS:
            value = _number_cell(row.get(key))
            if value is None:
                continue
            if str(gpu).strip().lower() == DEFAULT_ROW:
                default[key] = value
            else:
                per_type[key][str(gpu).strip()] = value
    out: dict[str, Any] = {}
    for key in PER_GPU_KEYS:
        table = per_type[key]
        if not table:
            if key in default:
                out[key] = default[key]
            continue
        if key in default:
            covered = {_canonical_gpu(g) for g in table}
            for gpu in gpus_in_use:
                if _canonical_gpu(gpu) not in covered:
                    table[gpu] = default[key]
                    covered.add(_canonical_gpu(gpu))
        out[key] = table
    return out


def _canonical_gpu(name: str) -> str:
    """The catalog name of a GPU (the name itself when unknown; the plan then says so)."""
    from cfgexplorer import gpus

    try:
        return gpus.get_gpu(name).name
    except UserError:
        return name


def _clean(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, str) and not value.strip():
        return None
    if hasattr(value, "item") and not isinstance(value, str):
        return value.item()
    return value


def _number_cell(value: Any) -> Any:
    """A table cell meant as a number: text typed into a cell is read as one, 8.0 becomes 8."""
    value = _clean(value)
    if isinstance(value, str):
        try:
            value = float(value.replace(",", "").strip())
        except ValueError:
            return value.strip()  # left as text: the fleet check names the cell
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


FLEET_NAME_MAX_CHARS = 80  # characters; the summary's one-line title


class FleetPlanner(PageState):
    """GPUs per model, servers by bin packing, power and what to buy, for a fleet of models."""

    fleet_name = param.String(
        default="fleet",
        regex=rf"^[^\r\n]{{0,{FLEET_NAME_MAX_CHARS}}}$",
        doc="Name of the fleet (one line, at most 80 characters), the summary's title.",
    )
    models = param.DataFrame(
        default=None,
        rows=(1, MAX_MODELS),
        doc="The models: a catalog/Hub id (model) or a manual entry (name, params_billion), "
        "with gpu, tp, pp, dp and optionally max_model_len and concurrency.",
    )
    inventory = param.DataFrame(
        default=None,
        rows=(0, 100),
        columns=set(INVENTORY_COLUMNS),
        doc="GPUs already owned: one row per GPU type with a count.",
    )
    gpu_types = param.DataFrame(
        default=None,
        rows=(1, 100),
        columns=set(GPU_TYPE_COLUMNS),
        doc="Per GPU type: GPUs per server, GPU price, server price; the 'default' row "
        "applies to types without a row (empty: 8 GPUs per server, no price).",
    )
    pue = param.Number(
        default=1.4, bounds=(1.0, 3.0), doc="Power usage effectiveness: facility / IT power."
    )
    power_budget_kw = param.Number(
        default=0.0, bounds=(0, 1_000_000), doc="Facility power available in kW; 0 = no budget."
    )
    rack_slots = param.Integer(
        default=0, bounds=(0, 100_000), doc="Servers the racks can hold; 0 = no limit."
    )
    server_power_kw = param.Number(
        default=0.0, bounds=(0, 100), doc="Non-GPU power of one server in kW; 0 leaves it out."
    )
    electricity_price_per_kwh = param.Number(
        default=0.12, bounds=(0, 10), doc="Price of one kWh, for the annual energy cost."
    )
    currency = param.Selector(
        default="USD", objects=["USD", "EUR", "GBP", "JPY", "CNY", "INR"], doc="Currency label."
    )

    plan = param.Parameter(
        default=None,
        constant=True,
        precedence=-1,
        doc="The core FleetPlan for the inputs, or None (see message).",
    )

    url_params: ClassVar[tuple[str, ...]] = (
        "fleet_name",
        "models",
        "inventory",
        "gpu_types",
        *INFRA_SCALARS,
    )

    def add_model_row(self) -> None:
        """Append a copy of the last model row under a name no other row has."""
        last = self.models.iloc[[-1]].copy()
        taken = set(self.models.get("name", pd.Series(dtype=object)).astype(str))
        taken |= set(self.models.get("model", pd.Series(dtype=object)).astype(str))
        base = str(last["name"].iloc[0] if "name" in last and last["name"].iloc[0] else "")
        base = base or str(last["model"].iloc[0] if "model" in last else "model")
        base = re.sub(r" \(\d+\)$", "", base)  # a copy of a copy counts on from the original
        number = 2
        while f"{base} ({number})" in taken:
            number += 1
        if "name" in last:
            last["name"] = f"{base} ({number})"
        self.models = pd.concat([self.models, last], ignore_index=True)

    def __init__(self, **params: Any) -> None:
        if not {"models", "inventory", "gpu_types"} <= set(params):
            example = example_fleet()
            infra = example.get("infrastructure") or {}
            params.setdefault("fleet_name", example.get("name") or "fleet")
            params.setdefault("models", models_frame(example["models"]))
            params.setdefault("inventory", inventory_frame(example.get("inventory") or {}))
            params.setdefault("gpu_types", gpu_types_frame(infra))
            for key in INFRA_SCALARS:
                if infra.get(key) is not None:
                    params.setdefault(key, infra[key])
        super().__init__(**params)
        self.param.watch(self._compute, list(self.url_params))
        self._compute()

    # --- the fleet the inputs describe ------------------------------------------------
    def fleet_dict(self) -> dict[str, Any]:
        """The inputs in the fleet-file structure (what ``cfgexplorer fleet`` reads)."""
        entries = []
        for row in self.models.to_dict("records"):
            entry = {k: _clean(v) for k, v in row.items() if k in MODEL_COLUMNS}
            entry = {k: v for k, v in entry.items() if v is not None}
            for key in NUMBER_COLUMNS:  # a table column with gaps holds floats, typed cells text
                if key in entry:
                    entry[key] = _number_cell(entry[key])
            if entry.get("moe") is False and "params_billion" not in entry:
                entry.pop("moe")
            entries.append(entry)
        inventory = {
            str(r["gpu"]).strip(): _number_cell(r["count"])
            for r in self.inventory.to_dict("records")
            if _clean(r.get("gpu")) and _clean(r.get("count")) is not None
        }
        in_use = list(dict.fromkeys([str(e["gpu"]) for e in entries if "gpu" in e] + [*inventory]))
        infra: dict[str, Any] = {k: getattr(self, k) for k in INFRA_SCALARS}
        infra.update(per_gpu_values(self.gpu_types, in_use))
        return {
            "name": self.fleet_name or "fleet",
            "infrastructure": infra,
            "inventory": inventory,
            "models": entries,
        }

    def tables(self) -> dict[str, pd.DataFrame]:
        """Models, procurement and servers tables of the plan (empty when there is none)."""
        if self.plan is None:
            return {k: pd.DataFrame() for k in ("models", "procurement", "servers")}
        return {k: pd.DataFrame(v) for k, v in self.plan.tables().items()}

    def summary_text(self) -> str:
        """The plain-text summary for finance (or the message)."""
        return self.plan.summary_text() if self.plan is not None else self.message

    def plan_json(self) -> str:
        """The plan as ``cfgexplorer fleet`` prints it."""
        return json.dumps(
            self.plan.to_dict() if self.plan else {"error": self.message}, indent=1, default=str
        )

    def layout_frame(self) -> pd.DataFrame:
        """One rectangle per GPU slot of each server (x: slot, y: server), named by model."""
        rows = []
        if self.plan is not None:
            for server in self.plan.servers:
                for slot, model in enumerate(server.slots):
                    rows.append(
                        {
                            "x0": slot,
                            "x1": slot + 1 - SLOT_GAP,
                            "y0": server.index - 1,
                            "y1": server.index - SLOT_GAP * 3,
                            "server": f"server {server.index} ({server.gpu})",
                            "model": model or "(free)",
                        }
                    )
        return pd.DataFrame(rows, columns=["x0", "y0", "x1", "y1", "server", "model"])

    # --- links ------------------------------------------------------------------------
    def to_query(self) -> dict[str, str]:
        """Like the base class, with the three tables as compact JSON."""
        query = super().to_query()
        fleet = self.fleet_dict()
        query["models"] = json.dumps(fleet["models"], separators=(",", ":"))
        query["inventory"] = json.dumps(fleet["inventory"], separators=(",", ":"))
        rows = []
        for row in self.gpu_types.to_dict("records"):
            cells = {k: _number_cell(v) for k, v in row.items() if k in GPU_TYPE_COLUMNS}
            rows.append({k: v for k, v in cells.items() if v is not None})
        query["gpu_types"] = json.dumps(rows, separators=(",", ":"))
        return query

    def parse_query_value(self, name: str, text: str) -> Any:
        """Tables come as JSON; the rest as in the base class."""
        if name == "models":
            entries = json.loads(text)
            if not isinstance(entries, list) or not entries:
                raise ValueError("expected a JSON list of models")
            return models_frame([e for e in entries if isinstance(e, dict)])
        if name == "inventory":
            counts = json.loads(text)
            if not isinstance(counts, dict):
                raise ValueError("expected a JSON object of GPU counts")
            return inventory_frame(counts)
        if name == "gpu_types":
            rows = json.loads(text)
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise ValueError("expected a JSON list of GPU types")
            if not rows:
                raise ValueError("expected at least one GPU-type row")
            return gpu_rows_frame(rows)
        return super().parse_query_value(name, text)

    # --- derivation -------------------------------------------------------------------
    def _compute(self, *_events: Any) -> None:
        from dataclasses import replace

        from cfgexplorer.fleet import Fleet

        try:
            fleet = Fleet.from_dict(self.fleet_dict(), source="the fleet table")
            result = replace(fleet, allow_local_paths=False).plan()
        except UserError as exc:
            with param.edit_constant(self):
                self.plan = None
            self.message = str(exc)
            return
        except (TypeError, ValueError) as exc:  # a cell the fleet cannot read
            with param.edit_constant(self):
                self.plan = None
            self.message = f"the fleet table has a value that cannot be read ({exc})"
            return
        with param.edit_constant(self):
            self.plan = result
        self.message = ""
