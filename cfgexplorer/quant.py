"""Quantization schemes: how many bytes each stored weight takes.

A :class:`QuantScheme` is read from a checkpoint's ``quantization_config``
(config.json) or ModelOpt's ``hf_quant_config.json``. It answers two
questions for the weight model: is this module quantized, and how many bytes
does one of its weights take, scales included.

Bytes per stored weight (see reference QUANTIZED.md): FP8/INT8 one byte;
INT4 half a byte plus one 16-bit scale (and, asymmetric, a packed zero point)
per group; NVFP4 half a byte plus one FP8 scale per 16 values; MXFP4 half a
byte plus one E8M0 scale per 32 values; block FP8 one FP32 scale per
128 x 128 block; per-channel scales one value per output row.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from cfgexplorer.errors import ModelConfigError

# Module kinds the weight model distinguishes; the ignore list is matched
# against representative module names of each kind.
LINEAR_KINDS = ("attn", "mlp", "experts", "shared_experts", "linear_attn", "mamba")
ALL_KINDS = (*LINEAR_KINDS, "router", "embed", "lm_head", "norm", "vision", "other")

# Bytes of one scale value by the scale's dtype.
SCALE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "e8m0": 1}


@dataclass(frozen=True)
class QuantScheme:
    """How a checkpoint stores its linear weights.

    Attributes
    ----------
    method
        Short name (``none``, ``fp8``, ``compressed-tensors``, ``gptq``,
        ``awq``, ``bitsandbytes``, ``mxfp4``, ``modelopt-fp8``, ``nvfp4``, or the
        unknown method's own name).
    weight_bits
        Bits per quantized weight as stored (8, 4); 0 when nothing is quantized.
    group_size
        Weights sharing one scale along the input dimension; None for
        per-channel or per-tensor scales.
    block
        Block shape of block-wise scales (FP8 128 x 128), else None.
    scale_bytes
        Bytes of one scale value.
    zero_point
        Whether an asymmetric scheme stores a packed zero point per group.
    quantized_kinds
        Module kinds the scheme targets before the ignore list applies.
    ignore
        Raw ignore / modules_to_not_convert / exclude_modules entries.
    kv_cache_dtype
        KV-cache dtype the checkpoint declares (``fp8``), if any.
    description
        One line for people.
    known
        False when the method is unknown: weights are then sized at the
        checkpoint dtype and a note says so.
    """

    method: str = "none"
    weight_bits: float = 0.0
    group_size: int | None = None
    block: tuple[int, int] | None = None
    scale_bytes: int = 0
    zero_point: bool = False
    quantized_kinds: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    kv_cache_dtype: str | None = None
    description: str = "unquantized"
    known: bool = True
    expert_width_alignment: int = 1  # kernels pad the per-rank expert width to this multiple
    producer: str = ""  # the tool that wrote the quantization config ("modelopt"), if known
    _ignore_re: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @property
    def is_quantized(self) -> bool:
        return self.weight_bits > 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "weight_bits": self.weight_bits,
            "group_size": self.group_size,
            "block": list(self.block) if self.block else None,
            "quantized_modules": list(self.quantized_kinds),
            "ignore_count": len(self.ignore),
            "kv_cache_dtype": self.kv_cache_dtype,
            "description": self.description,
            "known": self.known,
        }

    def ignores(self, module_names: tuple[str, ...]) -> bool:
        """True if any representative module name is on the ignore list."""
        if self._ignore_re is None:
            return False
        return any(self._ignore_re.match(name) for name in module_names)

    def bytes_per_weight(self, rows: int, cols: int) -> float:
        """Average bytes per weight of a quantized ``rows x cols`` matrix, scales included.

        ``rows`` is the output dimension, ``cols`` the input dimension.
        """
        bits = self.weight_bits / 8.0
        if self.block is not None:
            blocks = -(-rows // self.block[0]) * -(-cols // self.block[1])
            return bits + blocks * self.scale_bytes / (rows * cols)
        if self.group_size:
            per_group = self.scale_bytes + (self.weight_bits / 8.0 if self.zero_point else 0.0)
            return bits + per_group / self.group_size
        # Per-channel (one scale per output row) or per-tensor.
        return bits + self.scale_bytes / max(cols, 1)

    def stored_elements_per_weight(self) -> float:
        """Safetensors elements per logical weight, scales included.

        The Hub counts elements, not weights: int4 packed into int32 counts
        one per 8 weights, FP4 packed into uint8 one per 2, and every scale
        (and packed zero point) is an element of its own.
        """
        if not self.is_quantized:
            return 1.0
        packed = 1.0
        if self.weight_bits == 4:
            packed = 1.0 / 8.0 if self.method in ("gptq", "awq", "compressed-tensors") else 0.5
        if self.block is not None:
            return packed + 1.0 / (self.block[0] * self.block[1])
        if self.group_size:
            zeros = 1.0 / (8 * self.group_size) if self.zero_point else 0.0
            return packed + 1.0 / self.group_size + zeros
        return packed


def _glob_body(pattern: str) -> str:
    """The regex body of a shell glob (fnmatch's translation without its anchors)."""
    translated = fnmatch.translate(pattern)
    return (
        translated[len("(?s:") : -len(")\\z")]
        if translated.endswith(")\\z")
        else (translated[len("(?s:") : -len(")\\Z")])
    )


@cache
def _compile_ignore(entries: tuple[str, ...]) -> re.Pattern[str] | None:
    """One regex for all ignore entries: ``re:`` regexes, globs, names and prefixes."""
    parts = []
    for entry in entries:
        if entry.startswith("re:"):
            parts.append(f"(?:{entry[3:]})")
        elif any(ch in entry for ch in "*?["):
            # A glob names modules; what sits under a matched module matches too.
            parts.append(f"(?:{_glob_body(entry)}(?:\\..*)?)")
        else:
            parts.append(f"(?:{re.escape(entry)}(?:\\..*)?)")
    if not parts:
        return None
    return re.compile("^(?:" + "|".join(parts) + ")$")


def _scheme(**kwargs: Any) -> QuantScheme:
    ignore = tuple(kwargs.get("ignore", ()))
    kwargs["ignore"] = ignore
    return QuantScheme(**kwargs, _ignore_re=_compile_ignore(ignore))


def parse_quantization(
    quant_config: dict[str, Any] | None,
    hf_quant_config: dict[str, Any] | None = None,
) -> QuantScheme:
    """Read a checkpoint's quantization description into a :class:`QuantScheme`.

    Parameters
    ----------
    quant_config
        ``quantization_config`` from config.json (top level or text_config).
    hf_quant_config
        ModelOpt's ``hf_quant_config.json`` when the repo ships one.
    """
    if hf_quant_config:
        if not isinstance(hf_quant_config, dict):
            raise ModelConfigError("hf_quant_config.json holds no JSON object; fix or remove it")
        block = hf_quant_config.get("quantization", hf_quant_config)
        return _from_modelopt(block if isinstance(block, dict) else {})
    if not quant_config:
        return QuantScheme()
    if not isinstance(quant_config, dict):
        raise ModelConfigError(
            f"quantization_config is {quant_config!r}, not an object with a quant_method; "
            "fix config.json"
        )
    method = str(quant_config.get("quant_method") or "").lower()
    if not method and quant_config.get("quant_algo"):
        return _from_modelopt(quant_config)
    if method == "fp8":
        return _from_fp8(quant_config)
    if method == "compressed-tensors":
        return _from_compressed_tensors(quant_config)
    if method in ("gptq", "gptq_marlin", "awq", "awq_marlin"):
        return _from_int4_grouped(quant_config, "awq" if method.startswith("awq") else "gptq")
    if method == "bitsandbytes":
        return _from_bitsandbytes(quant_config)
    if method == "mxfp4":
        return _scheme(
            method="mxfp4",
            weight_bits=4,
            group_size=32,
            scale_bytes=SCALE_BYTES["e8m0"],
            quantized_kinds=("experts",),
            ignore=quant_config.get("modules_to_not_convert") or (),
            description="MXFP4 experts (4-bit, one E8M0 scale per 32); everything else bf16",
            # vLLM's MXFP4 MoE kernels pad the expert width to a multiple of 256
            # (gpt-oss-20b loads 13.47 GiB: 2880 padded to 3072 reproduces it).
            expert_width_alignment=256,
        )
    if method in ("modelopt", "modelopt_fp4", "nvfp4"):
        return _from_modelopt(quant_config)
    return QuantScheme(
        method=method or "unknown",
        description=f"unknown quantization method {method!r}: weights sized at checkpoint dtype",
        known=False,
    )


def _from_fp8(cfg: dict[str, Any]) -> QuantScheme:
    block = cfg.get("weight_block_size")
    ignore = cfg.get("modules_to_not_convert") or cfg.get("ignored_layers") or ()
    if block:
        return _scheme(
            method="fp8-block",
            weight_bits=8,
            block=(int(block[0]), int(block[1])),
            scale_bytes=SCALE_BYTES["fp32"],
            quantized_kinds=LINEAR_KINDS,
            ignore=ignore,
            description=f"FP8 e4m3 weights with one FP32 scale per {block[0]}x{block[1]} block",
        )
    return _scheme(
        method="fp8",
        weight_bits=8,
        scale_bytes=SCALE_BYTES["fp32"],
        quantized_kinds=LINEAR_KINDS,
        ignore=ignore,
        description="FP8 e4m3 weights, per-tensor scale",
    )


def _targets_kinds(targets: list[str]) -> tuple[str, ...]:
    """Which module kinds a compressed-tensors group's targets cover."""
    if not targets or any(t in ("Linear", "re:.*Linear.*") for t in targets):
        return LINEAR_KINDS
    joined = " ".join(targets)
    if "expert" in joined and "shared" not in joined:
        return ("experts",)
    return LINEAR_KINDS


INT8_W8A8 = "INT8 W8A8"  # the description tag of int8 weights with int8 activations


def _from_compressed_tensors(cfg: dict[str, Any]) -> QuantScheme:
    groups = cfg.get("config_groups") or {}
    kv = cfg.get("kv_cache_scheme")
    kv_dtype = _kv_from_scheme(kv)
    ignore = tuple(cfg.get("ignore") or ())
    fmt = str(cfg.get("format") or "")
    if not groups:
        return _scheme(method="compressed-tensors", ignore=ignore, kv_cache_dtype=kv_dtype)
    # The widest group decides; mixed-precision recipes are rare enough to note only.
    group = next(iter(groups.values()))
    if not isinstance(group, dict) or not isinstance(group.get("weights"), dict):
        raise ModelConfigError(
            "compressed-tensors quantization_config has a config group without its weights "
            "scheme (num_bits, type, strategy); fix config.json"
        )
    weights = group["weights"]
    bits = int(weights.get("num_bits") or 16)
    strategy = str(weights.get("strategy") or "tensor")
    wtype = str(weights.get("type") or "int")
    group_size = weights.get("group_size")
    block = weights.get("block_structure")
    kinds = _targets_kinds(list(group.get("targets") or []))
    if bits >= 16:
        return _scheme(method="compressed-tensors", ignore=ignore, kv_cache_dtype=kv_dtype)
    if bits == 4 and wtype == "float":
        return _scheme(
            method="nvfp4",
            weight_bits=4,
            group_size=int(group_size or 16),
            scale_bytes=SCALE_BYTES["fp8"],
            quantized_kinds=kinds,
            ignore=ignore,
            kv_cache_dtype=kv_dtype,
            description="NVFP4 weights (compressed-tensors): 4-bit, one FP8 scale per 16",
        )
    name = {8: "FP8" if wtype == "float" else "INT8", 4: "INT4"}.get(bits, f"{bits}-bit")
    acts = group.get("input_activations") or {}
    if name == "INT8" and isinstance(acts, dict) and acts.get("num_bits") == 8:
        name = INT8_W8A8  # int8 activations too: runs on Turing (cc 7.5) in vLLM
    if strategy == "group" and group_size:
        return _scheme(
            method="compressed-tensors",
            weight_bits=bits,
            group_size=int(group_size),
            scale_bytes=SCALE_BYTES["bf16"],
            zero_point=not weights.get("symmetric", True),
            quantized_kinds=kinds,
            ignore=ignore,
            kv_cache_dtype=kv_dtype,
            description=f"compressed-tensors {name} weights, group size {group_size} ({fmt})",
        )
    if strategy == "block" and block:
        return _scheme(
            method="compressed-tensors",
            weight_bits=bits,
            block=(int(block[0]), int(block[1])),
            scale_bytes=SCALE_BYTES["fp32"],
            quantized_kinds=kinds,
            ignore=ignore,
            kv_cache_dtype=kv_dtype,
            description=f"compressed-tensors {name} weights, {block[0]}x{block[1]} blocks",
        )
    return _scheme(
        method="compressed-tensors",
        weight_bits=bits,
        scale_bytes=SCALE_BYTES["bf16"] if strategy == "channel" else 0,
        quantized_kinds=kinds,
        ignore=ignore,
        kv_cache_dtype=kv_dtype,
        description=f"compressed-tensors {name} weights, per-{strategy} scales ({fmt})",
    )


def _kv_from_scheme(kv: Any) -> str | None:
    if not kv:
        return None
    if isinstance(kv, str):
        return "fp8" if "8" in kv else kv.lower()
    if isinstance(kv, dict):
        bits = kv.get("num_bits")
        return "fp8" if bits == 8 else None
    return None


def _from_int4_grouped(cfg: dict[str, Any], method: str) -> QuantScheme:
    bits = cfg.get("bits", cfg.get("w_bit", 4))
    if bits not in (2, 3, 4, 8):
        raise ModelConfigError(
            f"{method} quantization_config has bits={bits!r}; {method} checkpoints use 2, 3, "
            "4 or 8 bits, so fix config.json"
        )
    group = int(cfg.get("group_size") or cfg.get("q_group_size") or 128)
    if group <= 0:  # GPTQ group_size -1 means per channel
        group = 0
    zero = bool(cfg.get("zero_point", not cfg.get("sym", True)))
    ignore = cfg.get("modules_to_not_convert") or ()
    return _scheme(
        method=method,
        weight_bits=bits,
        group_size=group or None,
        scale_bytes=SCALE_BYTES["fp16"],
        zero_point=zero,
        quantized_kinds=LINEAR_KINDS,
        ignore=ignore,
        description=f"{method.upper()} {bits}-bit weights, group size {group or 'per-channel'}"
        + (", asymmetric" if zero else ""),
    )


def _from_bitsandbytes(cfg: dict[str, Any]) -> QuantScheme:
    four = bool(cfg.get("load_in_4bit") or cfg.get("_load_in_4bit"))
    ignore = cfg.get("llm_int8_skip_modules") or ()
    if four:
        # NF4 with one FP32 absmax per 64 weights (double quantization shrinks it further).
        return _scheme(
            method="bitsandbytes",
            weight_bits=4,
            group_size=64,
            scale_bytes=SCALE_BYTES["fp32"],
            quantized_kinds=LINEAR_KINDS,
            ignore=ignore,
            description="bitsandbytes 4-bit (NF4/FP4), one absmax per 64",
        )
    return _scheme(
        method="bitsandbytes",
        weight_bits=8,
        scale_bytes=SCALE_BYTES["fp32"],
        quantized_kinds=LINEAR_KINDS,
        ignore=ignore,
        description="bitsandbytes LLM.int8 weights",
    )


def _from_modelopt(cfg: dict[str, Any]) -> QuantScheme:
    algo = str(cfg.get("quant_algo") or "").upper()
    kv_algo = cfg.get("kv_cache_quant_algo") or cfg.get("kv_cache_scheme")
    kv = "fp8" if kv_algo and "8" in str(kv_algo) else None
    ignore = tuple(cfg.get("exclude_modules") or cfg.get("ignore") or ())
    if "FP4" in algo:
        return _scheme(
            method="nvfp4",
            weight_bits=4,
            group_size=int(cfg.get("group_size") or 16),
            scale_bytes=SCALE_BYTES["fp8"],
            quantized_kinds=LINEAR_KINDS,
            ignore=ignore,
            kv_cache_dtype=kv,
            producer="modelopt",
            description="ModelOpt NVFP4: 4-bit weights, one FP8 scale per 16 values",
        )
    if "W4A16" in algo or "INT4" in algo:
        return _scheme(
            method="modelopt-int4",
            weight_bits=4,
            group_size=int(cfg.get("group_size") or 128),
            scale_bytes=SCALE_BYTES["fp16"],
            quantized_kinds=LINEAR_KINDS,
            ignore=ignore,
            kv_cache_dtype=kv,
            producer="modelopt",
            description="ModelOpt INT4 AWQ weights",
        )
    if "FP8" in algo:
        return _scheme(
            method="modelopt-fp8",
            weight_bits=8,
            scale_bytes=SCALE_BYTES["fp32"],
            quantized_kinds=LINEAR_KINDS,
            ignore=ignore,
            kv_cache_dtype=kv,
            producer="modelopt",
            description="ModelOpt FP8 weights, per-tensor scales",
        )
    return QuantScheme(
        method=f"modelopt:{algo.lower() or 'unknown'}",
        description=f"unknown ModelOpt algorithm {algo!r}: weights sized at checkpoint dtype",
        kv_cache_dtype=kv,
        known=False,
        producer="modelopt",
    )


def runtime_fp8(base: QuantScheme) -> QuantScheme:
    """The scheme vLLM applies for ``--quantization fp8`` on an unquantized checkpoint.

    Every linear layer except the LM head becomes FP8 with a per-tensor scale;
    embeddings and norms stay in the model dtype.
    """
    if base.is_quantized:
        return base
    return _scheme(
        method="fp8",
        weight_bits=8,
        scale_bytes=SCALE_BYTES["fp32"],
        quantized_kinds=LINEAR_KINDS,
        ignore=("lm_head",),
        description="--quantization fp8: linear layers cast to FP8 at load time",
    )
