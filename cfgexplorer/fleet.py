"""Multi-model fleet planning: GPUs per model, servers by bin packing, power and procurement.

A :class:`Fleet` is the input (models, GPUs already owned, infrastructure);
:meth:`Fleet.plan` returns a :class:`FleetPlan` with one row per model, one
procurement row per GPU type, the packed servers, the totals, and the
errors and warnings a reader must see.

Rules the packing keeps:

- a replica of a model is ``pp`` pipeline stages of ``tp`` GPUs each; a TP
  group (one stage) never spans servers, the stages of one replica may;
- each server holds one GPU type;
- TP groups are placed first-fit decreasing (largest group first, each into
  the first server of its type with room, else a new server);
- the lower bound per type is ceil(GPUs / GPUs per server), and the plan says
  whether the packing meets it;
- a model whose TP exceeds the GPUs per server is an error for that model only;
- a model that errors or does not fit is left out of both packing and
  procurement, with a warning.

Memory comes from :mod:`cfgexplorer.memory` (the capacity planner) for models
with an architecture; manual entries (a parameter count and a quantization)
are sized as parameters x bytes per parameter, under the assumptions named
below. Pure functions and dataclasses only; no Panel, Param or HoloViews.
"""

from __future__ import annotations

import csv
import difflib
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from cfgexplorer.errors import FleetFileError, UnknownGPUError, UserError
from cfgexplorer.gpus import GPU, get_gpu

if TYPE_CHECKING:
    import pandas as pd

    from cfgexplorer.memory import EngineProfile
    from cfgexplorer.spec import ModelSpec

log = logging.getLogger(__name__)

# --- assumptions, each with its unit and source ------------------------------------

DEFAULT_PUE = 1.4  # facility power / IT power; issue 6's default, a typical recent data centre
HOURS_PER_YEAR = 8760  # h; 365 days x 24 h (leap days ignored)
DEFAULT_GPUS_PER_SERVER = 8  # GPUs; HGX-style 8-GPU baseboard, used when the catalog has no figure
W_PER_KW = 1000  # W per kW
GB_PER_BILLION_PARAMS = 1e9  # parameters in one billion
# Bytes per stored parameter of a manual entry, by quantization: the storage width of one
# weight; int4 adds one 16-bit scale per group of 128 weights (GPTQ/AWQ default group size).
MANUAL_BYTES_PER_PARAM: dict[str, float] = {
    "bf16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5 + 2 / 128,
}
# GiB per GPU held back for a manual entry's activation peak (no architecture to model it):
# above the largest sampler peak of the vllm-0.19 calibration rows (gemma-2-9b, 3.65 GiB,
# data/engine_profiles.yaml). Non-torch memory is added from the engine profile.
MANUAL_ACTIVATION_ALLOWANCE_GIB = 4.0

QUANTIZATIONS = tuple(MANUAL_BYTES_PER_PARAM)
SOURCE_MANUAL = "manual"

_MODEL_KEYS = (
    "name",
    "model",
    "params_billion",
    "quantization",
    "moe",
    "gpu",
    "tp",
    "pp",
    "dp",
    "max_model_len",
    "concurrency",
)
_INFRA_KEYS = (
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
_TOP_KEYS = ("name", "engine_profile", "infrastructure", "inventory", "models")
_YES = ("yes", "true", "y", "1")
_NO = ("no", "false", "n", "0")

# Upper bounds that keep a plan to a fraction of a second and its output readable.
MAX_FLEET_GPUS = 100_000  # GPUs; about the largest AI clusters built, per fleet file
MAX_PARALLEL_SIZE = 1024  # GPUs; per TP group or pipeline, above any NVLink domain (NVL576)
MAX_MANUAL_PARAMS_BILLION = 100_000  # billions; 100 T parameters, far above any served model
MAX_GPUS_PER_SERVER = 1024  # GPUs; the same reasoning: a server is at most one NVLink domain

STATUS_PLANNED = "planned"
STATUS_NO_FIT = "does_not_fit"
STATUS_ERROR = "error"


# --- value checks: one sentence each ---------------------------------------------------


def _whole(value: Any, where: str, key: str, minimum: int, maximum: int | None = None) -> int:
    """A whole number >= minimum (and <= maximum if given), or a FleetFileError naming the key."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise FleetFileError(f"{where}: {key} must be a whole number >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise FleetFileError(
            f"{where}: {key} must be at most {maximum:,}, got {value:,}; "
            "split a larger estate into several fleet files"
        )
    return value


def _number(value: Any, where: str, key: str, minimum: float, strict: bool = False) -> float:
    """A finite number >= minimum (> minimum when strict), or a FleetFileError."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok and (value > minimum if strict else value >= minimum):
        return float(value)
    bound = f"more than {minimum:g}" if strict else f"at least {minimum:g}"
    hint = ""
    if isinstance(value, str):
        try:
            float(value)
            hint = f" (YAML reads {value} as text; write the number with a dot, e.g. 1.0e+3)"
        except ValueError:
            pass
    raise FleetFileError(f"{where}: {key} must be a number {bound}, got {value!r}{hint}")


def _unknown_keys(given: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    """Reject keys outside ``allowed``, naming them and listing the allowed ones."""
    unknown = [str(k) for k in given if k not in allowed]
    if not unknown:
        return
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key, allowed, n=1)
        hints.append(f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key))
    noun = "key" if len(unknown) == 1 else "keys"
    raise FleetFileError(
        f"{where}: unknown {noun} {', '.join(hints)}; allowed keys are {', '.join(allowed)}"
    )


def _resolve_gpu(name: Any, where: str) -> GPU:
    """The catalog GPU for a name, or a FleetFileError with the catalog's close matches."""
    if not isinstance(name, str) or not name.strip():
        raise FleetFileError(f"{where}: gpu must be a GPU name such as H100, got {name!r}")
    try:
        return get_gpu(name)
    except UnknownGPUError as exc:
        # Keep the catalog's close matches, drop its CLI-specific way out (--gpu-memory).
        first = str(exc).split(";")[0]
        raise FleetFileError(
            f"{where}: {first}; run `cfgexplorer gpus` to list the known GPUs"
        ) from exc


def _per_gpu_mapping(value: Any, where: str, key: str, check: Any) -> dict[str, Any]:
    """A number for every GPU type, or a mapping GPU name -> number, keyed by canonical name."""
    if not isinstance(value, Mapping):
        return {"*": check(value, where, key)}
    out: dict[str, Any] = {}
    for name, item in value.items():
        gpu = _resolve_gpu(name, f"{where}: {key}")
        if gpu.name in out:
            raise FleetFileError(f"{where}: {key} lists {gpu.name} twice; keep one entry")
        out[gpu.name] = check(item, where, f"{key} for {name}")
    return out


