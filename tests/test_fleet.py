"""The fleet planner: hand-checked packings, inventory, power, exclusions and file errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cfgexplorer import catalog, load_model
from cfgexplorer.errors import FleetFileError, UserError
from cfgexplorer.fleet import (
    HOURS_PER_YEAR,
    MANUAL_ACTIVATION_ALLOWANCE_GIB,
    MAX_FLEET_GPUS,
    MAX_GPUS_PER_SERVER,
    MAX_PARALLEL_SIZE,
    STATUS_ERROR,
    STATUS_NO_FIT,
    STATUS_PLANNED,
    Fleet,
    FleetModel,
    FleetPlan,
    Infrastructure,
    TPGroup,
    pack_first_fit_decreasing,
    servers_lower_bound,
)
from cfgexplorer.gpus import get_gpu
from cfgexplorer.memory import GIB, Deployment, get_profile, non_torch_gib, plan
from cfgexplorer.paths import data_dir

# A small manual entry fits any parallelism on an H100, so packing tests do not depend
# on the capacity model.
SMALL = {"params_billion": 1, "quantization": "bf16"}


def _plan(models: list[dict[str, Any]], **top: Any) -> FleetPlan:
    return Fleet.from_dict({"models": models, **top}).plan()


def _manual(name: str, gpu: str = "H100", **deployment: Any) -> dict[str, Any]:
    return {"name": name, "gpu": gpu, **SMALL, **deployment}


def _model(result: FleetPlan, name: str) -> Any:
    return next(m for m in result.models if m.name == name)


# --- packing -------------------------------------------------------------------------------


def test_hand_checked_tp4x3_tp2pp2_tp8_need_three_8gpu_servers() -> None:
    # TP groups: A = 3 replicas x 1 stage of 4 GPUs -> 4, 4, 4; B = 1 replica x 2 stages of
    # 2 GPUs -> 2, 2; C = one group of 8. GPUs = 12 + 4 + 8 = 24; lower bound ceil(24/8) = 3.
    # First-fit decreasing: 8 (C) opens server 1 and fills it; 4 (A) opens server 2, the next
    # 4 (A) fills it; the last 4 (A) opens server 3; 2 and 2 (B) fill server 3. 3 servers.
    result = _plan(
        [
            _manual("A", tp=4, dp=3),
            _manual("B", tp=2, pp=2),
            _manual("C", tp=8),
        ],
        infrastructure={"gpus_per_server": 8},
    )

    assert [m.status for m in result.models] == [STATUS_PLANNED] * 3
    assert result.totals.gpus_needed == 24
    assert result.totals.servers_lower_bound == 3
    assert result.totals.servers == 3
    assert result.totals.meets_lower_bound
    assert [s.slots for s in result.servers] == [
        ["C"] * 8,
        ["A"] * 8,
        ["A"] * 4 + ["B"] * 4,
    ]
    assert result.errors == []


def test_pp_stages_may_span_servers_but_tp_groups_never_do() -> None:
    # D: TP4 x PP3 = 12 GPUs as three groups of 4 -> server 1 holds stages 1 and 2, server 2
    # stage 3 (ceil(12/8) = 2, met). E: TP5 x DP3 = 15 GPUs, groups of 5 cannot share an
    # 8-GPU server, so 3 servers against a lower bound of ceil(15/8) = 2.
    result = _plan(
        [_manual("D", tp=4, pp=3), _manual("E", gpu="L40S", tp=5, dp=3)],
        infrastructure={"gpus_per_server": 8},
    )
    by_type = {p.gpu: p for p in result.procurement}

    d_servers = [s for s in result.servers if s.gpu == "H100-SXM-80GB"]
    assert [[g.stage for g in s.groups] for s in d_servers] == [[1, 2], [3]]
    assert by_type["H100-SXM-80GB"].meets_lower_bound
    assert by_type["L40S-48GB"].servers == 3
    assert by_type["L40S-48GB"].servers_lower_bound == 2
    assert not by_type["L40S-48GB"].meets_lower_bound
    assert not result.totals.meets_lower_bound
    assert any("above the lower bound" in w["message"] for w in result.warnings)
    for server in result.servers:
        for group in server.groups:
            assert group.first_slot + group.tp <= server.gpus_per_server


def test_tp8_on_4gpu_servers_is_an_error_for_that_model_only() -> None:
    result = _plan(
        [_manual("A", tp=4, dp=3), _manual("B", tp=2, pp=2), _manual("C", tp=8)],
        infrastructure={"gpus_per_server": 4},
    )

    assert [m.status for m in result.models] == [STATUS_PLANNED, STATUS_PLANNED, STATUS_ERROR]
    assert [e["model"] for e in result.errors] == ["C"]
    assert "TP8" in result.errors[0]["message"]
    assert "holds 4" in result.errors[0]["message"]
    # A: three 4-GPU servers; B: one server with both stages; C left out: 16 GPUs, 4 servers.
    assert result.totals.gpus_needed == 16
    assert result.totals.servers == 4
    assert "C" not in {slot for s in result.servers for slot in s.slots}
    assert any("C is left out" in w["message"] for w in result.warnings)


def test_mixed_gpu_types_never_share_a_server() -> None:
    # 3 + 3 GPUs would fit one 8-GPU server, but H100 and L40S need a server each.
    result = _plan(
        [_manual("h", gpu="H100", dp=3), _manual("l", gpu="L40S", dp=3)],
        infrastructure={"gpus_per_server": 8},
    )

    assert result.totals.servers == 2
    assert result.totals.servers_lower_bound == 2
    for server in result.servers:
        assert {g.model for g in server.groups} == {"h" if server.gpu.startswith("H100") else "l"}


def test_gpus_per_server_per_type_and_default_of_eight() -> None:
    result = _plan(
        [_manual("a", gpu="L40S", dp=5), _manual("b", gpu="T4", dp=5)],
        infrastructure={"gpus_per_server": {"L40S": 2}},
    )
    by_type = {p.gpu: p for p in result.procurement}

    assert (by_type["L40S-48GB"].gpus_per_server, by_type["L40S-48GB"].servers) == (2, 3)
    # T4 is not in the mapping: it takes the default of 8 GPUs per server.
    assert by_type["T4-16GB"].gpus_per_server == 8
    assert by_type["T4-16GB"].gpus_per_server_source == "default"
    assert by_type["T4-16GB"].servers == 1


def test_first_fit_decreasing_function_directly() -> None:
    groups = [TPGroup("x", 1, 1, tp) for tp in (1, 3, 2, 4, 2, 4)]  # 16 GPUs

    servers = pack_first_fit_decreasing(groups, "H100-SXM-80GB", 8)

    assert [[g.tp for g in s.groups] for s in servers] == [[4, 4], [3, 2, 2, 1]]
    assert servers_lower_bound(16, 8) == 2
    assert servers_lower_bound(17, 8) == 3
    assert servers_lower_bound(0, 8) == 0


def _first_fit_one_by_one(sizes: list[int], per_server: int) -> list[list[tuple[int, int]]]:
    """The textbook first fit decreasing, group by group: (group index, first slot) per server."""
    free: list[int] = []
    placed: list[list[tuple[int, int]]] = []
    for index in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        size = sizes[index]
        target = next((k for k, f in enumerate(free) if f >= size), None)
        if target is None:
            free.append(per_server)
            placed.append([])
            target = len(free) - 1
        placed[target].append((index, per_server - free[target]))
        free[target] -= size
    return placed


@pytest.mark.parametrize("seed", range(5))
def test_grouped_packing_matches_first_fit_group_by_group(seed: int) -> None:
    import random

    rng = random.Random(seed)
    sizes = [rng.choice((1, 1, 1, 2, 2, 3, 4, 5, 8)) for _ in range(300)]
    groups = [TPGroup(f"m{i}", 1, 1, tp) for i, tp in enumerate(sizes)]

    servers = pack_first_fit_decreasing(groups, "H100-SXM-80GB", 8)

    got = [[(int(g.model[1:]), g.first_slot) for g in s.groups] for s in servers]
    assert got == _first_fit_one_by_one(sizes, 8)


def test_twenty_thousand_replicas_pack_into_the_lower_bound() -> None:
    result = _plan([_manual("many", tp=1, dp=20_000), _manual("pairs", tp=2, pp=2, dp=3)])

    assert result.totals.gpus_needed == 20_012
    assert result.totals.servers == servers_lower_bound(20_012, 8) == 2_502
    assert result.servers[0].slots == ["pairs"] * 8  # the TP2 groups go first, then TP1
    assert result.servers[-1].slots == ["many"] * 4 + [None] * 4


@pytest.mark.parametrize(
    ("deployment", "message"),
    [
        (
            {"dp": 1_000_000_000},
            f"model 'big': dp must be at most {MAX_FLEET_GPUS:,}, got 1,000,000,000",
        ),
        ({"tp": 4096}, f"model 'big': tp must be at most {MAX_PARALLEL_SIZE:,}, got 4,096"),
        ({"pp": 2048}, f"model 'big': pp must be at most {MAX_PARALLEL_SIZE:,}, got 2,048"),
        (
            {"tp": 8, "pp": 8, "dp": 2000},
            f"model 'big': tp x pp x dp is 128,000 GPUs, more than the {MAX_FLEET_GPUS:,}",
        ),
    ],
)
def test_huge_parallel_sizes_are_refused_in_one_sentence(
    deployment: dict[str, int], message: str
) -> None:
    with pytest.raises(FleetFileError) as caught:
        Fleet.from_dict({"models": [_manual("big", **deployment)]})

    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_fleet_total_above_the_bound_is_refused() -> None:
    half = MAX_FLEET_GPUS // 2 + 1
    models = [_manual("a", dp=half), _manual("b", dp=half)]

    with pytest.raises(FleetFileError, match=f"the models need {2 * half:,} GPUs together"):
        Fleet.from_dict({"models": models})


def test_gpus_per_server_has_an_upper_bound() -> None:
    with pytest.raises(
        FleetFileError, match=f"gpus_per_server must be at most {MAX_GPUS_PER_SERVER:,}"
    ):
        Fleet.from_dict({"infrastructure": {"gpus_per_server": 10**9}, "models": [_manual("a")]})


# --- inventory, power, budgets, costs ------------------------------------------------------


def test_owned_inventory_reduces_purchase_and_never_goes_negative() -> None:
    result = _plan(
        [_manual("big", gpu="H100", tp=4, dp=3), _manual("small", gpu="L4", dp=2)],
        inventory={"H100": 4, "L4": 10, "A100": 5},
    )
    by_type = {p.gpu: p for p in result.procurement}

    # H100: need 12, own 4 -> buy 8. L4: need 2, own 10 -> buy 0 (not -8), 8 unused.
    assert (by_type["H100-SXM-80GB"].needed, by_type["H100-SXM-80GB"].to_buy) == (12, 8)
    assert (by_type["L4-24GB"].to_buy, by_type["L4-24GB"].unused_owned) == (0, 8)
    # A type that is only owned shows up with nothing needed and nothing to buy.
    assert (by_type["A100-SXM-80GB"].needed, by_type["A100-SXM-80GB"].to_buy) == (0, 0)
    assert by_type["A100-SXM-80GB"].servers == 0
    assert result.totals.gpus_to_buy == 8
    assert result.totals.gpus_owned_used == 4 + 2
    assert all(p.to_buy >= 0 for p in result.procurement)


def test_pue_and_energy_arithmetic() -> None:
    # 16 H100 at 700 W = 11.2 kW of GPU power; two 8-GPU servers at 1.5 kW of non-GPU power
    # add 3.0 kW: IT 14.2 kW; facility 14.2 x 1.3 = 18.46 kW; energy 18.46 x 8760 =
    # 161,709.6 kWh per year; at 0.10 per kWh, 16,170.96 a year.
    result = _plan(
        [_manual("m", gpu="H100", tp=8, dp=2)],
        infrastructure={"pue": 1.3, "server_power_kw": 1.5, "electricity_price_per_kwh": 0.10},
    )
    t = result.totals

    assert get_gpu("H100").tdp_watts == 700
    assert t.gpu_power_kw == pytest.approx(11.2)
    assert t.server_power_kw == pytest.approx(3.0)
    assert t.it_power_kw == pytest.approx(14.2)
    assert t.facility_power_kw == pytest.approx(18.46)
    assert HOURS_PER_YEAR == 8760
    assert t.annual_energy_kwh == pytest.approx(161_709.6)
    assert t.annual_energy_cost == pytest.approx(16_170.96)
    assert _model(result, "m").power_kw == pytest.approx(11.2)


def test_default_pue_and_no_server_power_unless_asked() -> None:
    # 4 L40S at 350 W = 1.4 kW; default PUE 1.4 -> 1.96 kW; x 8760 h = 17,169.6 kWh.
    result = _plan([_manual("m", gpu="L40S", dp=4)])
    t = result.totals

    assert (t.pue, t.gpu_power_kw, t.it_power_kw) == (1.4, pytest.approx(1.4), pytest.approx(1.4))
    assert t.facility_power_kw == pytest.approx(1.96)
    assert t.annual_energy_kwh == pytest.approx(17_169.6)
    assert t.annual_energy_cost is None
    assert t.capital_cost is None
    assert any("non-GPU server power" in a and "not included" in a for a in result.assumptions)


def test_power_budget_and_rack_slots_warn_when_over() -> None:
    # 24 H100 = 16.8 kW x 1.4 = 23.52 kW facility against 20 kW; 3 servers against 2 slots.
    result = _plan(
        [_manual("m", tp=8, dp=3)], infrastructure={"power_budget_kw": 20, "rack_slots": 2}
    )
    messages = [w["message"] for w in result.warnings]

    assert result.totals.power_headroom_kw == pytest.approx(-3.52)
    assert result.totals.rack_slots_headroom == -1
    assert any("exceeds the power budget" in m and "3.52 kW" in m for m in messages)
    assert any("exceed the 2 rack slots by 1" in m for m in messages)


def test_power_budget_and_rack_slots_report_headroom_when_under() -> None:
    result = _plan(
        [_manual("m", tp=8, dp=3)], infrastructure={"power_budget_kw": 30, "rack_slots": 5}
    )

    assert result.totals.power_headroom_kw == pytest.approx(30 - 23.52)
    assert result.totals.rack_slots_headroom == 2
    assert result.warnings == []
    assert "6.48 kW headroom" in result.summary_text()


def test_capital_cost_counts_only_what_is_bought() -> None:
    # Need 24 H100 in 3 servers; own 10 (one whole server's worth): buy 14 GPUs at 20,000 and
    # 3 - 10 // 8 = 2 servers at 50,000: 280,000 + 100,000 = 380,000.
    result = _plan(
        [_manual("m", tp=8, dp=3)],
        inventory={"H100": 10},
        infrastructure={"gpu_price": 20_000, "server_price": {"H100": 50_000}},
    )

    assert result.totals.gpus_to_buy == 14
    assert result.totals.servers_to_buy == 2
    assert result.totals.capital_cost == pytest.approx(380_000)


# --- fit checks through the capacity planner -------------------------------------------------


def test_model_that_does_not_fit_is_left_out_of_packing_and_procurement() -> None:
    # Llama-3.3-70B in bf16 (about 131 GiB) cannot sit on one H100.
    result = _plan(
        [
            {"model": "meta-llama/Llama-3.3-70B-Instruct", "gpu": "H100", "max_model_len": 8192},
            _manual("ok", dp=2),
        ],
        inventory={"H100": 1},
    )
    big = _model(result, "meta-llama/Llama-3.3-70B-Instruct")

    assert big.status == STATUS_NO_FIT
    assert big.fits is False
    assert not big.included
    assert "weights alone" in big.problems[0]
    assert big.suggestion is not None
    assert (big.suggestion["tp"], big.suggestion["pp"]) == (2, 1)
    # Packing and procurement both count only "ok": 2 GPUs, 1 owned, 1 to buy.
    assert {slot for s in result.servers for slot in s.slots} == {"ok", None}
    assert result.procurement[0].needed == 2
    assert result.totals.gpus_needed == 2
    assert result.totals.gpus_to_buy == 1
    assert result.totals.gpu_power_kw == pytest.approx(1.4)
    assert sum(s.used for s in result.servers) == result.totals.gpus_needed
    assert result.totals.models_left_out == 1
    assert any(
        w["model"] == big.name and "left out of packing and procurement" in w["message"]
        for w in result.warnings
    )


def test_catalog_model_numbers_come_from_the_capacity_planner() -> None:
    result = _plan(
        [
            {
                "model": "Qwen/Qwen3-32B",
                "gpu": "H100",
                "tp": 2,
                "dp": 2,
                "max_model_len": 16384,
            }
        ]
    )
    expected = plan(
        load_model("Qwen/Qwen3-32B"),
        get_gpu("H100"),
        Deployment(tp=2, dp=2, max_model_len=16384),
    )
    row = result.models[0]

    assert row.source == "catalog"
    assert row.fits is True
    assert row.weights_per_gpu_gib == pytest.approx(expected.weights_gib)
    assert row.weights_total_gib == pytest.approx(expected.weights_total_gib)
    assert row.kv_pool_per_gpu_gib == pytest.approx(expected.kv_pool_gib)
    assert row.max_concurrency == pytest.approx(expected.max_concurrency * 2)


def test_concurrency_requirement_is_checked_against_all_replicas() -> None:
    base = {"model": "Qwen/Qwen3-32B", "gpu": "H100", "tp": 2, "max_model_len": 16384}
    per_replica = plan(
        load_model("Qwen/Qwen3-32B"), get_gpu("H100"), Deployment(tp=2, max_model_len=16384)
    ).max_concurrency
    held = int(per_replica)

    one = _plan([{**base, "concurrency": held + 1}]).models[0]
    two = _plan([{**base, "dp": 2, "concurrency": held + 1}]).models[0]

    assert one.status == STATUS_NO_FIT
    assert f"fewer than the {held + 1} required" in one.problems[0]
    assert one.suggestion is not None
    assert two.status == STATUS_PLANNED


def test_without_max_model_len_the_fit_ignores_the_context_length() -> None:
    row = _plan([{"model": "meta-llama/Llama-3.1-8B-Instruct", "gpu": "H100"}]).models[0]

    assert row.status == STATUS_PLANNED
    assert any("the model's full 131,072-token context fits too" in n for n in row.notes)


def test_without_max_model_len_a_context_too_long_for_the_gpu_names_the_flag_to_set() -> None:
    from cfgexplorer import load_model
    from cfgexplorer.gpus import get_gpu
    from cfgexplorer.memory import Deployment, plan

    row = _plan([{"model": "meta-llama/Llama-3.1-8B-Instruct", "gpu": "L4"}]).models[0]
    longest = plan(
        load_model("meta-llama/Llama-3.1-8B-Instruct"), get_gpu("L4"), Deployment()
    ).max_model_len_that_fits
    assert row.fits
    assert any(
        f"serve it with --max-model-len {longest} or less, since vLLM's default (the model's "
        "131,072 tokens) does not fit" in n
        for n in row.notes
    )


def test_manual_entry_sizing_and_named_overhead() -> None:
    # 13e9 params x 2 bytes = 24.214 GiB; TP2 -> 12.107 GiB per GPU. Room per A100-80GB GPU:
    # 0.9 x 79.25 - 4 (activation allowance) - non-torch at TP2.
    entry = {"name": "in-house-13b", "params_billion": 13, "quantization": "bf16", "moe": "no"}
    result = _plan([{**entry, "gpu": "A100", "tp": 2}])
    row = result.models[0]
    profile = get_profile()
    room = 0.9 * 79.25 - MANUAL_ACTIVATION_ALLOWANCE_GIB - non_torch_gib(Deployment(tp=2), profile)

    assert row.source == "manual"
    assert row.weights_total_gib == pytest.approx(13e9 * 2 / GIB)
    assert row.weights_per_gpu_gib == pytest.approx(13e9 * 2 / GIB / 2)
    assert row.kv_pool_per_gpu_gib == pytest.approx(room - 13e9 / GIB)
    assert row.fits is True
    assert any("manual entries: bytes per parameter" in a for a in result.assumptions)


def test_manual_entry_that_does_not_fit_gets_a_suggestion() -> None:
    # 70e9 x 1 byte (fp8) = 65.19 GiB: more than the ~59.7 GiB left on one L40S-48GB... and
    # on 2 (32.6 GiB each, against ~33.4 GiB of room at TP2) it fits.
    row = _plan(
        [{"name": "x", "params_billion": 70, "quantization": "fp8", "gpu": "L40S", "tp": 1}]
    ).models[0]

    assert row.status == STATUS_NO_FIT
    assert row.suggestion is not None
    assert (row.suggestion["tp"], row.suggestion["pp"]) == (2, 1)


def test_invalid_tp_for_the_architecture_is_an_error_for_that_model_only() -> None:
    # Qwen3-32B has 64 attention heads: TP3 does not divide them.
    result = _plan(
        [{"model": "Qwen/Qwen3-32B", "gpu": "H100", "tp": 3}, _manual("fine")],
    )

    assert [m.status for m in result.models] == [STATUS_ERROR, STATUS_PLANNED]
    assert "not divisible by 3" in result.errors[0]["message"]
    assert result.totals.gpus_needed == 1


def test_unknown_model_is_an_error_for_that_model_only() -> None:
    result = _plan([{"model": "no-such-model", "gpu": "H100"}, _manual("fine")])

    assert result.models[0].status == STATUS_ERROR
    assert result.models[0].source is None
    assert result.models[1].status == STATUS_PLANNED


def test_max_model_len_beyond_the_model_is_an_error_in_fleet_words() -> None:
    result = _plan([{"model": "Qwen/Qwen3-8B", "gpu": "H100", "max_model_len": 100_000}])

    assert result.models[0].status == STATUS_ERROR
    assert result.models[0].problems == [
        "max_model_len 100000 exceeds Qwen/Qwen3-8B's maximum of 40960 tokens; "
        "lower max_model_len in the fleet file"
    ]


def test_relative_local_path_resolves_against_the_fleet_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "fleets" / "my-model"
    folder.mkdir(parents=True)
    config = catalog.raw_files("Qwen/Qwen3-0.6B")["config"]
    (folder / "config.json").write_text(json.dumps(config))
    fleet_file = tmp_path / "fleets" / "fleet.yaml"
    fleet_file.write_text("models:\n  - model: my-model\n    gpu: L4\n    name: local\n")
    monkeypatch.chdir(tmp_path)  # not the file's folder

    row = Fleet.from_file(fleet_file).plan().models[0]

    assert row.status == STATUS_PLANNED, row.problems
    assert row.source == "local"


# --- the API ---------------------------------------------------------------------------------


def test_library_api_and_round_trip() -> None:
    fleet = Fleet(
        models=(
            FleetModel(model="Qwen/Qwen3-8B", gpu="H100", dp=2, max_model_len=8192),
            FleetModel(name="m", params_billion=7, quantization="int4", gpu="L4"),
        ),
        inventory={"H100": 1},
        infrastructure=Infrastructure(pue=1.2),
    )

    again = Fleet.from_dict(fleet.to_dict())

    assert again.models == fleet.models
    assert again.infrastructure == fleet.infrastructure
    assert again.plan().to_dict()["totals"] == fleet.plan().to_dict()["totals"]
    assert fleet.models[0].name == "Qwen/Qwen3-8B"
    assert fleet.models[1].moe is False


def test_example_fleet_plans_cleanly() -> None:
    result = Fleet.from_file(data_dir() / "examples" / "fleet.yaml").plan()
    out = result.to_dict()

    assert result.errors == []
    assert all(m.included for m in result.models)
    assert {"models", "procurement", "servers", "errors", "warnings", "totals"} <= set(out)
    for key in (
        "gpus_needed",
        "gpus_to_buy",
        "servers",
        "servers_lower_bound",
        "gpu_power_kw",
        "facility_power_kw",
        "annual_energy_kwh",
    ):
        assert key in out["totals"]
    assert json.loads(json.dumps(out)) == out


def test_summary_text_for_finance_states_the_numbers_and_assumptions() -> None:
    result = _plan(
        [_manual("m", tp=8, dp=2)],
        inventory={"H100": 8},
        infrastructure={"electricity_price_per_kwh": 0.1, "gpu_price": 1000},
    )
    text = result.summary_text()

    assert "H100-SXM-80GB: need 16 GPUs, own 8, buy 8; 2 servers of 8 GPUs" in text
    assert "GPUs needed: 16 (8 already owned, 8 to buy)" in text
    assert "15.68 kW at the facility (PUE 1.4)" in text  # 11.2 kW x 1.4
    assert "137,357 kWh per year" in text  # 15.68 x 8760
    assert "Capital cost: 8,000.00 USD" in text
    assert "Assumptions:" in text


def test_csv_export_and_frames(tmp_path: Path) -> None:
    result = _plan([_manual("A", tp=4, dp=3), _manual("B", gpu="L4", dp=2)])

    written = result.write_csv(tmp_path / "out")
    frames = result.to_frames()

    assert sorted(p.name for p in written) == [
        "models.csv",
        "procurement.csv",
        "servers.csv",
        "summary.txt",
    ]
    assert len(frames["models"]) == 2
    assert len(frames["servers"]) == 3  # A: 12 GPUs in two 8-GPU servers; B: one L4 server
    assert list(frames["procurement"]["to_buy"]) == [12, 2]


# --- malformed fleet files -----------------------------------------------------------------

_VALID_MODEL = "  - model: Qwen/Qwen3-8B\n    gpu: H100\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("models:\n" + _VALID_MODEL + "servers: 3\n", "unknown key 'servers'"),
        (
            "models:\n  - model: Qwen/Qwen3-8B\n    gpu: H100\n    tpp: 2\n",
            "unknown key 'tpp' (did you mean 'tp'?); allowed keys are name, model",
        ),
        (
            "infrastructure: {pue: 1.4, budget_kw: 5}\nmodels:\n" + _VALID_MODEL,
            "infrastructure: unknown key 'budget_kw'",
        ),
        ("models:\n" + _VALID_MODEL + "    tp: -2\n", "tp must be a whole number >= 1, got -2"),
        ("models:\n" + _VALID_MODEL + "    dp: 2.5\n", "dp must be a whole number >= 1, got 2.5"),
        ("models:\n" + _VALID_MODEL + "    pp: two\n", "pp must be a whole number >= 1"),
        ("inventory: {H100: -1}\nmodels:\n" + _VALID_MODEL, "count for H100 must be a whole"),
        ("inventory: {H100: 1.5}\nmodels:\n" + _VALID_MODEL, "got 1.5"),
        ("inventory: {H1000: 1}\nmodels:\n" + _VALID_MODEL, "unknown GPU 'H1000'"),
        ("models:\n  - model: Qwen/Qwen3-8B\n    gpu: H10\n", "close matches"),
        ("models:\n  - model: Qwen/Qwen3-8B\n", "has no gpu"),
        ("models: [\n", "is not valid YAML"),
        ("models:\n  - model: x\n   gpu: H100\n", "is not valid YAML"),
        ("", "is empty"),
        ("- a\n- b\n", "must be a mapping"),
        ("models: []\n", "non-empty 'models:' list"),
        ("models:\n  - params_billion: 7\n    gpu: H100\n", "manual model entry needs a name"),
        (
            "models:\n  - model: Qwen/Qwen3-8B\n    params_billion: 8\n    gpu: H100\n",
            "either model",
        ),
        (
            "models:\n  - name: m\n    params_billion: 7\n    quantization: int3\n    gpu: H100\n",
            "quantization 'int3' is not one of bf16, fp8, int8, int4",
        ),
        (
            "models:\n  - name: m\n    params_billion: -7\n    gpu: H100\n",
            "params_billion must be a number more than 0",
        ),
        (
            "models:\n  - name: m\n    params_billion: 7\n    moe: maybe\n    gpu: H100\n",
            "moe must be yes or no",
        ),
        (
            "models:\n  - name: m\n    params_billion: 1e30\n    gpu: H100\n",
            "got '1e30' (YAML reads 1e30 as text; write the number with a dot",
        ),
        (
            "models:\n  - name: m\n    params_billion: 1.0e+30\n    gpu: H100\n",
            "params_billion 1e+30 is more than 100,000 billion parameters",
        ),
        ("models:\n  - gpu: H100\n", "a model entry needs model: (a catalog id, path or Hub id)"),
        ("infrastructure: {pue: 0.9}\nmodels:\n" + _VALID_MODEL, "pue must be a number at least 1"),
        (
            "infrastructure: {power_budget_kw: -5}\nmodels:\n" + _VALID_MODEL,
            "power_budget_kw must be a number at least 0",
        ),
        (
            "infrastructure: {gpus_per_server: {H100: 0}}\nmodels:\n" + _VALID_MODEL,
            "gpus_per_server for H100 must be a whole number >= 1",
        ),
        (
            "models:\n" + _VALID_MODEL + "    concurrency: 10\n",
            "concurrency needs max_model_len",
        ),
        ("models:\n" + _VALID_MODEL + _VALID_MODEL, "appears more than once"),
        ("engine_profile: vllm-9\nmodels:\n" + _VALID_MODEL, "unknown engine profile"),
    ],
)
def test_malformed_fleet_file_gets_one_clear_sentence(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(text)

    with pytest.raises(FleetFileError) as info:
        Fleet.from_file(path)

    message = str(info.value)
    assert expected in message
    assert message.startswith("fleet.yaml")
    assert "\n" not in message
    assert isinstance(info.value, UserError)


def test_unknown_key_lists_the_allowed_keys(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text("models:\n" + _VALID_MODEL + "    colour: red\n")

    with pytest.raises(FleetFileError) as info:
        Fleet.from_file(path)

    assert str(info.value) == (
        "fleet.yaml: model 1: unknown key 'colour'; allowed keys are name, model, "
        "params_billion, quantization, moe, gpu, tp, pp, dp, max_model_len, concurrency"
    )


def test_malformed_json_fleet(tmp_path: Path) -> None:
    path = tmp_path / "fleet.json"
    path.write_text('{"models": [}')

    with pytest.raises(FleetFileError, match=r"fleet.json is not valid JSON: .* line 1"):
        Fleet.from_file(path)


def test_json_fleet_file(tmp_path: Path) -> None:
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps({"models": [_manual("m", dp=2)]}))

    assert Fleet.from_file(path).plan().totals.gpus_needed == 2


def test_missing_fleet_file(tmp_path: Path) -> None:
    with pytest.raises(FleetFileError, match="does not exist"):
        Fleet.from_file(tmp_path / "nope.yaml")


def test_library_constructor_validates_too() -> None:
    with pytest.raises(FleetFileError, match="model 'x': tp must be a whole number >= 1"):
        FleetModel(name="x", params_billion=1, gpu="H100", tp=0)
    with pytest.raises(FleetFileError, match="unknown GPU 'Z80'"):
        FleetModel(model="Qwen/Qwen3-8B", gpu="Z80")
    with pytest.raises(FleetFileError, match="rack_slots must be a whole number >= 0"):
        Infrastructure(rack_slots=-1)


def test_a_shared_dashboard_fleet_reads_no_server_paths(tmp_path) -> None:
    import json as _json
    from dataclasses import replace

    from cfgexplorer.fleet import Fleet

    config = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": 256,
        "intermediate_size": 512,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "vocab_size": 1000,
    }
    (tmp_path / "config.json").write_text(_json.dumps(config))
    fleet = Fleet.from_dict({"models": [{"model": str(tmp_path), "gpu": "H100", "tp": 1}]})
    assert fleet.plan().models[0].fits
    shared = replace(fleet, allow_local_paths=False).plan()
    assert shared.models[0].error
    assert "path on the server" in shared.models[0].problems[0]
