"""Every Parameter of the page states is documented and bounded (CONVENTIONS.md)."""

from __future__ import annotations

import param
import pytest

import cfgexplorer.models as models

STATE_CLASSES = [
    getattr(models, name)
    for name in models.__all__
    if isinstance(getattr(models, name), type)
    and issubclass(getattr(models, name), param.Parameterized)
]


@pytest.mark.parametrize("cls", STATE_CLASSES, ids=lambda c: c.__name__)
def test_every_parameter_has_a_doc(cls):
    missing = [n for n, p in cls.param.objects("existing").items() if n != "name" and not p.doc]
    assert missing == []


@pytest.mark.parametrize("cls", STATE_CLASSES, ids=lambda c: c.__name__)
def test_every_input_has_bounds_or_choices(cls):
    loose = []
    for name in getattr(cls, "url_params", ()):
        p = cls.param[name]
        if isinstance(p, param.Selector | param.ListSelector | param.Boolean):
            continue
        if isinstance(p, param.Number | param.List) and p.bounds is not None:
            continue
        if isinstance(p, param.DataFrame) and p.rows is not None:
            continue
        if isinstance(p, param.String) and p.regex is not None:
            continue
        loose.append(name)
    assert loose == []


def test_the_four_pages_have_state_classes():
    for name in ("CapacityPlanner", "SweepExplorer", "GPURecommender", "FleetPlanner"):
        if not hasattr(models, name):
            pytest.skip(f"{name} is not built yet")
        assert name in [c.__name__ for c in STATE_CLASSES]
