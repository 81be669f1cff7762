"""Turn a model reference into a ModelSpec: local folder, bundled catalog, or the Hub.

Order: an existing local path (a directory or a ``config.json``), then the
bundled catalog (case-insensitive ids and aliases), then the Hugging Face Hub
through :mod:`cfgexplorer.hub`. Configs from a folder or the Hub are filled
with the defaults of the installed transformers when it knows the
``model_type``, and read as plain JSON otherwise; remote code never runs.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import re
import struct
from pathlib import Path
from typing import Any

from cfgexplorer import catalog
from cfgexplorer.errors import ModelConfigError, UnknownModelError
from cfgexplorer.spec import ModelSpec, check_supported, spec_from_config

log = logging.getLogger(__name__)

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]{0,95}/[\w.\-]{1,96}$")
# Safetensors element sizes in bytes, by the dtype names the headers use.
SAFETENSORS_DTYPE_BYTES = {
    "F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2,
    "I16": 2, "U16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "I8": 1, "U8": 1,
    "BOOL": 1, "F4": 0.5,
}  # fmt: skip
_MAX_HEADER_BYTES = 100 * 2**20  # a safetensors header larger than this is not one


def load_model(ref: str, token: str | None = None, revision: str | None = None) -> ModelSpec:
    """Resolve ``ref`` to a :class:`ModelSpec`.

    Parameters
    ----------
    ref
        A local directory or config.json path, a catalog id, or a Hub repo id.
    token
        Hugging Face token for gated repositories (else ``HF_TOKEN``).
    revision
        Hub revision (branch, tag or commit); catalog and local ignore it.

    Raises
    ------
    UnknownModelError, GatedModelError, ModelConfigError
        With one sentence naming the problem and the fix.
    """
    if ref is not None and not isinstance(ref, str | bytes) and not hasattr(ref, "__fspath__"):
        raise UnknownModelError(
            f"a model reference must be a string (catalog id, Hub id or path), got "
            f"{type(ref).__name__}"
        )
    text = str(ref or "").strip()
    if not text:
        raise UnknownModelError("no model given; pass a catalog id, a Hub id or a config.json path")
    if len(text) > MAX_MODEL_REF_CHARS:
        raise UnknownModelError(
            f"a model reference of {len(text):,} characters is neither a path nor a model id "
            f"(at most {MAX_MODEL_REF_CHARS}); pass a catalog id, a Hub id or a config.json path"
        )
    path = Path(text).expanduser()
    try:
        exists = path.exists()
    except OSError:  # a name the file system cannot hold (too long, bad bytes)
        exists = False
    if exists:
        return load_local(path)
    if _looks_like_path(text):
        raise UnknownModelError(
            f"{text} does not exist; pass an existing directory or config.json path, "
            "or a model id such as Qwen/Qwen3-32B"
        )
    entry = catalog.find(text)
    if entry is not None:
        return catalog.catalog_spec(entry.model_id)
    if not _REPO_ID.match(text):
        raise UnknownModelError(
            f"{text!r} is neither a catalog model nor a Hub id of the form org/name; "
            "run 'cfgexplorer models' to list the bundled ones"
        )
    return load_hub(text, token=token, revision=revision)


MAX_MODEL_REF_CHARS = 4096  # characters; PATH_MAX on Linux, far above any Hub id (96 + 96)


def load_shared_model(ref: str, token: str | None = None) -> ModelSpec:
    """Like :func:`load_model` for a shared server: catalog and Hub ids only, never a path.

    A dashboard takes model references from links anyone can craft; reading the server's
    own files for them would be wrong, so local configs come in by upload instead.
    """
    refused = local_reference_error(ref)
    if refused is not None:
        raise refused
    return load_model(str(ref or "").strip(), token=token)


def local_reference_error(ref: str) -> UnknownModelError | None:
    """The error for a reference that names a path on this machine, else None."""
    text = str(ref or "").strip()
    if text and (_looks_like_path(text) or Path(text).expanduser().exists()):
        return UnknownModelError(
            f"{text[:80]!r} looks like a path on the server, which the dashboard does not "
            "read; use a catalog or Hub id, or upload the config.json"
        )
    return None


def _looks_like_path(text: str) -> bool:
    return (
        text.startswith((".", "/", "~"))
        or text.endswith(".json")
        or "\\" in text
        or text.count("/") > 1
    )


def load_hub(repo_id: str, token: str | None = None, revision: str | None = None) -> ModelSpec:
    """A Hub model's spec (config, ModelOpt config and safetensors counts)."""
    from cfgexplorer.hub import fetch_hub_files

    files = fetch_hub_files(repo_id, token=token, revision=revision)
    require_shape_keys(files.config, files.repo_id)
    config = fill_defaults(files.config, files.repo_id)
    spec = spec_from_config(
        config,
        model_id=files.repo_id,
        source="hub",
        revision=files.revision,
        hf_quant_config=files.hf_quant_config,
        safetensors_params=files.safetensors_params,
    )
    check_supported(spec)
    return spec


