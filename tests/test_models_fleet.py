"""FleetPlanner: the fleet page's state, driven without a browser."""

from __future__ import annotations

from cfgexplorer.fleet import Fleet
from cfgexplorer.models import FleetPlanner


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


def test_layout_has_one_block_per_gpu_slot():
    state = FleetPlanner(gpus_per_server=8)
    frame = state.layout_frame()
    assert len(frame) == sum(s.gpus_per_server for s in state.plan.servers)


def test_link_round_trip():
    first = FleetPlanner(pue=1.2, power_budget_kw=100)
    second = FleetPlanner(pue=1.6)
    assert second.apply_query(first.to_query()) == []
    assert second.plan.to_dict() == first.plan.to_dict()
    assert FleetPlanner().apply_query({"models": "[not json"})