def _lookup(table: Mapping[str, Any] | None, gpu: str) -> Any:
    """The value for a canonical GPU name in a per-GPU table ('*' is every GPU)."""
    if not table:
        return None
    return table.get(gpu, table.get("*"))


# --- the input -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FleetModel:
    """One model of the fleet: a model reference or a manual entry, and its deployment.

    Attributes
    ----------
    model
        Catalog id, local path or Hub id; None for a manual entry.
    gpu
        GPU type (catalog name or alias).
    name
        Label in the outputs; defaults to ``model``. Required for manual entries.
    params_billion, quantization, moe
        A manual entry: parameters in billions, bf16/fp8/int8/int4, MoE or not.
    tp, pp, dp
        Tensor-parallel size, pipeline stages, replicas.
    max_model_len
        When given, the fit is checked with the KV cache for one request this long.
    concurrency
        Requests of ``max_model_len`` tokens the model must hold across its replicas.
    """

    model: str | None = None
    gpu: str = ""
    name: str = ""
    params_billion: float | None = None
    quantization: str | None = None
    moe: bool = False
    tp: int = 1
    pp: int = 1
    dp: int = 1
    max_model_len: int | None = None
    concurrency: int | None = None

    def __post_init__(self) -> None:
        if not self.name and isinstance(self.model, str):
            object.__setattr__(self, "name", self.model.strip())
        if not isinstance(self.name, str) or not self.name.strip():
            if self.model is None and self.params_billion is None:
                raise FleetFileError(
                    "a model entry needs model: (a catalog id, path or Hub id), or name: and "
                    "params_billion: for a manual entry"
                )
            raise FleetFileError("a manual model entry needs a name, such as name: in-house-13b")
        where = f"model {self.name!r}"

        manual = self.params_billion is not None
        if manual == (self.model is not None):
            raise FleetFileError(
                f"{where} must give either model (a catalog id, path or Hub id) or "
                "params_billion (a manual entry), not both or neither"
            )
        if self.model is not None and (not isinstance(self.model, str) or not self.model.strip()):
            raise FleetFileError(f"{where}: model must be a model id or path, got {self.model!r}")
        if manual:
            billions = _number(self.params_billion, where, "params_billion", 0.0, strict=True)
            if billions > MAX_MANUAL_PARAMS_BILLION:
                raise FleetFileError(
                    f"{where}: params_billion {billions:g} is more than "
                    f"{MAX_MANUAL_PARAMS_BILLION:,} billion parameters; give the count in billions"
                )
            quant = self.quantization if self.quantization is not None else "bf16"
            if quant not in QUANTIZATIONS:
                raise FleetFileError(
                    f"{where}: quantization {quant!r} is not one of {', '.join(QUANTIZATIONS)}"
                )
            object.__setattr__(self, "quantization", quant)
        elif self.quantization is not None:
            raise FleetFileError(
                f"{where}: quantization is for manual entries only; a model reference takes "
                "its quantization from its config"
            )
        if not isinstance(self.moe, bool):
            raise FleetFileError(f"{where}: moe must be yes or no, got {self.moe!r}")

        for key in ("tp", "pp"):
            _whole(getattr(self, key), where, key, 1, MAX_PARALLEL_SIZE)
        _whole(self.dp, where, "dp", 1, MAX_FLEET_GPUS)
        if self.tp * self.pp * self.dp > MAX_FLEET_GPUS:
            raise FleetFileError(
                f"{where}: tp x pp x dp is {self.tp * self.pp * self.dp:,} GPUs, more than the "
                f"{MAX_FLEET_GPUS:,} a fleet file may plan; lower dp or split the estate "
                "into several fleet files"
            )
        for key in ("max_model_len", "concurrency"):
            if getattr(self, key) is not None:
                _whole(getattr(self, key), where, key, 1)
        if self.concurrency is not None and self.max_model_len is None:
            raise FleetFileError(
                f"{where}: concurrency needs max_model_len, the length of the requests to hold"
            )
        _resolve_gpu(self.gpu, where)

    @property
    def is_manual(self) -> bool:
        """True for an entry known only by its parameter count."""
        return self.params_billion is not None

    @property
    def gpus(self) -> int:
        """GPUs of all replicas: tp x pp x dp."""
        return self.tp * self.pp * self.dp

    def to_dict(self) -> dict[str, Any]:
        """The entry as it is written in a fleet file (defaults left out)."""
        out: dict[str, Any] = {}
        if self.is_manual:
            out.update(
                name=self.name,
                params_billion=self.params_billion,
                quantization=self.quantization,
                moe=self.moe,
            )
        else:
            out["model"] = self.model
            if self.name != self.model:
                out["name"] = self.name
        out.update(gpu=self.gpu, tp=self.tp, pp=self.pp, dp=self.dp)
        for key in ("max_model_len", "concurrency"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


@dataclass(frozen=True)
class Infrastructure:
    """Servers, power and prices shared by the fleet.

    Per-GPU values (``gpus_per_server``, ``gpu_price``, ``server_price``) are a
    number for every type or a mapping GPU name -> number.

    Attributes
    ----------
    gpus_per_server
        GPUs in one server, for every type or per type; a type not given has 8.
    pue
        Power usage effectiveness: facility power / IT power (>= 1).
    power_budget_kw
        Facility power available, kW; 0 means no budget.
    rack_slots
        Servers the racks can hold; 0 means no limit.
    server_power_kw
        Non-GPU power of one server (CPUs, memory, NICs, fans), kW; 0 leaves it out.
    electricity_price_per_kwh
        Price of one kWh, for the annual energy cost.
    gpu_price, server_price
        Price of one GPU and of one server chassis without GPUs, for the capital cost.
    currency
        Label for the costs.
    """

    gpus_per_server: int | Mapping[str, int] | None = None
    pue: float = DEFAULT_PUE
    power_budget_kw: float = 0.0
    rack_slots: int = 0
    server_power_kw: float = 0.0
    electricity_price_per_kwh: float | None = None
    gpu_price: float | Mapping[str, float] | None = None
    server_price: float | Mapping[str, float] | None = None
    currency: str = "USD"

    def __post_init__(self) -> None:
        where = "infrastructure"
        if self.gpus_per_server is not None:
            _per_gpu_mapping(self.gpus_per_server, where, "gpus_per_server", _gps_check)
        _number(self.pue, where, "pue", 1.0)
        _number(self.power_budget_kw, where, "power_budget_kw", 0.0)
        _whole(self.rack_slots, where, "rack_slots", 0)
        _number(self.server_power_kw, where, "server_power_kw", 0.0)
        if self.electricity_price_per_kwh is not None:
            _number(self.electricity_price_per_kwh, where, "electricity_price_per_kwh", 0.0)
        for key in ("gpu_price", "server_price"):
            if getattr(self, key) is not None:
                _per_gpu_mapping(getattr(self, key), where, key, _price_check)
        if not isinstance(self.currency, str) or not self.currency.strip():
            raise FleetFileError(f"{where}: currency must be a label such as USD")

    def gpus_per_server_for(self, gpu: GPU) -> tuple[int, str]:
        """GPUs per server for a GPU type and where that figure comes from."""
        if self.gpus_per_server is not None:
            table = _per_gpu_mapping(self.gpus_per_server, "", "gpus_per_server", _gps_check)
            value = _lookup(table, gpu.name)
            if value is not None:
                return int(value), "fleet file"
        return DEFAULT_GPUS_PER_SERVER, "default"

    def price(self, key: str, gpu: str) -> float | None:
        """The GPU or server price for a GPU type, None when not given."""
        value = getattr(self, key)
        if value is None:
            return None
        return _lookup(_per_gpu_mapping(value, "", key, _price_check), gpu)

    def to_dict(self) -> dict[str, Any]:
        """The infrastructure as written in a fleet file."""
        out: dict[str, Any] = {
            "pue": self.pue,
            "power_budget_kw": self.power_budget_kw,
            "rack_slots": self.rack_slots,
            "server_power_kw": self.server_power_kw,
            "currency": self.currency,
        }
        for key in ("gpus_per_server", "electricity_price_per_kwh", "gpu_price", "server_price"):
            value = getattr(self, key)
            if value is not None:
                out[key] = dict(value) if isinstance(value, Mapping) else value
        return out


def _gps_check(value: Any, where: str, key: str) -> int:
    return _whole(value, where, key, 1, MAX_GPUS_PER_SERVER)


def _price_check(value: Any, where: str, key: str) -> float:
    return _number(value, where, key, 0.0)


@dataclass(frozen=True)
class Fleet:
    """A fleet to plan: models, GPUs already owned, and the infrastructure.

    Build one in code, with :meth:`from_dict` (the file structure) or with
    :meth:`from_file` (YAML or JSON); change it with :func:`dataclasses.replace`.

    Attributes
    ----------
    models
        The models to serve.
    inventory
        GPUs already owned, GPU name -> count.
    infrastructure
        Servers, PUE, budgets and prices.
    engine_profile
        The vLLM engine profile of the capacity planner (None: the default).
    name
        A title for the summary.
    base_dir
        Directory against which relative model paths resolve (the fleet file's).
    """

    models: tuple[FleetModel, ...] = ()
    inventory: Mapping[str, int] = field(default_factory=dict)
    infrastructure: Infrastructure = field(default_factory=Infrastructure)
    engine_profile: str | None = None
    name: str = "fleet"
    base_dir: Path | None = None
    # A shared dashboard plans fleets from links: it must not read the server's files.
    allow_local_paths: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "models", tuple(self.models))
        names = [m.name for m in self.models]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise FleetFileError(
                f"model name {twice[0]!r} appears more than once; give each entry a distinct name"
            )
        if not isinstance(self.inventory, Mapping):
            raise FleetFileError("inventory must map GPU names to counts, such as {H100: 4}")
        for gpu_name, count in self.inventory.items():
            _whole(count, "inventory", f"count for {gpu_name}", 0)
        total = sum(m.gpus for m in self.models)
        if total > MAX_FLEET_GPUS:
            raise FleetFileError(
                f"the models need {total:,} GPUs together, more than the {MAX_FLEET_GPUS:,} a "
                "fleet file may plan; split the estate into several fleet files"
            )
        self.owned()  # resolves names and rejects duplicates

    # --- construction --------------------------------------------------------------

    @classmethod
    def from_file(cls, path: str | Path) -> Fleet:
        """Read a fleet from a YAML or JSON file.

        Raises
        ------
        FleetFileError
            For an unreadable or malformed file, naming the file and the mistake.
        """
        path = Path(path).expanduser()
        label = path.name
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise FleetFileError(f"fleet file {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise FleetFileError(f"fleet file {label} cannot be read: {exc}") from None

        if path.suffix.lower() == ".json":
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise FleetFileError(
                    f"{label} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
                ) from None
        else:
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None)
                where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
                problem = getattr(exc, "problem", None) or "unreadable"
                raise FleetFileError(f"{label} is not valid YAML: {problem}{where}") from None
        return cls.from_dict(data, source=label, base_dir=path.resolve().parent)

    @classmethod
    def from_dict(
        cls, data: Any, source: str = "fleet", base_dir: str | Path | None = None
    ) -> Fleet:
        """Build a fleet from the file structure (``models``, ``inventory``, ``infrastructure``).

        Raises
        ------
        FleetFileError
            With one sentence naming ``source``, the entry and the fix.
        """
        if data is None:
            raise FleetFileError(f"{source} is empty; it needs at least a 'models:' list")
        if not isinstance(data, Mapping):
            raise FleetFileError(
                f"{source} must be a mapping with a 'models:' list, not a {type(data).__name__}"
            )
        _unknown_keys(data, _TOP_KEYS, source)
        raw_models = data.get("models")
        if not isinstance(raw_models, list) or not raw_models:
            raise FleetFileError(f"{source} needs a non-empty 'models:' list")

        try:
            models = []
            for i, entry in enumerate(raw_models, start=1):
                where = f"model {i}"
                if not isinstance(entry, Mapping):
                    raise FleetFileError(f"{where} must be a mapping with model and gpu keys")
                _unknown_keys(entry, _MODEL_KEYS, where)
                values = {str(k): v for k, v in entry.items()}
                if "moe" in values:
                    values["moe"] = _yes_no(values["moe"], where)
                if "name" in values and not isinstance(values["name"], str):
                    values["name"] = str(values["name"])
                if "model" in values and values["model"] is not None:
                    values["model"] = str(values["model"])
                if "gpu" not in values:
                    raise FleetFileError(f"{where} has no gpu; add one such as gpu: H100")
                models.append(FleetModel(**values))

            infra = data.get("infrastructure") or {}
            if not isinstance(infra, Mapping):
                raise FleetFileError("infrastructure must be a mapping such as {pue: 1.4}")
            _unknown_keys(infra, _INFRA_KEYS, "infrastructure")
            inventory = data.get("inventory") or {}
            if not isinstance(inventory, Mapping):
                raise FleetFileError("inventory must map GPU names to counts, such as {H100: 4}")
            profile = data.get("engine_profile")
            if profile is not None:
                from cfgexplorer.memory import get_profile

                try:
                    get_profile(str(profile))
                except UserError as exc:
                    raise FleetFileError(str(exc)) from None
            return cls(
                models=tuple(models),
                inventory={str(k): v for k, v in inventory.items()},
                infrastructure=Infrastructure(**{str(k): v for k, v in infra.items()}),
                engine_profile=None if profile is None else str(profile),
                name=str(data.get("name") or Path(source).stem or "fleet"),
                base_dir=Path(base_dir) if base_dir is not None else None,
            )
        except FleetFileError as exc:
            raise FleetFileError(f"{source}: {exc}") from exc.__cause__

    def to_dict(self) -> dict[str, Any]:
        """The fleet in the file structure (round-trips through :meth:`from_dict`)."""
        out: dict[str, Any] = {"name": self.name}
        if self.engine_profile:
            out["engine_profile"] = self.engine_profile
        out["infrastructure"] = self.infrastructure.to_dict()
        out["inventory"] = dict(self.inventory)
        out["models"] = [m.to_dict() for m in self.models]
        return out

    def owned(self) -> dict[str, int]:
        """GPUs already owned, keyed by canonical GPU name."""
        out: dict[str, int] = {}
        for name, count in self.inventory.items():
            gpu = _resolve_gpu(name, "inventory")
            if gpu.name in out:
                raise FleetFileError(f"inventory lists {gpu.name} twice; keep one entry")
            out[gpu.name] = count
        return out

    # --- planning ------------------------------------------------------------------

    def plan(self) -> FleetPlan:
        """Plan every model, pack the servers, and total procurement, power and cost."""
        from cfgexplorer.memory import get_profile

        profile = get_profile(self.engine_profile)
        infra = self.infrastructure
        specs: dict[str, Any] = {}  # model ref -> ModelSpec or the UserError it raised
        if not self.allow_local_paths:
            from cfgexplorer.sources import local_reference_error

            for fm in self.models:
                refused = local_reference_error(fm.model) if fm.model else None
                if refused is not None:
                    specs[fm.model] = refused

        results: list[ModelResult] = []
        for fm in self.models:
            gpu = get_gpu(fm.gpu)
            gps, _ = infra.gpus_per_server_for(gpu)
            results.append(_plan_model(fm, gpu, gps, profile, specs, self.base_dir))

        errors = [{"model": r.name, "message": r.problems[0]} for r in results if r.error]
        warnings: list[dict[str, Any]] = []
        for r in results:
            if r.status == STATUS_NO_FIT:
                fix = f"; {r.suggestion['text']}" if r.suggestion else ""
                warnings.append(
                    {
                        "model": r.name,
                        "message": (
                            f"{r.name} does not fit on {r.gpu} as TP{r.tp} x PP{r.pp}: "
                            f"{r.problems[0]}{fix}; it is left out of packing and procurement"
                        ),
                    }
                )
            elif r.error:
                warnings.append(
                    {
                        "model": r.name,
                        "message": f"{r.name} is left out of packing and procurement "
                        "because of the error reported for it",
                    }
                )

        included = [r for r in results if r.included]
        servers, procurement = _pack_and_procure(included, self.owned(), infra)
        totals = _totals(procurement, servers, infra, len(included), len(results) - len(included))
        warnings.extend(_budget_warnings(totals, procurement, infra))
        return FleetPlan(
            name=self.name,
            models=results,
            procurement=procurement,
            servers=servers,
            totals=totals,
            errors=errors,
            warnings=warnings,
            assumptions=_assumptions(results, procurement, infra, profile),
        )


