"""GPU catalog and reference costs.

The catalog (``data/gpus.yaml``) describes each accelerator as a serving
engine sees one device: the memory it reports to CUDA/ROCm, dense tensor
peaks, bandwidth and interconnect. Costs (``data/gpu_costs.yaml``) are
relative reference values, never quotes.

Nothing here imports heavy libraries; the YAML files are read once per
process and the results are immutable.
"""

from __future__ import annotations

import difflib
import logging
import math
import re
from dataclasses import asdict, dataclass, field
from functools import cache
from typing import Any

import yaml

from cfgexplorer.errors import InvalidDeploymentError, UnknownGPUError
from cfgexplorer.paths import data_dir

log = logging.getLogger(__name__)

GPUS_FILE = "gpus.yaml"
COSTS_FILE = "gpu_costs.yaml"

# Labels stamped on every cost answer so no caller can show them as prices.
COST_LABEL = "relative reference values"
COST_DISCLAIMER = (
    "Reference values for relative comparison between GPUs, not prices or quotes; "
    "supply your own costs with --custom-gpu-cost NAME:COST for real figures."
)

# Vendor words a user or a report may put in front of a catalog name.
_VENDOR_PREFIXES = ("nvidia", "amdinstinct", "amd", "intel", "habana", "tesla", "geforce")

# dtype spelling -> the catalog figure it runs at first.
_DTYPE_ALIASES: dict[str, str] = {
    "bf16": "bf16",
    "bfloat16": "bf16",
    "fp16": "fp16",
    "float16": "fp16",
    "half": "fp16",
    "auto": "bf16",
    "fp8": "fp8",
    "fp8_e4m3": "fp8",
    "fp8_e5m2": "fp8",
    "float8": "fp8",
    "fp4": "fp4",
    "nvfp4": "fp4",
    "mxfp4": "fp4",
    "int8": "int8",
    "w8a8": "int8",
}

_REQUIRED_FIELDS = (
    "name",
    "vendor",
    "generation",
    "memory_type",
    "memory_gb_nominal",
    "memory_gib_reported",
    "memory_bandwidth_gbps",
    "interconnect_gbps",
    "interconnect_kind",
    "gpus_per_server",
    "tdp_watts",
    "fp8_kv_cache",
    "source",
)


@dataclass(frozen=True)
class GPU:
    """One accelerator as a serving engine sees one device.

    Units live in the names: GiB is 1024**3 bytes, GB is 10**9 bytes except
    in ``memory_gb_nominal``, which is the vendor's label ("80GB") and, as
    vendors count device memory, an upper bound in GiB. ``*_tflops`` and
    ``int8_tops`` are dense tensor peaks; None where unsupported or unknown.
    """

    name: str
    vendor: str
    generation: str
    memory_gib_reported: float  # what CUDA/ROCm reports as total, GiB
    memory_gb_nominal: float | None = None  # vendor label, e.g. 80 for "80GB"
    memory_type: str | None = None
    aliases: tuple[str, ...] = ()
    bf16_tflops: float | None = None
    fp16_tflops: float | None = None
    fp8_tflops: float | None = None
    fp4_tflops: float | None = None
    int8_tops: float | None = None
    memory_bandwidth_gbps: float | None = None  # GB/s
    interconnect_gbps: float | None = None  # GB/s per GPU, one direction, intra-node
    interconnect_kind: str | None = None
    gpus_per_server: int | None = None
    tdp_watts: float | None = None
    compute_capability: str | None = None  # NVIDIA only, e.g. "9.0"
    fp8_kv_cache: bool | None = None  # None: unknown (custom GPU)
    estimates: tuple[str, ...] = ()  # fields that are estimates, not datasheet/measured
    source: str = ""
    custom: bool = False
    notes: tuple[str, ...] = field(default=())

    @property
    def memory_bytes_reported(self) -> int:
        """Device total as CUDA/ROCm reports it, in bytes."""
        return int(self.memory_gib_reported * 1024**3)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict with stable keys (tuples become lists)."""
        out = asdict(self)
        out["aliases"] = list(self.aliases)
        out["estimates"] = list(self.estimates)
        out["notes"] = list(self.notes)
        return out


def normalize_name(name: str) -> str:
    """Fold a GPU name for lookup: lower case, separators and spaces dropped."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


@cache
def _catalog() -> tuple[tuple[GPU, ...], dict[str, GPU]]:
    """Read gpus.yaml once: the GPUs in file order and the lookup index."""
    path = data_dir() / GPUS_FILE
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    gpus = tuple(_gpu_from_entry(entry) for entry in raw["gpus"])

    index: dict[str, GPU] = {}
    for gpu in gpus:
        for key in {normalize_name(gpu.name), *(normalize_name(a) for a in gpu.aliases)}:
            if key in index and index[key] is not gpu:
                raise ValueError(
                    f"{path}: name {key!r} is claimed by both {index[key].name} and {gpu.name}"
                )
            index[key] = gpu
    log.debug("loaded %d GPUs from %s", len(gpus), path)
    return gpus, index


