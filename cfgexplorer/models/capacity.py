"""CapacityPlanner: the state of the capacity page, usable from a script.

    >>> from cfgexplorer.models import CapacityPlanner
    >>> p = CapacityPlanner(model="Qwen/Qwen3-32B", gpu="H100", tp=2)
    >>> p.plan.kv_tokens  # same as `cfgexplorer plan --model Qwen/Qwen3-32B --gpu H100 --tp 2`

Inputs are Parameters; ``spec``, ``plan``, ``curve`` and ``smallest`` are
derived from them in two places only (:meth:`_load_model` for the model,
:meth:`_compute` for everything else), both calling the core functions in
:mod:`cfgexplorer.memory`. A choice that stops being valid (a TP size the new
model rejects, a length beyond its maximum) is adjusted and noted; a
combination vLLM would reject leaves ``plan`` empty and says why in
``message``. Nothing raises for bad input.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import Any, ClassVar

import pandas as pd
import param

from cfgexplorer import catalog, gpus, memory
from cfgexplorer.errors import UserError
from cfgexplorer.models.base import ModelPageState
from cfgexplorer.spec import ModelSpec

log = logging.getLogger(__name__)

DEFAULT_MODEL = "Qwen/Qwen3-32B"
DEFAULT_GPU = "H100-SXM-80GB"
MAX_TP = 64  # largest TP size offered; vLLM allows TP across nodes
UPLOAD_PREFIX = "upload:"  # model references that name a config.json uploaded in this session
MIN_CURVE_LEN = 1024  # tokens; the concurrency curve starts here (or at the model maximum)
MAX_CONFIG_BYTES = 5 * 10**6  # bytes; a config.json larger than this is not one
BLOCK_SIZES = [16, 32, 64, 128]  # what vLLM's --block-size accepts for GPU attention backends


def catalog_ids() -> list[str]:
    """Model ids of the bundled catalog, sorted."""
    return [e.model_id for e in catalog.search("")]


def curve_lengths(model_max: int, current: int) -> list[int]:
    """max_model_len values for the concurrency curve: powers of two, the current and the max."""
    lengths = {model_max, current}
    length = MIN_CURVE_LEN
    while length < model_max:
        lengths.add(length)
        length *= 2
    return sorted(v for v in lengths if 0 < v <= model_max)


BUDGET_TERMS = ("weights", "activation", "non_torch", "kv_pool", "unused")
STAGE_TERMS = ("weights", "activation", "non_torch", "kv_pool")


def budget_segments(plan: memory.Plan | None) -> pd.DataFrame:
    """Stacked-bar segments of a plan's memory terms (see CapacityPlanner.budget_segments)."""
    columns = ["bar", "label", "term", "gib", "start", "end"]
    if plan is None:
        return pd.DataFrame(columns=columns)
    d = plan.to_dict()
    bars = [("per GPU", d["memory_gib"], BUDGET_TERMS)]
    if plan.deployment.pp > 1:
        for stage in d["stages"]:
            values = {t: stage[f"{t}_gib"] for t in STAGE_TERMS}
            bars.append((f"stage {stage['stage']}", values, STAGE_TERMS))
    rows = []
    for index, (label, values, terms) in enumerate(bars):
        start = 0.0
        for term in terms:
            gib = max(float(values[term]), 0.0)  # a negative KV pool draws as nothing
            rows.append([index, label, term, gib, start, start + gib])
            start += gib
    return pd.DataFrame(rows, columns=columns)