def _yes_no(value: Any, where: str) -> bool:
    """Read moe: yes/no (YAML booleans or the words)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _YES:
        return True
    if text in _NO:
        return False
    raise FleetFileError(f"{where}: moe must be yes or no, got {value!r}")


# --- results ---------------------------------------------------------------------------


@dataclass
class ModelResult:
    """One model's plan: GPUs, memory per GPU, fit, power and where the numbers came from."""

    name: str
    model: str | None
    source: str | None  # "catalog", "hub", "local" or "manual"; None if never loaded
    gpu: str
    tp: int
    pp: int
    dp: int
    gpus: int
    gpus_per_server: int
    max_model_len: int | None
    concurrency: int | None
    status: str
    weights_total_gib: float | None = None
    weights_per_gpu_gib: float | None = None
    kv_pool_per_gpu_gib: float | None = None
    max_concurrency: float | None = None  # requests of max_model_len tokens, all replicas
    fits: bool | None = None
    problems: list[str] = field(default_factory=list)
    suggestion: dict[str, Any] | None = None
    power_kw: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def error(self) -> bool:
        """True when the model could not be planned at all."""
        return self.status == STATUS_ERROR

    @property
    def included(self) -> bool:
        """True when the model is packed and procured."""
        return self.status == STATUS_PLANNED

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.model,
            "source": self.source,
            "gpu": self.gpu,
            "tp": self.tp,
            "pp": self.pp,
            "dp": self.dp,
            "gpus": self.gpus,
            "max_model_len": self.max_model_len,
            "concurrency": self.concurrency,
            "status": self.status,
            "included": self.included,
            "fits": self.fits,
            "weights_total_gib": _round(self.weights_total_gib),
            "weights_per_gpu_gib": _round(self.weights_per_gpu_gib),
            "kv_pool_per_gpu_gib": _round(self.kv_pool_per_gpu_gib),
            "max_concurrency_all_replicas": _round(self.max_concurrency, 2),
            "power_kw": _round(self.power_kw),
            "problems": list(self.problems),
            "suggestion": self.suggestion,
            "notes": list(self.notes),
        }