def _gpu_from_entry(entry: dict[str, Any]) -> GPU:
    """Build a GPU from one YAML entry, checking the required fields are there."""
    missing = [key for key in _REQUIRED_FIELDS if key not in entry]
    if missing:
        raise ValueError(f"GPU entry {entry.get('name')!r} lacks {', '.join(missing)}")
    values = dict(entry)
    values["aliases"] = tuple(str(a) for a in values.get("aliases") or ())
    values["estimates"] = tuple(values.get("estimates") or ())
    if values.get("compute_capability") is not None:
        values["compute_capability"] = str(values["compute_capability"])
    values["source"] = " ".join(str(values["source"]).split())
    return GPU(**values)


def list_gpus() -> list[GPU]:
    """Return every catalog GPU, in catalog order."""
    return list(_catalog()[0])


def gpu_names() -> list[str]:
    """Return the canonical names, in catalog order."""
    return [gpu.name for gpu in _catalog()[0]]


def get_gpu(name: str) -> GPU:
    """Resolve a canonical name or alias to its GPU.

    Matching ignores case and separators ("h100 sxm", "H100_SXM",
    "nvidia-h100-80gb-hbm3") and a leading vendor word ("NVIDIA L40S").

    Parameters
    ----------
    name
        Canonical name, alias, or the name a benchmark report or
        ``nvidia-smi`` prints.

    Raises
    ------
    UnknownGPUError
        When nothing matches; the message lists close matches.
    """
    _gpus, index = _catalog()
    key = normalize_name(name)
    gpu = index.get(key)
    if gpu is None:
        for prefix in _VENDOR_PREFIXES:
            if key.startswith(prefix) and key[len(prefix) :] in index:
                gpu = index[key[len(prefix) :]]
                break
    if gpu is None:
        raise UnknownGPUError(_unknown_gpu_message(name))
    return gpu


def _unknown_gpu_message(name: str) -> str:
    """One sentence naming the input, close matches and the way out."""
    gpus, index = _catalog()
    by_key = {normalize_name(g.name): g.name for g in gpus}
    by_key.update({k: g.name for k, g in index.items()})
    close_keys = difflib.get_close_matches(normalize_name(name), list(by_key), n=8, cutoff=0.5)
    close = list(dict.fromkeys(by_key[k] for k in close_keys))[:4]
    matches = f" (close matches: {', '.join(close)})" if close else ""
    return (
        f"unknown GPU {name!r}{matches}; run `cfgexplorer gpus` for the full list "
        "or give the memory alone with --gpu-memory GIB"
    )


# Largest memory one custom GPU may claim: 10x the biggest in the catalog (GB300, 279 GiB).
MAX_CUSTOM_GPU_MEMORY_GIB = 4096  # GiB; an assumption that catches MB or bytes typed as GiB


def custom_gpu(memory_gib: float, name: str | None = None) -> GPU:
    """A GPU known only by the memory it reports, as for ``--gpu-memory 48``.

    Every other figure is None, so performance estimates are unavailable and
    the fp8 KV capability is unknown.

    Raises
    ------
    InvalidDeploymentError
        When ``memory_gib`` is not a positive finite number.
    """
    try:
        memory = float(memory_gib)
    except (TypeError, ValueError):
        raise InvalidDeploymentError(
            f"GPU memory must be a number of GiB, got {memory_gib!r}"
        ) from None
    if not math.isfinite(memory) or memory <= 0:
        raise InvalidDeploymentError(f"GPU memory must be more than 0 GiB, got {memory_gib!r}")
    if memory > MAX_CUSTOM_GPU_MEMORY_GIB:
        raise InvalidDeploymentError(
            f"GPU memory of {memory:g} GiB is more than any accelerator has (the limit here is "
            f"{MAX_CUSTOM_GPU_MEMORY_GIB:,} GiB); give one GPU's memory in GiB, e.g. 48"
        )

    label = name or f"custom-{memory:g}GiB"
    return GPU(
        name=label,
        vendor="custom",
        generation="unknown",
        memory_gib_reported=memory,
        source="given by the user as the memory the device reports (GiB); no other figures",
        custom=True,
        notes=(
            f"custom GPU: {memory:g} GiB is taken as the total the device reports to "
            "CUDA/ROCm, not the marketing size",
        ),
    )