class CapacityPlanner(ModelPageState):
    """Per-GPU memory of one vLLM deployment, as vLLM accounts for it at start-up."""

    # --- inputs -------------------------------------------------------------------
    model = param.Selector(
        default=DEFAULT_MODEL,
        objects=[DEFAULT_MODEL],
        check_on_set=False,
        doc="Model: a bundled catalog id, a Hugging Face Hub id, or an uploaded config.json.",
    )
    gpu = param.Selector(
        default=DEFAULT_GPU,
        objects=[DEFAULT_GPU],
        check_on_set=False,
        doc="GPU type from the catalog (aliases such as 'H100' are accepted).",
    )
    tp = param.Selector(
        default=1,
        objects=list(range(1, MAX_TP + 1)),
        doc="Tensor-parallel size; only the sizes vLLM accepts for the model are offered.",
    )
    pp = param.Integer(default=1, bounds=(1, 64), doc="Pipeline-parallel stages.")
    dp = param.Integer(default=1, bounds=(1, 256), doc="Data-parallel replicas.")
    enable_expert_parallel = param.Boolean(
        default=False, doc="Split MoE experts across the TP x DP ranks (--enable-expert-parallel)."
    )
    max_model_len = param.Integer(
        default=40960,
        bounds=(1, 10_000_000),
        doc="Context length per request in tokens; bounded by the model's maximum.",
    )
    preferred_max_model_len = param.Integer(
        default=0,
        bounds=(0, 10_000_000),
        precedence=-1,
        doc="max_model_len while it follows the model: the smaller of this and the model's "
        "maximum; 0 = the model's maximum, as vLLM does.",
    )
    gpu_memory_utilization = param.Number(
        default=0.9,
        bounds=(0.05, 1.0),
        step=0.01,
        doc="Fraction of device memory vLLM may use (--gpu-memory-utilization).",
    )
    dtype = param.Selector(
        default="auto",
        objects=["auto", "bfloat16", "float16", "float32"],
        doc="Weight and activation dtype (--dtype); auto follows the checkpoint.",
    )
    quantization = param.Selector(
        default="none",
        objects=["none", "fp8"],
        doc="Quantize an unquantized checkpoint at load time (--quantization).",
    )
    kv_cache_dtype = param.Selector(
        default="auto",
        objects=list(memory.KV_DTYPES),
        doc="KV-cache dtype (--kv-cache-dtype); auto follows the model dtype.",
    )
    block_size = param.Selector(
        default=16, objects=BLOCK_SIZES, doc="Tokens per KV-cache block (--block-size)."
    )
    max_num_seqs = param.Integer(
        default=0,
        bounds=(0, 65536),
        doc="Largest batch in sequences (--max-num-seqs); 0 keeps the engine default.",
    )
    max_num_batched_tokens = param.Integer(
        default=0,
        bounds=(0, 2_097_152),
        doc="Tokens per scheduler step (--max-num-batched-tokens); 0 keeps the engine default.",
    )
    profile = param.Selector(
        default="vllm-0.19",
        objects=["vllm-0.19"],
        doc="Engine profile: the vLLM release whose defaults and constants are used.",
    )

    # --- derived outputs (set only by _load_model and _compute) ---------------------
    spec = param.ClassSelector(
        class_=ModelSpec,
        default=None,
        allow_None=True,
        constant=True,
        precedence=-1,
        doc="The resolved model architecture, or None when the model cannot be loaded.",
    )
    plan = param.ClassSelector(
        class_=memory.Plan,
        default=None,
        allow_None=True,
        constant=True,
        precedence=-1,
        doc="The capacity plan for the current inputs, or None (see message).",
    )
    curve = param.DataFrame(
        default=None,
        allow_None=True,
        constant=True,
        precedence=-1,
        doc="Max concurrency and KV tokens against max_model_len for the current deployment.",
    )
    smallest = param.ClassSelector(
        class_=memory.Plan,
        default=None,
        allow_None=True,
        constant=True,
        precedence=-1,
        doc="The smallest TP x PP on this GPU that serves one request of max_model_len.",
    )

    url_params: ClassVar[tuple[str, ...]] = (
        "model",
        "gpu",
        "profile",
        "enable_expert_parallel",  # before tp: it widens the TP choices a link may name
        "tp",
        "pp",
        "dp",
        "max_model_len",
        "gpu_memory_utilization",
        "dtype",
        "quantization",
        "kv_cache_dtype",
        "block_size",
        "max_num_seqs",
        "max_num_batched_tokens",
    )

    def __init__(self, **params: Any) -> None:
        self._uploads: dict[str, ModelSpec] = {}
        self._mml_follows_model = "max_model_len" not in params
        # The profile choices are only known once the profiles are read: set it after them.
        wanted_profile = params.pop("profile", None)
        super().__init__(**params)
        # Choices follow the catalogs at the time the object is made (one per session).
        self.param.model.objects = catalog_ids()
        self.param.gpu.objects = gpus.gpu_names()
        profiles = memory.engine_profiles()
        self.param.profile.objects = list(profiles)
        self.profile = wanted_profile or memory.get_profile().name
        if wanted_profile is not None:
            params["profile"] = wanted_profile
        if "gpu_memory_utilization" not in params:
            self.gpu_memory_utilization = float(
                memory.get_profile(self.profile).defaults["gpu_memory_utilization"]
            )
        self._normalise_gpu()
        self._load_model()
        self.param.watch(self._on_model, ["model", "hf_token"])
        self.param.watch(self._on_gpu, ["gpu"])
        self.param.watch(self._on_max_model_len, ["max_model_len"])
        # Before _on_inputs re-plans: the TP choices depend on expert parallelism.
        self.param.watch(self._on_expert_parallel, ["enable_expert_parallel"])
        self.param.watch(self._on_inputs, [n for n in self.url_params if n not in ("model",)])
        self._compute()

    # --- the scriptable API ----------------------------------------------------------
    def deployment(self) -> memory.Deployment:
        """The core Deployment for the current inputs (defaults left to the engine)."""
        prof = memory.get_profile(self.profile)
        return memory.Deployment(
            tp=int(self.tp),
            pp=self.pp,
            dp=self.dp,
            enable_expert_parallel=self.enable_expert_parallel,
            gpu_memory_utilization=self.gpu_memory_utilization,
            max_model_len=self.max_model_len,
            dtype=self.dtype,
            quantization=None if self.quantization == "none" else self.quantization,
            kv_cache_dtype=self.kv_cache_dtype,
            block_size=None
            if self.block_size == int(prof.defaults["block_size"])
            else int(self.block_size),
            max_num_seqs=self.max_num_seqs or None,
            max_num_batched_tokens=self.max_num_batched_tokens or None,
        )

    def use_uploaded_config(self, filename: str, data: bytes) -> bool:
        """Plan an uploaded config.json; returns False (and sets ``message``) if unreadable."""
        from cfgexplorer.sources import fill_defaults
        from cfgexplorer.spec import check_supported, spec_from_config

        label = (filename or "config.json").replace("\\", "/").rsplit("/", 1)[-1]
        try:
            if not data or not data.strip():
                raise UserError(f"{label} is empty; upload the model's config.json")
            if len(data) > MAX_CONFIG_BYTES:
                raise UserError(f"{label} is larger than a config.json can be; upload the config")
            try:
                config = json.loads(data.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise UserError(f"{label} is not a JSON file ({exc}); upload config.json") from None
            if not isinstance(config, dict):
                raise UserError(f"{label} holds no JSON object; upload a model's config.json")
            name = str(config.get("_name_or_path") or label)
            spec = spec_from_config(fill_defaults(config), model_id=name, source="upload")
            check_supported(spec)
        except UserError as exc:
            self.message = str(exc)
            return False
        except Exception as exc:  # a strange config must not break the page
            log.info("uploaded config rejected: %s", type(exc).__name__)
            self.message = f"{label} cannot be read as a model config ({type(exc).__name__})"
            return False
        key = UPLOAD_PREFIX + label
        self._uploads[key] = spec
        if self.model == key:
            self._load_model()
            self._compute()
        else:
            self.model = key
        return True

    def parse_query_value(self, name: str, text: str) -> Any:
        """Like the base class, but a GPU alias must resolve and uploads cannot be shared."""
        if name == "gpu":
            try:
                return gpus.get_gpu(text).name
            except UserError:
                raise ValueError("is not a GPU of the catalog") from None
        if name == "model" and text.startswith(UPLOAD_PREFIX):
            raise ValueError("names an uploaded config, which a link cannot carry; upload it again")
        return super().parse_query_value(name, text)

    def apply_query(self, query: Any) -> list[str]:
        """Set inputs from a link; a model that cannot be loaded falls back to the default."""
        added = super().apply_query(query)
        if self.spec is None and self.model != DEFAULT_MODEL:
            note = f"{self.message.rstrip('.')}; showing {DEFAULT_MODEL} instead"
            self.model = DEFAULT_MODEL
            self.add_note(note)
            added.append(note)
        return added

    def summary_table(self) -> pd.DataFrame:
        """The per-GPU budget as a table (GiB), for display and CSV download."""
        if self.plan is None:
            return pd.DataFrame(columns=["term", "gib"])
        mem = self.plan.to_dict()["memory_gib"]
        terms = ["device_total", "budget", "weights", "activation", "non_torch", "kv_pool"]
        rows = [{"term": t, "gib": mem[t]} for t in [*terms, "unused"]]
        return pd.DataFrame(rows)

    def budget_segments(self) -> pd.DataFrame:
        """The per-GPU budget as stacked segments: one row per term with start and end (GiB).

        Row ``bar`` 0 is the worst GPU of the plan; under PP, rows ``bar`` 1..pp are
        the stages (without the unused share, which is the same on every GPU).
        """
        return budget_segments(self.plan)

    def budget_marks(self) -> dict[str, float]:
        """Where the device total and the budget (utilization x total) fall on the bar (GiB)."""
        if self.plan is None:
            return {}
        mem = self.plan.to_dict()["memory_gib"]
        return {"device_total": float(mem["device_total"]), "budget": float(mem["budget"])}

    def plan_json(self) -> str:
        """The plan as the CLI prints it (JSON), or an object with the message."""
        if self.plan is None:
            return json.dumps({"error": self.message}, indent=2)
        return json.dumps(self.plan.to_dict(), indent=2, default=str)

    def formulas(self) -> list[str]:
        """The 'how this is computed' lines for the current plan."""
        return memory.describe_formulas(self.plan) if self.plan is not None else []

    # --- derivation --------------------------------------------------------------------
    def _on_model(self, *_events: Any) -> None:
        self._load_model()
        self._compute()

    def _on_gpu(self, *_events: Any) -> None:
        self._normalise_gpu()

    def _on_max_model_len(self, *_events: Any) -> None:
        if self.spec is not None:
            followed = self._followed_length(self.spec.max_position_embeddings)
            self._mml_follows_model = self.max_model_len == followed

    def _followed_length(self, model_max: int) -> int:
        """The max_model_len to use while it follows the model."""
        preferred = self.preferred_max_model_len
        return min(preferred, model_max) if preferred else model_max

    def _on_inputs(self, *_events: Any) -> None:
        if not getattr(self, "_loading", False):
            self._compute()

    def _normalise_gpu(self) -> None:
        """Accept aliases ('H100') by replacing them with the catalog name."""
        names = gpus.gpu_names()
        if self.gpu in names:
            return
        try:
            name = gpus.get_gpu(str(self.gpu)).name
        except UserError as exc:
            name = None
            self.message = str(exc)
        # A Selector that does not check its value adds it to the choices; undo that.
        self.param.gpu.objects = names
        if name is not None:
            self.gpu = name

    def _resolve_spec(self) -> ModelSpec:
        ref = str(self.model)
        if ref.startswith(UPLOAD_PREFIX):
            if ref not in self._uploads:
                raise UserError(
                    f"{ref[len(UPLOAD_PREFIX) :]} was uploaded in another session; upload it again"
                )
            return self._uploads[ref]
        return self.load_reference(ref)

    def bound_reason(self, name: str, side: str) -> str:
        """The model's maximum is why max_model_len stops where it does."""
        if name == "max_model_len" and side == "high" and self.spec is not None:
            return f" ({self.spec.model_id}'s maximum)"
        return ""

    def _on_expert_parallel(self, *_events: Any) -> None:
        """Expert parallelism changes which TP sizes the experts allow: offer those."""
        if self.spec is None:
            return
        valid, fallback, reason = self._tp_choices(self.spec)
        self._loading = True
        try:
            self.param.tp.objects = valid
            if fallback is not None:
                self.add_note(
                    f"tp={self.tp} does not work without expert parallel ({reason}); "
                    f"using {fallback}"
                )
                self.tp = fallback
        finally:
            self._loading = False

    def _tp_choices(self, spec: ModelSpec) -> tuple[list[int], int | None, str | None]:
        """The TP sizes the model allows with the current expert-parallel switch, and, when
        the current tp is not one of them, the nearest smaller size to use and why."""
        ep = bool(self.enable_expert_parallel)
        valid = memory.valid_tp_sizes(spec, MAX_TP, ep)["valid"] or [1]
        tp = int(self.tp)
        if tp in valid:
            return valid, None, None
        fallback = max((t for t in valid if t <= tp), default=valid[0])
        return valid, fallback, memory.tp_rejection(spec, tp, ep)

    def _load_model(self) -> None:
        """Resolve the model, then make the TP choices and length bound follow it."""
        try:
            spec = self._resolve_spec()
        except UserError as exc:
            with param.edit_constant(self):
                self.param.update(spec=None, plan=None, curve=None, smallest=None)
            self.message = str(exc)
            return
        except Exception as exc:  # the Hub client may fail in unforeseen ways
            log.warning("loading model failed: %s", type(exc).__name__)
            with param.edit_constant(self):
                self.param.update(spec=None, plan=None, curve=None, smallest=None)
            self.message = f"{self.model} could not be loaded ({type(exc).__name__})"
            return
        log.info("model %s resolved from %s", spec.model_id, spec.source)

        valid, fallback, reason = self._tp_choices(spec)
        updates: dict[str, Any] = {}
        if fallback is not None:
            self.add_note(
                f"tp={self.tp} does not work for {spec.model_id} ({reason}); using {fallback}"
            )
            updates["tp"] = fallback
        model_max = spec.max_position_embeddings
        if self._mml_follows_model:
            updates["max_model_len"] = self._followed_length(model_max)
        elif self.max_model_len > model_max:
            self.add_note(
                f"max_model_len {self.max_model_len} exceeds {spec.model_id}'s maximum; "
                f"using {model_max}"
            )
            updates["max_model_len"] = model_max

        self._loading = True
        try:
            self.param.tp.objects = valid
            self.param.max_model_len.bounds = (1, model_max)
            if updates:
                self.param.update(updates)
            with param.edit_constant(self):
                self.spec = spec
        finally:
            self._loading = False
        self._mml_follows_model = self.max_model_len == self._followed_length(model_max)

    def _compute(self) -> None:
        """Derive plan, curve and smallest deployment from the inputs, or set message."""
        spec = self.spec
        if spec is None:
            return
        try:
            gpu = gpus.get_gpu(str(self.gpu))
            dep = self.deployment()
            plan = memory.plan(spec, gpu, dep, self.profile)
            lengths = curve_lengths(spec.max_position_embeddings, dep.max_model_len)
            points = memory.concurrency_curve(spec, gpu, dep, lengths, self.profile)
            curve = pd.DataFrame(points, columns=["max_model_len", "max_concurrency", "kv_tokens"])
            base = replace(dep, tp=1, pp=1, dp=1, enable_expert_parallel=False)
            smallest = memory.smallest_parallelism(
                spec, gpu, dep.max_model_len, 1, base=base, profile=self.profile
            )
        except UserError as exc:
            with param.edit_constant(self):
                self.param.update(plan=None, curve=None, smallest=None)
            self.message = str(exc)
            return
        with param.edit_constant(self):
            self.param.update(plan=plan, curve=curve, smallest=smallest)
        self.message = ""
