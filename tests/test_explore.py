"""Scenarios, SLO filters, Pareto fronts (checked against all pairs) and presets."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cfgexplorer import explore
from cfgexplorer.explore import SLO, SweepQueryError


@pytest.fixture
def runs() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Model": ["a", "a", "a", "b", "b"],
            "ISL": [1000.0, 1000.0, 5000.0, 1000.0, np.nan],
            "Is_PD": [True, False, False, True, False],
            "P90_TTFT_ms": [100.0, 900.0, 2500.0, np.nan, 50.0],
            "Thpt_per_GPU": [10.0, 30.0, 40.0, 20.0, 5.0],
            "Thpt_per_User": [90.0, 50.0, 20.0, 10.0, 100.0],
        }
    )


def test_slo_direction_comes_from_the_column() -> None:
    assert SLO.parse("P90_TTFT_ms<=2000") == SLO("P90_TTFT_ms", 2000.0, "lower")
    assert SLO.parse("Thpt_per_User:30") == SLO("Thpt_per_User", 30.0, "higher")
    assert SLO.parse("P90_TTFT_ms=1e3").bound == 1000.0


def test_slo_against_the_preferred_direction_is_refused() -> None:
    with pytest.raises(SweepQueryError, match="lower is better"):
        SLO.parse("P90_TTFT_ms>=2000")
    with pytest.raises(SweepQueryError, match="cannot read SLO"):
        SLO.parse("ttft under two seconds")


def test_rows_meeting_all_slos_keep_order_and_drop_missing(runs: pd.DataFrame) -> None:
    slos = [SLO.parse("P90_TTFT_ms<=1000"), SLO.parse("Thpt_per_User>=50")]

    kept = explore.meet_slos(runs, slos)

    assert kept.index.tolist() == [0, 1, 4]  # row 3 has no TTFT, row 2 is too slow


def test_slo_bound_is_inclusive(runs: pd.DataFrame) -> None:
    assert explore.meet_slos(runs, [SLO.parse("P90_TTFT_ms<=900")]).index.tolist() == [0, 1, 4]


def test_unknown_slo_column_is_a_user_error(runs: pd.DataFrame) -> None:
    with pytest.raises(SweepQueryError, match="unknown column"):
        explore.meet_slos(runs, [SLO("Nope", 1.0)])


def test_scenarios_count_runs_per_combination(runs: pd.DataFrame) -> None:
    table = explore.scenarios(runs, ["Model", "ISL"])

    assert table.to_dict("records")[0] == {"Model": "a", "ISL": 1000.0, "count": 2}
    assert table["count"].sum() == 5  # the run with no ISL is its own scenario


def test_scenarios_with_numeric_bins(runs: pd.DataFrame) -> None:
    table = explore.scenarios(runs, ["ISL"], bins={"ISL": [0, 2000, 8000]})

    counts = dict(zip(table.ISL, table["count"], strict=True))
    assert counts["[0.0, 2000.0)"] == 3
    assert counts["[2000.0, 8000.0)"] == 1


def test_select_by_value_and_bounds(runs: pd.DataFrame) -> None:
    chosen = explore.select(runs, {"Model": "a", "ISL": (500, 2000)})

    assert chosen.index.tolist() == [0, 1]


def test_pareto_front_uses_column_directions(runs: pd.DataFrame) -> None:
    front = explore.pareto_front(runs, ["Thpt_per_User", "Thpt_per_GPU"])

    # (90,10) (50,30) (20,40) (100,5) are non-dominated; (10,20) is beaten by (50,30).
    assert front.index.tolist() == [0, 1, 2, 4]


def test_pareto_front_with_a_lower_is_better_metric(runs: pd.DataFrame) -> None:
    front = explore.pareto_front(runs, ["P90_TTFT_ms", "Thpt_per_GPU"])

    # TTFT 50/5, 100/10, 900/30, 2500/40 all trade off; the NaN row never counts.
    assert front.index.tolist() == [0, 1, 2, 4]


def test_pareto_front_per_group(runs: pd.DataFrame) -> None:
    front = explore.pareto_front(runs, ["Thpt_per_User", "Thpt_per_GPU"], by=["Is_PD"])

    assert front.index.tolist() == [0, 1, 2, 3, 4]  # (10,20) wins among P/D rows


def test_identical_points_all_stay_on_the_front() -> None:
    frame = pd.DataFrame({"Thpt_per_User": [1.0, 1.0, 0.5], "Thpt_per_GPU": [2.0, 2.0, 2.0]})

    front = explore.pareto_front(frame, ["Thpt_per_User", "Thpt_per_GPU"])

    assert front.index.tolist() == [0, 1]


def test_neutral_metric_needs_an_explicit_direction() -> None:
    frame = pd.DataFrame({"TP": [1.0, 2.0], "Thpt_per_GPU": [1.0, 2.0]})

    with pytest.raises(SweepQueryError, match="no better direction"):
        explore.pareto_front(frame, ["TP", "Thpt_per_GPU"])
    front = explore.pareto_front(frame, ["TP", "Thpt_per_GPU"], directions={"TP": "lower"})
    assert front.index.tolist() == [0, 1]


# Small integer grids make ties and duplicates frequent; NaN and inf test the edges.
_value = st.one_of(
    st.integers(-5, 5).map(float), st.just(math.nan), st.just(math.inf), st.just(-math.inf)
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(_value, _value), max_size=40),
    st.sampled_from(["higher", "lower"]),
    st.sampled_from(["higher", "lower"]),
)
def test_pareto_front_matches_all_pairs(points: list[tuple[float, float]], da: str, db: str):
    frame = pd.DataFrame(points, columns=["x", "y"], dtype=float)
    directions = {"x": da, "y": db}

    fast = explore.pareto_front(frame, ["x", "y"], directions=directions)
    slow = explore.pareto_front_all_pairs(frame, ["x", "y"], directions=directions)

    assert fast.index.tolist() == slow.index.tolist()


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 9), st.integers(0, 9)), max_size=40))
def test_grouped_front_is_the_union_of_per_group_fronts(rows: list[tuple[int, int, int]]) -> None:
    frame = pd.DataFrame(rows, columns=["g", "x", "y"], dtype=float)
    directions = {"x": "higher", "y": "lower"}

    grouped = explore.pareto_front(frame, ["x", "y"], directions=directions, by=["g"])
    expected = sorted(
        i
        for _, part in frame.groupby("g")
        for i in explore.pareto_front_all_pairs(part, ["x", "y"], directions).index
    )

    assert grouped.index.tolist() == expected


def test_bundled_presets_load_and_carry_slos() -> None:
    presets = explore.load_presets()

    assert {"custom", "pd-vs-aggregate", "inference-scheduler", "chatbot", "summarization"} <= set(
        presets
    )
    assert presets["pd-vs-aggregate"].by == ("Is_PD",)
    assert all(s.direction == "lower" for s in presets["chatbot"].slos)
    assert [str(s) for s in presets["chatbot"].slos] == ["P90_TTFT_ms<=1000", "Mean_TPOT_ms<=50"]


def test_unknown_preset_lists_the_known_ones() -> None:
    with pytest.raises(SweepQueryError, match="choose from custom"):
        explore.get_preset("nope")


def test_strict_slo_excludes_the_bound_and_keeps_its_operator(runs: pd.DataFrame) -> None:
    below = SLO.parse("P90_TTFT_ms < 900")
    above = SLO.parse("Thpt_per_User>50")

    assert str(below) == "P90_TTFT_ms<900"
    assert str(above) == "Thpt_per_User>50"
    assert explore.meet_slos(runs, [below]).index.tolist() == [0, 4]  # 900 itself fails
    assert explore.meet_slos(runs, [above]).index.tolist() == [0, 4]  # 50 itself fails
    assert SLO.parse("P90_TTFT_ms<=900") == SLO("P90_TTFT_ms", 900.0, "lower", strict=False)


@pytest.mark.parametrize("text", ["Model<=3", "GPU>=1", "Is_PD<=0"])
def test_slo_on_a_non_numeric_column_is_refused(text: str) -> None:
    with pytest.raises(SweepQueryError, match="is not a numeric column"):
        SLO.parse(text)


def test_unknown_column_points_at_the_real_flag(runs: pd.DataFrame) -> None:
    with pytest.raises(SweepQueryError) as caught:
        explore.scenarios(runs, ["Nope"])
    with pytest.raises(SweepQueryError) as caught_slo:
        explore.meet_slos(runs, [SLO("Nope", 1.0)])

    for message in (str(caught.value), str(caught_slo.value)):
        assert "`cfgexplorer sweep --list columns`" in message