def peak_tflops(gpu: GPU, dtype: str) -> float | None:
    """Dense peak for the matmul dtype a deployment runs, with fallbacks.

    A format the hardware lacks runs at the rate the kernels actually use:
    fp8 weights on Ampere or Turing (weight-only, Marlin-style) are widened
    and multiplied at the 16-bit rate; fp4 without fp4 tensor cores is
    widened to 16-bit as well; int8 without an int8 figure falls back to
    16-bit; bf16 on a part without bf16 (T4) runs as fp16 and vice versa.
    Returns None when the GPU has no compute figures (custom GPU).

    Raises
    ------
    InvalidDeploymentError
        For a dtype name this function does not know.
    """
    kind = _DTYPE_ALIASES.get(dtype.lower().strip())
    if kind is None:
        known = ", ".join(sorted(set(_DTYPE_ALIASES)))
        raise InvalidDeploymentError(f"unknown compute dtype {dtype!r}; use one of {known}")

    sixteen_bit = (
        (gpu.fp16_tflops or gpu.bf16_tflops)
        if kind == "fp16"
        else (gpu.bf16_tflops or gpu.fp16_tflops)
    )
    if kind in ("bf16", "fp16"):
        return sixteen_bit
    if kind == "fp8":
        return gpu.fp8_tflops or sixteen_bit
    if kind == "fp4":
        return gpu.fp4_tflops or sixteen_bit
    return gpu.int8_tops or sixteen_bit


# ------------------------------------------------------------------ costs


@cache
def _costs() -> dict[str, float]:
    """Read gpu_costs.yaml once: canonical name -> reference cost per GPU-hour."""
    path = data_dir() / COSTS_FILE
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    costs: dict[str, float] = {}
    for name, value in (raw.get("costs") or {}).items():
        costs[get_gpu(str(name)).name] = float(value)
    return costs


def reference_cost_per_hour(name: str) -> float | None:
    """Reference cost per GPU-hour for a GPU name or alias; None if it has none.

    A relative reference value for comparing GPUs, never a price (see
    ``COST_DISCLAIMER``).

    Raises
    ------
    UnknownGPUError
        When the name is not in the catalog.
    """
    return _costs().get(get_gpu(name).name)


def reference_costs() -> dict[str, float]:
    """All reference costs per GPU-hour, keyed by canonical name (a copy)."""
    return dict(_costs())


def resolve_costs(overrides: dict[str, float] | None = None) -> dict[str, float]:
    """Reference costs with user overrides applied, keyed by canonical name.

    Parameters
    ----------
    overrides
        GPU name or alias -> cost per GPU-hour; wins over the reference
        value. Names resolve like :func:`get_gpu`.

    Raises
    ------
    UnknownGPUError
        For an override naming no catalog GPU.
    InvalidDeploymentError
        For a negative or non-finite cost.
    """
    costs = dict(_costs())
    for name, cost in (overrides or {}).items():
        costs[get_gpu(name).name] = _check_cost(name, cost)
    return costs


def cost_provenance(name: str, overrides: dict[str, float] | None = None) -> str:
    """Say where a GPU's cost comes from: "custom", "reference" or "none"."""
    canonical = get_gpu(name).name
    if any(get_gpu(key).name == canonical for key in (overrides or {})):
        return "custom"
    return "reference" if canonical in _costs() else "none"


def parse_cost_override(text: str) -> tuple[str, float]:
    """Parse ``--custom-gpu-cost NAME:COST`` into ``(canonical_name, cost)``.

    Raises
    ------
    InvalidDeploymentError
        When the text is not NAME:COST or the cost is not a non-negative number.
    UnknownGPUError
        When NAME is not in the catalog.
    """
    name, sep, cost_text = text.rpartition(":")
    name = name.strip()
    if not sep or not name or not cost_text.strip():
        raise InvalidDeploymentError(
            f"custom GPU cost {text!r} is not NAME:COST; write it like H100:2.5"
        )
    try:
        cost = float(cost_text)
    except ValueError:
        raise InvalidDeploymentError(
            f"custom GPU cost {text!r} has a cost that is not a number; write it like H100:2.5"
        ) from None
    return get_gpu(name).name, _check_cost(name, cost)


def _check_cost(name: str, cost: float) -> float:
    """Reject costs that are negative, infinite or not numbers."""
    try:
        value = float(cost)
    except (TypeError, ValueError):
        raise InvalidDeploymentError(
            f"cost for GPU {name!r} must be a number per GPU-hour, got {cost!r}"
        ) from None
    if not math.isfinite(value) or value < 0:
        raise InvalidDeploymentError(
            f"cost for GPU {name!r} must be zero or more per GPU-hour, got {cost!r}"
        )
    return value
