"""FleetPlanner: the state of the fleet page (many models, servers, power, procurement).

The model table and the inventory are DataFrames the page edits in place;
the infrastructure is a handful of numbers. Every output comes from one call
of :meth:`cfgexplorer.fleet.Fleet.plan` (the function behind
``cfgexplorer fleet``) on the fleet those inputs describe.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any, ClassVar

import pandas as pd
import param
import yaml

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
INVENTORY_COLUMNS = ["gpu", "count"]
MAX_MODELS = 200  # rows of the model table
EXAMPLE_FILE = "examples/fleet.yaml"  # under the bundled data directory
SLOT_GAP = 0.1  # width of the gap between two GPU slots in the layout drawing


def example_fleet() -> dict[str, Any]:
    """The bundled example fleet (the dashboard's starting point)."""
    return yaml.safe_load((data_dir() / EXAMPLE_FILE).read_text())


def models_frame(entries: list[dict[str, Any]]) -> pd.DataFrame:
    """A model table with every column, in order, from file-style entries."""
    frame = pd.DataFrame(entries).reindex(columns=MODEL_COLUMNS)
    for col in ("tp", "pp", "dp"):
        frame[col] = frame[col].fillna(1).astype(int)
    frame["moe"] = frame["moe"].fillna(False).astype(bool)
    return frame.astype(object).where(frame.notna(), None)


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


class FleetPlanner(PageState):
    """GPUs per model, servers by bin packing, power and what to buy, for a fleet of models."""

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
    gpus_per_server = param.Integer(default=8, bounds=(1, 72), doc="GPUs in one server.")
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
    gpu_price = param.Number(
        default=0.0, bounds=(0, 10_000_000), doc="Price of one GPU; 0 = unknown."
    )
    server_price = param.Number(
        default=0.0, bounds=(0, 10_000_000), doc="Price of one server without GPUs; 0 = unknown."
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
        "models",
        "inventory",
        "gpus_per_server",
        "pue",
        "power_budget_kw",
        "rack_slots",
        "server_power_kw",
        "electricity_price_per_kwh",
        "gpu_price",
        "server_price",
        "currency",
    )

    def __init__(self, **params: Any) -> None:
        if "models" not in params or "inventory" not in params:
            example = example_fleet()
            params.setdefault("models", models_frame(example["models"]))
            params.setdefault(
                "inventory",
                pd.DataFrame(
                    list((example.get("inventory") or {}).items()), columns=INVENTORY_COLUMNS
                ),
            )
            infra = example.get("infrastructure") or {}
            for key in ("pue", "power_budget_kw", "rack_slots", "electricity_price_per_kwh"):
                if key in infra:
                    params.setdefault(key, infra[key])
            if isinstance(infra.get("server_price"), int | float):
                params.setdefault("server_price", float(infra["server_price"]))
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
            for key in INTEGER_COLUMNS:  # a table column with gaps holds floats
                if isinstance(entry.get(key), float) and entry[key].is_integer():
                    entry[key] = int(entry[key])
            if entry.get("moe") is False and "params_billion" not in entry:
                entry.pop("moe")
            entries.append(entry)
        inventory = {
            str(r["gpu"]): int(r["count"])
            for r in self.inventory.to_dict("records")
            if _clean(r.get("gpu")) and _clean(r.get("count")) is not None
        }
        infra: dict[str, Any] = {
            "gpus_per_server": self.gpus_per_server,
            "pue": self.pue,
            "power_budget_kw": self.power_budget_kw,
            "rack_slots": self.rack_slots,
            "server_power_kw": self.server_power_kw,
            "electricity_price_per_kwh": self.electricity_price_per_kwh,
            "currency": self.currency,
        }
        if self.gpu_price:
            infra["gpu_price"] = self.gpu_price
        if self.server_price:
            infra["server_price"] = self.server_price
        return {
            "name": "dashboard-fleet",
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
        """Like the base class, with the two tables as compact JSON."""
        query = super().to_query()
        query["models"] = json.dumps(self.fleet_dict()["models"], separators=(",", ":"))
        query["inventory"] = json.dumps(self.fleet_dict()["inventory"], separators=(",", ":"))
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
            return pd.DataFrame(list(counts.items()), columns=INVENTORY_COLUMNS)
        return super().parse_query_value(name, text)

    # --- derivation -------------------------------------------------------------------
    def _compute(self, *_events: Any) -> None:
        from cfgexplorer.fleet import Fleet

        try:
            fleet = Fleet.from_dict(self.fleet_dict(), source="the fleet table")
            result = fleet.plan()
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