@dataclass
class TPGroup:
    """One pipeline stage of one replica: ``tp`` GPUs that must share a server."""

    model: str
    replica: int  # 1-based
    stage: int  # 1-based
    tp: int
    first_slot: int = 0  # index of its first GPU in the server, set by the packing

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "replica": self.replica,
            "stage": self.stage,
            "tp": self.tp,
            "slots": list(range(self.first_slot, self.first_slot + self.tp)),
        }


@dataclass
class Server:
    """One server: a GPU type, its slots and the TP groups placed in them."""

    index: int  # 1-based, across the fleet
    gpu: str
    gpus_per_server: int
    groups: list[TPGroup] = field(default_factory=list)

    @property
    def used(self) -> int:
        return sum(g.tp for g in self.groups)

    @property
    def free(self) -> int:
        return self.gpus_per_server - self.used

    @property
    def slots(self) -> list[str | None]:
        """The model in each GPU slot, None where the slot is empty."""
        out: list[str | None] = [None] * self.gpus_per_server
        for g in self.groups:
            for i in range(g.first_slot, g.first_slot + g.tp):
                out[i] = g.model
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "server": self.index,
            "gpu": self.gpu,
            "gpus_per_server": self.gpus_per_server,
            "used": self.used,
            "free": self.free,
            "slots": self.slots,
            "groups": [g.to_dict() for g in self.groups],
        }