def load_local(path: Path) -> ModelSpec:
    """A spec from a local folder (config.json beside its weights) or a config.json file."""
    folder = path if path.is_dir() else path.parent
    config_path = path / "config.json" if path.is_dir() else path
    if not config_path.is_file():
        raise ModelConfigError(
            f"{folder} has no config.json; point at the model folder or its config.json"
        )
    config = read_json(config_path)
    quant_path = folder / "hf_quant_config.json"
    hf_quant = read_json(quant_path) if quant_path.is_file() and path.is_dir() else None
    if hf_quant is None and (folder / "hf_quant_config.json").is_file():
        hf_quant = read_json(folder / "hf_quant_config.json")
    counts = local_safetensors_params(folder)
    # A config saved under another name (Qwen--Qwen3-8B.json) is named by its file.
    fallback = folder.resolve().name if config_path.name == "config.json" else config_path.stem
    name = config.get("_name_or_path") or fallback
    require_shape_keys(config, str(config_path))
    spec = spec_from_config(
        fill_defaults(config, str(config_path)),
        model_id=str(name) if name else str(folder),
        source="local",
        revision=None,
        hf_quant_config=hf_quant,
        safetensors_params=counts,
    )
    spec = dataclasses.replace(spec, local_path=str(folder.resolve()))
    if counts is None and any(folder.glob("*.safetensors")):
        note = (
            f"the safetensors headers in {folder} could not be read; parameter counts come "
            "from the config"
        )
        spec = dataclasses.replace(spec, notes=(*spec.notes, note))
    check_supported(spec)
    return spec


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object, with a one-sentence error for truncated or malformed files."""
    try:
        text = path.read_text(encoding="utf-8")
        if not text.strip():
            raise ModelConfigError(f"{path} is empty; download the model's config.json again")
        data = json.loads(text)
    except UnicodeDecodeError as exc:
        raise ModelConfigError(f"{path} is not UTF-8 text; pass the model's config.json") from exc
    except json.JSONDecodeError as exc:
        raise ModelConfigError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}; truncated?); "
            "download the file again"
        ) from exc
    except OSError as exc:
        raise ModelConfigError(f"{path} cannot be read ({exc.strerror}); check the path") from exc
    if not isinstance(data, dict):
        raise ModelConfigError(f"{path} holds a JSON {type(data).__name__}, not an object")
    return data


def local_safetensors_params(folder: Path) -> dict[str, int] | None:
    """Parameter count per dtype from the safetensors headers in ``folder``, if any."""
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    counts: dict[str, int] = {}
    for file in files:
        try:
            header = _read_safetensors_header(file)
        except (OSError, ValueError) as exc:
            log.info("skipping unreadable safetensors header in %s: %s", file.name, exc)
            return None
        for name, info in header.items():
            if name == "__metadata__" or not isinstance(info, dict):
                continue
            n = 1
            for dim in info.get("shape", []):
                n *= int(dim)
            dtype = str(info.get("dtype"))
            counts[dtype] = counts.get(dtype, 0) + n
    return counts or None


def _read_safetensors_header(file: Path) -> dict[str, Any]:
    with file.open("rb") as fh:
        raw = fh.read(8)
        if len(raw) < 8:
            raise ValueError("file shorter than a safetensors header")
        (length,) = struct.unpack("<Q", raw)
        if length <= 0 or length > _MAX_HEADER_BYTES:
            raise ValueError(f"implausible header length {length}")
        return json.loads(fh.read(length))


# A config must state these itself (or give the layers as a list or pattern): defaults
# for them would describe some other model. Other fields may come from transformers'
# defaults for the model_type, as real configs rely on (Gemma 3 omits its head counts).
_SHAPE_KEYS = {
    "hidden_size": ("hidden_size", "n_embd", "d_model"),
    "num_hidden_layers": (
        "num_hidden_layers", "n_layer", "num_layers", "n_layers", "layer_types",
        "layers_block_type", "hybrid_override_pattern", "block_configs",
    ),
}  # fmt: skip


def require_shape_keys(config: dict[str, Any], where: str) -> None:
    """Name every shape field the config lacks before defaults could fill them in."""
    from cfgexplorer.spec import text_config_of

    if not isinstance(config, dict):
        raise ModelConfigError(f"{where} is not a JSON object; pass the model's config.json")
    text = text_config_of(config)
    missing = [
        label
        for label, names in _SHAPE_KEYS.items()
        if not any(text.get(n) is not None for n in names)
    ]
    # A size written as null is a broken config, not a request for transformers' default.
    nulls = [k for k in ("vocab_size", "num_attention_heads") if k in text and text[k] is None]
    if nulls:
        raise ModelConfigError(
            f"{where} sets {' and '.join(nulls)} to null; pass the model's complete config.json"
        )
    if missing:
        raise ModelConfigError(
            f"{where} lacks {' and '.join(missing)}; pass the model's complete config.json"
        )


def fill_defaults(config: dict[str, Any], where: str | None = None) -> dict[str, Any]:
    """Complete a config with transformers' defaults for its ``model_type``, when known.

    Every key of the original config is kept; transformers only adds what is
    missing (a trimmed Gemma 3 config gains its head counts and layer types).
    A ``model_type`` transformers does not know is returned unchanged.
    """
    from cfgexplorer.spec import check_sizes, text_config_of

    model_type = config.get("model_type")
    if not model_type:
        return config
    if not isinstance(model_type, str):
        raise ModelConfigError(
            f"the config of {config.get('_name_or_path') or 'this model'} has model_type "
            f'{model_type!r}, which is not a name; set it to the model\'s type, e.g. "llama"'
        )
    # Before transformers sees them: it builds per-layer lists, and 10**12 layers never end.
    check_sizes(text_config_of(config), where or str(config.get("_name_or_path") or "this model"))
    # Without torch, transformers prints an advisory on import; it is not ours to show.
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    try:
        from transformers import CONFIG_MAPPING
    except ImportError:  # pragma: no cover - transformers is a dependency
        return config
    if model_type not in CONFIG_MAPPING:
        log.info(
            "model_type %s unknown to transformers; reading the config as plain JSON", model_type
        )
        out = dict(config)
        out["_cfgexplorer_unknown_type"] = True
        return out
    try:
        filled = CONFIG_MAPPING[model_type].from_dict(copy.deepcopy(config)).to_dict()
    except Exception as exc:  # an unusual config keeps its own keys
        log.info(
            "transformers could not read the %s config (%s); using plain JSON", model_type, exc
        )
        return config
    merged = dict(filled)
    for key, value in config.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            inner = dict(merged[key])
            inner.update(value)
            merged[key] = inner
        else:
            merged[key] = value
    for key in ("_commit_hash", "id2label", "label2id", "transformers_version"):
        merged.pop(key, None)
    _keep_top_level_tie(config, merged)
    return merged


def _keep_top_level_tie(original: dict[str, Any], merged: dict[str, Any]) -> None:
    """A top-level tie_word_embeddings governs a nested text config that did not set its own."""
    if "tie_word_embeddings" not in original:
        return
    for key in ("text_config", "llm_config", "language_config"):
        nested_original = original.get(key)
        nested = merged.get(key)
        if (
            isinstance(nested, dict)
            and isinstance(nested_original, dict)
            and "tie_word_embeddings" not in nested_original
        ):
            nested["tie_word_embeddings"] = original["tie_word_embeddings"]
