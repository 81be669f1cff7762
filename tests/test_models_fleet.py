"""FleetPlanner: the fleet page's state, driven without a browser."""

from __future__ import annotations

import pandas as pd

from cfgexplorer.fleet import Fleet
from cfgexplorer.models import FleetPlanner
from cfgexplorer.paths import data_dir

EXAMPLE = data_dir() / "examples" / "fleet.yaml"


def test_plan_equals_the_core_fleet_plan():
    state = FleetPlanner()
    expected = Fleet.from_dict(state.fleet_dict(), source="the fleet table").plan()

    assert state.message == ""
    assert state.plan.to_dict() == expected.to_dict()
    assert state.summary_text() == expected.summary_text()


def test_editing_the_table_replans():
    state = FleetPlanner()
    before = state.plan.totals.gpus_needed
    models = state.models.copy()
    models.loc[0, "dp"] = 5

    state.models = models

    assert state.plan.totals.gpus_needed > before


def test_unknown_gpu_in_a_row_sets_message():
    state = FleetPlanner()
    models = state.models.copy()
    models.loc[1, "gpu"] = "Z80"
    state.models = models
    assert state.plan is None
    assert "Z80" in state.message


def test_default_fleet_is_the_example_file_planned_as_the_cli_plans_it():
    state = FleetPlanner()
    cli_plan = Fleet.from_file(EXAMPLE).plan()  # what `cfgexplorer fleet EXAMPLE` prints

    assert state.plan.totals.to_dict() == cli_plan.totals.to_dict()
    assert state.plan.to_dict() == cli_plan.to_dict()
    assert state.plan.totals.capital_cost == 517_000


def test_layout_has_one_block_per_gpu_slot_of_each_servers_type():
    state = FleetPlanner()
    frame = state.layout_frame()

    assert len(frame) == sum(s.gpus_per_server for s in state.plan.servers)
    slots = frame.groupby("server").size()
    l40s = [name for name in slots.index if "L40S" in name]
    assert l40s
    assert all(slots[name] == 4 for name in l40s)


def test_default_row_applies_to_types_without_their_own_value():
    state = FleetPlanner()
    types = state.gpu_types.copy()
    types.loc[types["gpu"] == "default", "gpu_price"] = 30000
    types.loc[types["gpu"] == "L40S", "gpu_price"] = None

    state.gpu_types = types

    prices = {p.gpu: p.gpu_price for p in state.plan.procurement}
    assert prices == {"H100-SXM-80GB": 25000, "L40S-48GB": 30000}


def test_numbers_typed_into_cells_are_read_as_numbers():
    state = FleetPlanner()
    types = state.gpu_types.copy()
    types.loc[types["gpu"] == "H100", "gpus_per_server"] = "4"
    types = pd.concat([types, pd.DataFrame([{"gpu": "A100", "gpu_price": "12,000"}])])

    state.gpu_types = types.reset_index(drop=True)

    assert state.message == ""
    h100 = next(p for p in state.plan.procurement if p.gpu == "H100-SXM-80GB")
    assert h100.gpus_per_server == 4


def test_bad_cell_sets_message():
    state = FleetPlanner()
    types = state.gpu_types.copy()
    types.loc[types["gpu"] == "H100", "gpus_per_server"] = "eight"
    state.gpu_types = types
    assert state.plan is None
    assert "gpus_per_server" in state.message


def test_link_round_trip():
    first = FleetPlanner(pue=1.2, power_budget_kw=100)
    second = FleetPlanner(pue=1.6)
    types = first.gpu_types.copy()
    types.loc[types["gpu"] == "L40S", "gpus_per_server"] = 2
    first.gpu_types = types
    assert second.apply_query(first.to_query()) == []
    assert second.plan.to_dict() == first.plan.to_dict()
    assert FleetPlanner().apply_query({"gpu_types": "{}"})
    assert FleetPlanner().apply_query({"models": "[not json"})


def test_an_added_model_row_gets_a_name_of_its_own_and_the_plan_stays():
    state = FleetPlanner()
    rows = len(state.models)
    state.add_model_row()
    state.add_model_row()
    assert len(state.models) == rows + 2
    assert state.models["name"].tolist()[-3:] == [
        "in-house-13b",
        "in-house-13b (2)",
        "in-house-13b (3)",
    ]
    assert state.message == ""
    assert state.plan is not None