@dataclass
class ProcurementRow:
    """What one GPU type needs: GPUs, owned, to buy, servers, power and capital cost."""

    gpu: str
    gpus_per_server: int
    gpus_per_server_source: str
    needed: int
    owned: int
    to_buy: int
    unused_owned: int
    servers: int
    servers_lower_bound: int
    tdp_watts: float | None
    power_kw: float
    servers_to_buy: int
    gpu_price: float | None
    server_price: float | None
    capital_cost: float | None

    @property
    def meets_lower_bound(self) -> bool:
        return self.servers == self.servers_lower_bound

    def to_dict(self) -> dict[str, Any]:
        return {
            "gpu": self.gpu,
            "gpus_per_server": self.gpus_per_server,
            "gpus_per_server_source": self.gpus_per_server_source,
            "needed": self.needed,
            "owned": self.owned,
            "to_buy": self.to_buy,
            "unused_owned": self.unused_owned,
            "servers": self.servers,
            "servers_lower_bound": self.servers_lower_bound,
            "meets_lower_bound": self.meets_lower_bound,
            "servers_to_buy": self.servers_to_buy,
            "tdp_watts": self.tdp_watts,
            "power_kw": _round(self.power_kw),
            "gpu_price": self.gpu_price,
            "server_price": self.server_price,
            "capital_cost": _round(self.capital_cost, 2),
        }


@dataclass
class FleetTotals:
    """Fleet-wide totals (power in kW, energy in kWh per year, costs in ``currency``)."""

    gpus_needed: int
    gpus_owned_used: int
    gpus_to_buy: int
    servers: int
    servers_lower_bound: int
    servers_to_buy: int
    gpu_power_kw: float
    server_power_kw: float  # non-GPU power of all servers
    it_power_kw: float
    pue: float
    facility_power_kw: float
    annual_energy_kwh: float
    annual_energy_cost: float | None
    capital_cost: float | None
    currency: str
    power_budget_kw: float
    power_headroom_kw: float | None
    rack_slots: int
    rack_slots_headroom: int | None
    models_planned: int
    models_left_out: int

    @property
    def meets_lower_bound(self) -> bool:
        return self.servers == self.servers_lower_bound

    def to_dict(self) -> dict[str, Any]:
        return {
            "gpus_needed": self.gpus_needed,
            "gpus_owned_used": self.gpus_owned_used,
            "gpus_to_buy": self.gpus_to_buy,
            "servers": self.servers,
            "servers_lower_bound": self.servers_lower_bound,
            "meets_lower_bound": self.meets_lower_bound,
            "servers_to_buy": self.servers_to_buy,
            "gpu_power_kw": _round(self.gpu_power_kw),
            "server_power_kw": _round(self.server_power_kw),
            "it_power_kw": _round(self.it_power_kw),
            "pue": self.pue,
            "facility_power_kw": _round(self.facility_power_kw),
            "annual_energy_kwh": _round(self.annual_energy_kwh, 1),
            "annual_energy_cost": _round(self.annual_energy_cost, 2),
            "capital_cost": _round(self.capital_cost, 2),
            "currency": self.currency,
            "power_budget_kw": self.power_budget_kw,
            "power_headroom_kw": _round(self.power_headroom_kw),
            "rack_slots": self.rack_slots,
            "rack_slots_headroom": self.rack_slots_headroom,
            "models_planned": self.models_planned,
            "models_left_out": self.models_left_out,
        }


