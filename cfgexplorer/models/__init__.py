"""Param classes holding the state of each dashboard page; no widgets here.

Each class works without a browser (``CapacityPlanner(model=..., gpu="H100").plan``)
and is shown by the matching page in :mod:`cfgexplorer.views`.
"""

from cfgexplorer.models.base import PageState
from cfgexplorer.models.capacity import CapacityPlanner
from cfgexplorer.models.fleet import FleetPlanner
from cfgexplorer.models.recommend import GPURecommender
from cfgexplorer.models.sweep import SweepExplorer

__all__ = [
    "CapacityPlanner",
    "FleetPlanner",
    "GPURecommender",
    "PageState",
    "SweepExplorer",
]