@dataclass
class FleetPlan:
    """The answer for a fleet: tables, totals, errors, warnings and the assumptions behind them."""

    name: str
    models: list[ModelResult]
    procurement: list[ProcurementRow]
    servers: list[Server]
    totals: FleetTotals
    errors: list[dict[str, Any]]
    warnings: list[dict[str, Any]]
    assumptions: list[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able result with stable keys."""
        return {
            "name": self.name,
            "models": [m.to_dict() for m in self.models],
            "procurement": [p.to_dict() for p in self.procurement],
            "servers": [s.to_dict() for s in self.servers],
            "totals": self.totals.to_dict(),
            "errors": list(self.errors),
            "warnings": list(self.warnings),
            "assumptions": list(self.assumptions),
        }

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        """Flat rows per table (models, procurement, servers), as written to CSV."""
        models = []
        for m in self.models:
            row = m.to_dict()
            row["problems"] = "; ".join(row["problems"])
            row["notes"] = "; ".join(row["notes"])
            suggestion = row.pop("suggestion")
            row["suggestion"] = suggestion["text"] if suggestion else ""
            models.append(row)
        servers = []
        for s in self.servers:
            row = s.to_dict()
            row["slots"] = " | ".join(name or "-" for name in row["slots"])
            row["groups"] = "; ".join(
                f"{g['model']} r{g['replica']} s{g['stage']} TP{g['tp']}" for g in row["groups"]
            )
            servers.append(row)
        return {
            "models": models,
            "procurement": [p.to_dict() for p in self.procurement],
            "servers": servers,
        }

    def write_csv(self, directory: str | Path) -> list[Path]:
        """Write ``models.csv``, ``procurement.csv``, ``servers.csv`` and ``summary.txt``.

        Returns the paths written; the directory is created if needed.
        """
        out_dir = Path(directory).expanduser()
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for name, rows in self.tables().items():
            path = out_dir / f"{name}.csv"
            columns = list(rows[0]) if rows else _EMPTY_COLUMNS[name]
            with path.open("w", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, fieldnames=columns)
                writer.writeheader()
                writer.writerows(rows)
            written.append(path)
        summary = out_dir / "summary.txt"
        summary.write_text(self.summary_text(), encoding="utf-8")
        written.append(summary)
        return written

    def to_frames(self) -> dict[str, pd.DataFrame]:
        """The tables as pandas DataFrames (pandas imported only here)."""
        import pandas as pd

        return {name: pd.DataFrame(rows) for name, rows in self.tables().items()}

    def summary_text(self) -> str:
        """A plain-text summary for finance: what to buy, power, energy, costs, caveats."""
        t = self.totals
        cur = t.currency
        left_out = [m for m in self.models if not m.included]
        lines = [f"Fleet plan: {self.name}", ""]
        lines.append(
            f"Models: {t.models_planned} planned, {t.models_left_out} left out of the plan."
        )
        for m in left_out:
            reason = "does not fit" if m.status == STATUS_NO_FIT else "error"
            lines.append(f"  - {m.name} ({reason}): {m.problems[0]}")

        lines += ["", "GPUs and servers by type:"]
        for p in self.procurement:
            lines.append(
                f"  {p.gpu}: need {p.needed} GPUs, own {p.owned}, buy {p.to_buy}; "
                f"{_count(p.servers, 'server')} of {p.gpus_per_server} GPUs "
                f"(lower bound {p.servers_lower_bound}), buy {p.servers_to_buy}"
            )
        if not self.procurement:
            lines.append("  none")

        bound = "meets" if t.meets_lower_bound else "exceeds"
        lines += [
            "",
            "Totals:",
            f"  GPUs needed: {t.gpus_needed} ({t.gpus_owned_used} already owned, "
            f"{t.gpus_to_buy} to buy)",
            f"  Servers: {t.servers} ({bound} the lower bound of {t.servers_lower_bound}; "
            f"{t.servers_to_buy} to buy)",
            f"  Power: {t.gpu_power_kw:,.2f} kW for GPUs, {t.it_power_kw:,.2f} kW IT, "
            f"{t.facility_power_kw:,.2f} kW at the facility (PUE {t.pue:g})",
            f"  Energy: {t.annual_energy_kwh:,.0f} kWh per year",
        ]
        if t.annual_energy_cost is not None:
            lines.append(f"  Energy cost: {t.annual_energy_cost:,.2f} {cur} per year")
        if t.capital_cost is not None:
            lines.append(f"  Capital cost: {t.capital_cost:,.2f} {cur} (GPUs and servers to buy)")
        if t.power_budget_kw:
            if t.power_headroom_kw is not None and t.power_headroom_kw >= 0:
                state = f"{t.power_headroom_kw:,.2f} kW headroom"
            else:
                state = f"over by {-(t.power_headroom_kw or 0):,.2f} kW"
            lines.append(f"  Power budget: {t.power_budget_kw:,.2f} kW, {state}")
        if t.rack_slots:
            headroom = t.rack_slots_headroom or 0
            state = f"{headroom} free" if headroom >= 0 else f"short by {-headroom}"
            lines.append(f"  Rack slots: {t.rack_slots}, {state}")

        if self.errors or self.warnings:
            lines += ["", "Errors and warnings:"]
            lines += [f"  - error: {e['model']}: {e['message']}" for e in self.errors]
            lines += [f"  - {w['message']}" for w in self.warnings]
        lines += ["", "Assumptions:"]
        lines += [f"  - {a}" for a in self.assumptions]
        return "\n".join(lines) + "\n"


_EMPTY_COLUMNS = {
    "models": ["name", "model", "gpu", "status"],
    "procurement": ["gpu", "needed", "owned", "to_buy"],
    "servers": ["server", "gpu", "slots"],
}


def _count(n: int, noun: str) -> str:
    """'1 server', '3 servers'."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


# --- planning one model ----------------------------------------------------------------


def _plan_model(
    fm: FleetModel,
    gpu: GPU,
    gps: int,
    profile: EngineProfile,
    specs: dict[str, Any],
    base_dir: Path | None,
) -> ModelResult:
    """Plan one model on its GPU type; errors become this model's status, never raised."""
    result = ModelResult(
        name=fm.name,
        model=fm.model,
        source=SOURCE_MANUAL if fm.is_manual else None,
        gpu=gpu.name,
        tp=fm.tp,
        pp=fm.pp,
        dp=fm.dp,
        gpus=fm.gpus,
        gpus_per_server=gps,
        max_model_len=fm.max_model_len,
        concurrency=fm.concurrency,
        status=STATUS_PLANNED,
        power_kw=fm.gpus * (gpu.tdp_watts or 0.0) / W_PER_KW,
    )
    if fm.tp > gps:
        result.status = STATUS_ERROR
        result.problems.append(
            f"TP{fm.tp} needs {fm.tp} GPUs in one server but a {gpu.name} server holds {gps}; "
            f"use tp <= {gps} and add pipeline stages (pp), which may span servers"
        )
        return result

    if fm.is_manual:
        _plan_manual(fm, gpu, gps, profile, result)
    else:
        _plan_reference(fm, gpu, gps, profile, specs, base_dir, result)
    if result.status == STATUS_PLANNED and result.fits is False:
        result.status = STATUS_NO_FIT
    return result


def _load_spec(ref: str, specs: dict[str, Any], base_dir: Path | None) -> ModelSpec:
    """Load a model once per plan; a relative path resolves against the fleet file's folder."""
    if ref not in specs:
        from cfgexplorer import load_model

        target = ref
        if base_dir is not None and not Path(ref).expanduser().is_absolute():
            candidate = base_dir / ref
            if candidate.exists():
                target = str(candidate)
        try:
            specs[ref] = load_model(target)
        except UserError as exc:
            specs[ref] = exc
    loaded = specs[ref]
    if isinstance(loaded, UserError):
        raise loaded
    return loaded


def _plan_reference(
    fm: FleetModel,
    gpu: GPU,
    gps: int,
    profile: EngineProfile,
    specs: dict[str, Any],
    base_dir: Path | None,
    result: ModelResult,
) -> None:
    """Plan a model with an architecture through the capacity planner."""
    from cfgexplorer.memory import Deployment, plan

    assert fm.model is not None
    try:
        spec = _load_spec(fm.model, specs, base_dir)
        result.source = spec.source
        if fm.max_model_len and fm.max_model_len > spec.max_position_embeddings:
            raise FleetFileError(
                f"max_model_len {fm.max_model_len} exceeds {spec.model_id}'s maximum of "
                f"{spec.max_position_embeddings} tokens; lower max_model_len in the fleet file"
            )
        dep = Deployment(tp=fm.tp, pp=fm.pp, dp=fm.dp, max_model_len=fm.max_model_len)
        p = plan(spec, gpu, dep, profile)
    except UserError as exc:
        result.status = STATUS_ERROR
        result.problems.append(str(exc))
        return

    result.weights_total_gib = p.weights_total_gib
    result.weights_per_gpu_gib = p.weights_gib
    result.kv_pool_per_gpu_gib = p.kv_pool_gib
    result.max_concurrency = p.max_concurrency * fm.dp
    if fm.max_model_len is None:
        # Without a length, the fit is "the weights, activation and non-torch memory leave a
        # KV pool"; the model's full context may still be too long for it.
        result.fits = p.kv_pool_gib > 0
        result.problems = [] if result.fits else list(p.problems[:1])
        if result.fits and not p.fits:
            result.notes.append(
                "no max_model_len given: fit checked on weights, activation and non-torch "
                f"memory only; serve it with --max-model-len {p.max_model_len_that_fits} or "
                f"less, since vLLM's default (the model's {p.max_model_len:,} tokens) does not "
                "fit"
            )
        elif result.fits:
            result.notes.append(
                "no max_model_len given: fit checked on weights, activation and non-torch "
                f"memory; the model's full {p.max_model_len:,}-token context fits too"
            )
    else:
        result.fits = p.fits
        result.problems = list(p.problems)
        if p.fits and fm.concurrency is not None and result.max_concurrency < fm.concurrency:
            result.fits = False
            result.problems.append(
                f"{fm.dp} replica(s) hold {result.max_concurrency:.1f} concurrent requests of "
                f"{p.max_model_len} tokens, fewer than the {fm.concurrency} required"
            )
    if not result.fits:
        result.suggestion = _suggest_reference(spec, gpu, gps, fm, profile)


def _suggest_reference(
    spec: ModelSpec, gpu: GPU, gps: int, fm: FleetModel, profile: EngineProfile
) -> dict[str, Any] | None:
    """The smallest TP x PP (TP within one server) that holds the model, from the planner."""
    from cfgexplorer.memory import smallest_parallelism

    per_replica = math.ceil((fm.concurrency or 1) / fm.dp)
    for max_gpus in (gps, 64):
        found = smallest_parallelism(
            spec, gpu, fm.max_model_len, per_replica, max_gpus=max_gpus, profile=profile.name
        )
        if found is not None and found.deployment.tp <= gps:
            tp, pp = found.deployment.tp, found.deployment.pp
            return {
                "tp": tp,
                "pp": pp,
                "text": f"the smallest parallelism that fits is TP{tp} x PP{pp} per replica",
            }
    return None


def _plan_manual(
    fm: FleetModel, gpu: GPU, gps: int, profile: EngineProfile, result: ModelResult
) -> None:
    """Size a manual entry: params x bytes per param against the budget less an overhead."""
    assert fm.params_billion is not None
    assert fm.quantization is not None
    weights_gib = _manual_weights_gib(fm.params_billion, fm.quantization)
    per_gpu = weights_gib / (fm.tp * fm.pp)
    room = _manual_room_gib(gpu, fm.tp, fm.pp, profile)

    result.weights_total_gib = weights_gib * fm.dp
    result.weights_per_gpu_gib = per_gpu
    result.kv_pool_per_gpu_gib = room - per_gpu
    result.fits = per_gpu < room
    result.notes.append(
        f"manual entry: weights = {fm.params_billion:g} B params x "
        f"{MANUAL_BYTES_PER_PARAM[fm.quantization]:g} bytes ({fm.quantization}), split evenly "
        f"over TP x PP; KV pool = utilization x device memory - weights - "
        f"{MANUAL_ACTIVATION_ALLOWANCE_GIB:g} GiB activation allowance - non-torch memory"
    )
    if fm.moe:
        result.notes.append(
            "MoE: every expert is resident, so weights are sized on the total parameter count"
        )
    if fm.max_model_len is not None:
        result.notes.append(
            "max_model_len and concurrency are not checked for a manual entry: without an "
            "architecture the KV bytes per token are unknown"
        )
    if not result.fits:
        result.problems.append(
            f"the weights need {per_gpu:.2f} GiB per GPU, leaving no KV cache in the "
            f"{room:.2f} GiB left on each {gpu.name} after the runtime overhead"
        )
        result.suggestion = _suggest_manual(weights_gib, gpu, gps, profile)


def _manual_weights_gib(params_billion: float, quantization: str) -> float:
    """Weights of a manual entry in GiB: parameters x bytes per parameter."""
    from cfgexplorer.memory import GIB

    return params_billion * GB_PER_BILLION_PARAMS * MANUAL_BYTES_PER_PARAM[quantization] / GIB


def _manual_room_gib(gpu: GPU, tp: int, pp: int, profile: EngineProfile) -> float:
    """GiB per GPU left for weights and KV cache: budget less activation and non-torch memory."""
    from cfgexplorer.memory import Deployment, non_torch_gib

    utilization = float(profile.defaults["gpu_memory_utilization"])
    non_torch = non_torch_gib(Deployment(tp=tp, pp=pp), profile)
    return utilization * gpu.memory_gib_reported - MANUAL_ACTIVATION_ALLOWANCE_GIB - non_torch


def _suggest_manual(
    weights_gib: float, gpu: GPU, gps: int, profile: EngineProfile
) -> dict[str, Any] | None:
    """The smallest TP (powers of two within a server), then PP, that leaves a KV pool."""
    tps = [t for t in (1, 2, 4, 8, 16, 32) if t <= gps]
    options = [(tp, 1) for tp in tps] + [(tps[-1], pp) for pp in range(2, 65)]
    for tp, pp in options:
        if weights_gib / (tp * pp) < _manual_room_gib(gpu, tp, pp, profile):
            return {
                "tp": tp,
                "pp": pp,
                "text": f"the smallest parallelism that fits is TP{tp} x PP{pp} per replica",
            }
    return None


# --- packing, procurement, totals --------------------------------------------------------


def tp_groups(result: ModelResult) -> list[TPGroup]:
    """The TP groups of a model: one per pipeline stage of each replica."""
    return [
        TPGroup(model=result.name, replica=r, stage=s, tp=result.tp)
        for r in range(1, result.dp + 1)
        for s in range(1, result.pp + 1)
    ]


def pack_first_fit_decreasing(
    groups: list[TPGroup], gpu: str, gpus_per_server: int, first_index: int = 1
) -> list[Server]:
    """Place TP groups of one GPU type into servers, largest group first, first fit.

    A group never spans servers. Ties keep the input order (the sort is stable).
    Groups of one size are placed together: free space only shrinks, so the first
    server with room for a group of that size never moves back, and a scan per size
    replaces a scan per group (thousands of replicas pack in milliseconds).

    Raises
    ------
    ValueError
        When a group is larger than a server (callers report that per model first).
    """
    servers: list[Server] = []
    used: list[int] = []  # GPUs taken in each server, kept beside it for speed
    ordered = sorted(groups, key=lambda g: -g.tp)
    start = 0
    while start < len(ordered):
        tp = ordered[start].tp
        if tp > gpus_per_server:
            raise ValueError(f"TP group of {tp} GPUs exceeds a {gpus_per_server}-GPU server")
        end = start
        while end < len(ordered) and ordered[end].tp == tp:
            end += 1
        cursor = 0  # the first server that may still have room for a group of this size
        for group in ordered[start:end]:
            while cursor < len(servers) and gpus_per_server - used[cursor] < tp:
                cursor += 1
            if cursor == len(servers):
                servers.append(
                    Server(
                        index=first_index + len(servers), gpu=gpu, gpus_per_server=gpus_per_server
                    )
                )
                used.append(0)
            group.first_slot = used[cursor]
            used[cursor] += tp
            servers[cursor].groups.append(group)
        start = end
    return servers


def servers_lower_bound(gpus: int, gpus_per_server: int) -> int:
    """No packing of ``gpus`` GPUs can use fewer servers than ceil(gpus / gpus_per_server)."""
    return -(-gpus // gpus_per_server)


def _pack_and_procure(
    included: list[ModelResult], owned: dict[str, int], infra: Infrastructure
) -> tuple[list[Server], list[ProcurementRow]]:
    """Pack each GPU type's TP groups and build its procurement row."""
    by_type: dict[str, list[ModelResult]] = {}
    for r in included:
        by_type.setdefault(r.gpu, []).append(r)
    for name in owned:
        by_type.setdefault(name, [])

    servers: list[Server] = []
    rows: list[ProcurementRow] = []
    for name, results in by_type.items():
        gpu = get_gpu(name)
        gps, gps_source = infra.gpus_per_server_for(gpu)
        groups = [g for r in results for g in tp_groups(r)]
        packed = pack_first_fit_decreasing(groups, name, gps, first_index=len(servers) + 1)
        servers.extend(packed)

        needed = sum(r.gpus for r in results)
        have = owned.get(name, 0)
        to_buy = max(needed - have, 0)
        # Owned GPUs are taken to sit in whole servers of this type: have // gps chassis.
        servers_to_buy = max(len(packed) - have // gps, 0)
        gpu_price = infra.price("gpu_price", name)
        server_price = infra.price("server_price", name)
        capital = None
        if gpu_price is not None or server_price is not None:
            capital = to_buy * (gpu_price or 0.0) + servers_to_buy * (server_price or 0.0)
        rows.append(
            ProcurementRow(
                gpu=name,
                gpus_per_server=gps,
                gpus_per_server_source=gps_source,
                needed=needed,
                owned=have,
                to_buy=to_buy,
                unused_owned=max(have - needed, 0),
                servers=len(packed),
                servers_lower_bound=servers_lower_bound(needed, gps),
                tdp_watts=gpu.tdp_watts,
                power_kw=needed * (gpu.tdp_watts or 0.0) / W_PER_KW,
                servers_to_buy=servers_to_buy,
                gpu_price=gpu_price,
                server_price=server_price,
                capital_cost=capital,
            )
        )
    return servers, rows


def _totals(
    rows: list[ProcurementRow],
    servers: list[Server],
    infra: Infrastructure,
    planned: int,
    left_out: int,
) -> FleetTotals:
    """Fleet totals: GPUs, servers, power with PUE, annual energy and costs."""
    gpu_power = sum(r.power_kw for r in rows)
    server_power = len(servers) * infra.server_power_kw
    it_power = gpu_power + server_power
    facility = it_power * infra.pue
    energy = facility * HOURS_PER_YEAR
    price = infra.electricity_price_per_kwh
    capitals = [r.capital_cost for r in rows if r.capital_cost is not None]
    return FleetTotals(
        gpus_needed=sum(r.needed for r in rows),
        gpus_owned_used=sum(min(r.owned, r.needed) for r in rows),
        gpus_to_buy=sum(r.to_buy for r in rows),
        servers=len(servers),
        servers_lower_bound=sum(r.servers_lower_bound for r in rows),
        servers_to_buy=sum(r.servers_to_buy for r in rows),
        gpu_power_kw=gpu_power,
        server_power_kw=server_power,
        it_power_kw=it_power,
        pue=infra.pue,
        facility_power_kw=facility,
        annual_energy_kwh=energy,
        annual_energy_cost=None if price is None else energy * price,
        capital_cost=sum(capitals) if capitals else None,
        currency=infra.currency,
        power_budget_kw=infra.power_budget_kw,
        power_headroom_kw=infra.power_budget_kw - facility if infra.power_budget_kw else None,
        rack_slots=infra.rack_slots,
        rack_slots_headroom=infra.rack_slots - len(servers) if infra.rack_slots else None,
        models_planned=planned,
        models_left_out=left_out,
    )


def _budget_warnings(
    totals: FleetTotals, rows: list[ProcurementRow], infra: Infrastructure
) -> list[dict[str, Any]]:
    """Warnings for an exceeded power budget or rack, unmet bounds and missing prices."""
    out = []
    if totals.power_headroom_kw is not None and totals.power_headroom_kw < 0:
        out.append(
            f"facility power {totals.facility_power_kw:,.2f} kW exceeds the power budget of "
            f"{totals.power_budget_kw:,.2f} kW by {-totals.power_headroom_kw:,.2f} kW"
        )
    if totals.rack_slots_headroom is not None and totals.rack_slots_headroom < 0:
        out.append(
            f"{totals.servers} servers exceed the {totals.rack_slots} rack slots by "
            f"{-totals.rack_slots_headroom}"
        )
    for r in rows:
        if r.servers > r.servers_lower_bound:
            out.append(
                f"{r.gpu}: the packing uses {r.servers} servers, above the lower bound of "
                f"{r.servers_lower_bound}, because TP groups cannot be split across servers"
            )
        if r.tdp_watts is None and r.needed:
            out.append(f"{r.gpu} has no TDP in the catalog; its power is counted as 0 kW")
        for key in ("gpu_price", "server_price"):
            if getattr(infra, key) is not None and getattr(r, key) is None and r.needed:
                out.append(f"no {key} for {r.gpu}; the capital cost leaves it out")
    return [{"model": None, "message": m} for m in out]


def _assumptions(
    results: list[ModelResult],
    rows: list[ProcurementRow],
    infra: Infrastructure,
    profile: EngineProfile,
) -> list[str]:
    """The assumptions the numbers rest on, stated in the output."""
    out = [
        f"memory per GPU from the capacity planner, engine profile {profile.name} "
        f"(gpu_memory_utilization {profile.defaults['gpu_memory_utilization']:g})",
        "GPU power = GPUs needed x TDP (every GPU at TDP: an upper bound); owned GPUs the "
        "fleet does not need are not counted",
        (
            f"non-GPU server power included: {infra.server_power_kw:g} kW per server "
            "(server_power_kw)"
            if infra.server_power_kw
            else "non-GPU server power (CPUs, memory, NICs, fans) is not included; set "
            "infrastructure.server_power_kw to add it"
        ),
        f"facility power = IT power x PUE {infra.pue:g}; annual energy = facility power x "
        f"{HOURS_PER_YEAR} h (all year at full power)",
        "the power budget is compared with facility power (PUE included)",
        "packing: a TP group stays in one server, PP stages may span servers, one GPU type "
        "per server, first-fit decreasing",
    ]
    for r in rows:
        out.append(f"{r.gpu}: {r.gpus_per_server} GPUs per server ({r.gpus_per_server_source})")
    if infra.server_price is not None:
        out.append(
            "owned GPUs are taken to sit in whole servers already owned "
            "(owned // GPUs per server chassis), so those servers are not bought"
        )
    if any(r.source == SOURCE_MANUAL for r in results):
        sizes = ", ".join(f"{q} {b:g}" for q, b in MANUAL_BYTES_PER_PARAM.items())
        out.append(
            f"manual entries: bytes per parameter {sizes}; {MANUAL_ACTIVATION_ALLOWANCE_GIB:g} "
            "GiB per GPU held for the activation peak plus the profile's non-torch memory; "
            "weights split evenly over TP x PP; KV cache per token unknown"
        )
    return out
