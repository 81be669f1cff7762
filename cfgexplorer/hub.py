"""Model files from the Hugging Face Hub: config.json, quantization config, parameter counts.

:func:`fetch_hub_files` reads what the planner needs about one Hub repository and keeps the
answer on disk (``cache_dir()/hub/``), so that the second lookup of the same model works with
``HF_HUB_OFFLINE=1`` or without a network. ``huggingface_hub`` is imported inside the functions
so that catalog lookups never pay for it; it honours ``HF_ENDPOINT``, ``HF_TOKEN``, ``HF_HOME``
and ``HF_HUB_OFFLINE``. Remote code is never run: only JSON files and safetensors headers are
read.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cfgexplorer import paths
from cfgexplorer.errors import (
    GatedModelError,
    HubUnavailableError,
    ModelConfigError,
    UnknownModelError,
    UserError,
)

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
QUANT_CONFIG_FILE = "hf_quant_config.json"  # NVIDIA ModelOpt checkpoints
SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX_FILE = "model.safetensors.index.json"

# Model-info fields asked for; the Hub returns the repo id with any selection.
_INFO_FIELDS = ["sha", "gated", "siblings", "safetensors"]
_CACHE_FORMAT = 1  # bump when the cached JSON changes shape
_OFFLINE_FIX = "pass a local config.json, or set HF_TOKEN and go online"
_TRUE_VALUES = {"1", "on", "yes", "true"}
# A whole lookup (info, config, quant config, headers) may take this many per-request timeouts.
OVERALL_DEADLINE_FACTOR = 3


@dataclass(frozen=True)
class HubFiles:
    """What the Hub says about one model repository at one commit.

    Attributes
    ----------
    repo_id
        The id as the Hub spells it (the Hub matches ids case-insensitively).
    revision
        The commit sha the files were read at.
    config
        ``config.json``.
    hf_quant_config
        ``hf_quant_config.json`` when the repo has one (NVIDIA ModelOpt), else None.
    safetensors_params
        Parameter count per safetensors dtype, e.g. ``{"BF16": 8030261248}``; None when the
        repo has no safetensors weights (the planner then counts from the config).
    gated
        False, or the Hub's gating mode ("auto" or "manual").
    fetched_at
        When the Hub was read, ISO 8601 in UTC.
    endpoint
        The Hub the files came from.
    from_cache
        True when this answer came from the disk cache, not from the Hub.
    notes
        Caveats a user should see next to results built on these files.
    """

    repo_id: str
    revision: str
    config: dict[str, Any]
    hf_quant_config: dict[str, Any] | None
    safetensors_params: dict[str, int] | None
    gated: bool | str
    fetched_at: str
    endpoint: str = ""
    from_cache: bool = False
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-able dict (the form kept in the disk cache)."""
        data = asdict(self)
        data["notes"] = list(self.notes)
        del data["from_cache"]
        return {"format": _CACHE_FORMAT, **data}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HubFiles:
        """Rebuild from :meth:`to_json` output; raises KeyError/TypeError on a foreign shape."""
        if data.get("format") != _CACHE_FORMAT:
            raise TypeError(f"cache format {data.get('format')!r} is not {_CACHE_FORMAT}")
        return cls(
            repo_id=data["repo_id"],
            revision=data["revision"],
            config=dict(data["config"]),
            hf_quant_config=data["hf_quant_config"],
            safetensors_params=data["safetensors_params"],
            gated=data["gated"],
            fetched_at=data["fetched_at"],
            endpoint=data.get("endpoint", ""),
            notes=tuple(data.get("notes", ())),
        )


@dataclass(frozen=True)
class _HubSettings:
    """The Hub settings in force for one call, read from the environment at call time."""

    endpoint: str
    offline: bool
    files_cache: Path  # where huggingface_hub keeps downloaded files


class _Unreachable(Exception):
    """The Hub could not be asked; the disk cache may still answer."""

    def __init__(self, error: UserError) -> None:
        super().__init__(str(error))
        self.error = error


def fetch_hub_files(
    repo_id: str,
    token: str | None = None,
    revision: str | None = None,
    timeout_s: float = 10.0,
) -> HubFiles:
    """Read config.json, hf_quant_config.json and safetensors parameter counts from the Hub.

    Parameters
    ----------
    repo_id
        ``owner/name`` in any letter case.
    token
        A Hub access token; None uses ``HF_TOKEN`` or the token saved by ``hf auth login``.
    revision
        A branch, tag or commit sha; None means the default branch.
    timeout_s
        Seconds to wait for each answer of the Hub.

    Returns
    -------
    HubFiles
        Fresh from the Hub, or from the disk cache when the Hub is offline (``HF_HUB_OFFLINE``),
        unreachable or too slow.

    Raises
    ------
    GatedModelError
        The repo is gated or private and the token (if any) has no access.
    UnknownModelError
        No such repo or revision on the Hub; :class:`HubUnavailableError` (a subclass) when the
        Hub cannot be asked and nothing is cached.
    ModelConfigError
        The repo has no config.json, or a JSON file in it is malformed or truncated.
    """
    settings = _settings()
    cache_file = _cache_file(repo_id, revision)

    if settings.offline:
        cached = _read_cache(cache_file)
        if cached is not None:
            log.info("Hub offline; using the cached files of %s", cached.repo_id)
            return cached
        raise HubUnavailableError(
            f"{repo_id} is not in the bundled catalog and the Hub cannot be reached "
            f"(HF_HUB_OFFLINE is set); {_OFFLINE_FIX}."
        )

    try:
        files = _within_deadline(
            lambda: _fetch(repo_id, token, revision, timeout_s, settings),
            OVERALL_DEADLINE_FACTOR * timeout_s,
            f"the Hub at {settings.endpoint} did not finish answering for {repo_id} within "
            f"{OVERALL_DEADLINE_FACTOR * timeout_s:g} s, and it is not cached; try again, raise "
            "the timeout, or pass a local config.json.",
        )
    except _Unreachable as exc:
        cached = _read_cache(cache_file)
        if cached is None:
            raise exc.error from None
        log.warning("%s; using the files of %s cached at %s", exc, repo_id, cached.fetched_at)
        return cached

    _write_cache(files, {cache_file, _cache_file(repo_id, files.revision)})
    return files


def _within_deadline(fetch: Callable[[], HubFiles], seconds: float, message: str) -> HubFiles:
    """Run ``fetch`` but give up after ``seconds`` in all.

    huggingface_hub bounds each request, not a whole lookup (a timed-out file check is
    retried with its own 60 s timeout), so the lookup runs in a daemon thread that is left
    behind when the deadline passes.
    """
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["files"] = fetch()
        except BaseException as exc:  # handed to the caller's thread below
            outcome["error"] = exc

    worker = threading.Thread(target=target, name="hub-fetch", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise _Unreachable(HubUnavailableError(message))
    if "error" in outcome:
        raise outcome["error"]
    return outcome["files"]


def _settings() -> _HubSettings:
    """Read the Hub settings now, not at import: tests and servers change them at run time."""
    from huggingface_hub import constants

    endpoint = os.environ.get("HF_ENDPOINT") or constants.ENDPOINT
    offline_var = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
    offline = (offline_var or "").strip().lower() in _TRUE_VALUES or constants.HF_HUB_OFFLINE

    if os.environ.get("HF_HUB_CACHE"):
        files_cache = Path(os.environ["HF_HUB_CACHE"])
    elif os.environ.get("HF_HOME"):
        files_cache = Path(os.environ["HF_HOME"]) / "hub"
    else:
        files_cache = Path(constants.HF_HUB_CACHE)
    return _HubSettings(endpoint.rstrip("/"), offline, files_cache.expanduser())


def _fetch(
    repo_id: str,
    token: str | None,
    revision: str | None,
    timeout_s: float,
    settings: _HubSettings,
) -> HubFiles:
    """Ask the Hub; turn its exceptions into ours (``_Unreachable`` when the cache may help)."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=settings.endpoint, token=token)
    where = f"{repo_id}@{revision}" if revision else repo_id
    try:
        info = api.model_info(repo_id, revision=revision, timeout=timeout_s, expand=_INFO_FIELDS)
        canonical = info.id
        sha = info.sha or revision or "main"
        names = {s.rfilename for s in info.siblings} if info.siblings is not None else None
        notes: list[str] = []

        config = _read_json_file(api, canonical, sha, CONFIG_FILE, names, timeout_s, settings)
        if config is None:
            raise ModelConfigError(
                f"{canonical} on the Hub has no config.json, so it is not a transformers model "
                "the planner can read; pass a local config.json for it instead."
            )
        quant = None
        if names is None or QUANT_CONFIG_FILE in names:
            quant = _read_json_file(
                api, canonical, sha, QUANT_CONFIG_FILE, names, timeout_s, settings
            )

        params = _safetensors_params(api, info, canonical, sha, names, timeout_s, settings, notes)
    except UserError:
        raise
    except Exception as exc:
        raise _translate(exc, where, revision, token, timeout_s, settings) from exc

    log.info("Fetched %s at %s from %s", canonical, sha[:12], settings.endpoint)
    return HubFiles(
        repo_id=canonical,
        revision=sha,
        config=config,
        hf_quant_config=quant,
        safetensors_params=params,
        gated=info.gated or False,
        fetched_at=datetime.now(UTC).isoformat(timespec="seconds"),
        endpoint=settings.endpoint,
        notes=tuple(notes),
    )


def _read_json_file(
    api: Any,
    repo_id: str,
    sha: str,
    filename: str,
    names: set[str] | None,
    timeout_s: float,
    settings: _HubSettings,
) -> dict[str, Any] | None:
    """Download one JSON file through the huggingface_hub file cache; None if the repo lacks it."""
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    if names is not None and filename not in names:
        return None
    # Not bounded by timeout_s: after a timed-out HEAD, hf_hub_download retries with its own
    # 60 s timeout, and the GET uses HF_HUB_DOWNLOAD_TIMEOUT (10 s unless set).
    try:
        local = api.hf_hub_download(
            repo_id,
            filename,
            revision=sha,
            cache_dir=settings.files_cache,
            etag_timeout=timeout_s,
        )
    except LocalEntryNotFoundError:
        raise  # not a missing file: the Hub could not be reached
    except EntryNotFoundError:
        return None
    return _parse_json(Path(local), repo_id, filename)


def _parse_json(path: Path, repo_id: str, filename: str) -> dict[str, Any]:
    """Parse a downloaded JSON object, with one clear sentence when it is not one."""
    fix = "the file on the Hub is damaged; report it to the repo owner or pass a local config.json"
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise ModelConfigError(f"{filename} of {repo_id} is not UTF-8 text; {fix}.") from None
    except json.JSONDecodeError as exc:
        raise ModelConfigError(
            f"{filename} of {repo_id} is not valid JSON (line {exc.lineno}, column {exc.colno}: "
            f"{exc.msg}; truncated?); {fix}."
        ) from None
    if not isinstance(data, dict):
        raise ModelConfigError(
            f"{filename} of {repo_id} holds a JSON {type(data).__name__}, not an object; {fix}."
        )
    return data


def _safetensors_params(
    api: Any,
    info: Any,
    repo_id: str,
    sha: str,
    names: set[str] | None,
    timeout_s: float,
    settings: _HubSettings,
    notes: list[str],
) -> dict[str, int] | None:
    """Parameters per dtype: from the model info if the Hub computed them, else from headers."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        SafetensorsParsingError,
    )

    if info.safetensors is not None and info.safetensors.parameters:
        return {dtype: int(n) for dtype, n in info.safetensors.parameters.items()}

    try:
        if names is None or SAFETENSORS_FILE in names:
            try:
                header = api.parse_safetensors_file_metadata(
                    repo_id, SAFETENSORS_FILE, revision=sha, timeout=timeout_s
                )
                return dict(header.parameter_count)
            except LocalEntryNotFoundError:
                raise
            except EntryNotFoundError:
                if names is not None:
                    raise

        index = None
        if names is None or SAFETENSORS_INDEX_FILE in names:
            index = _read_json_file(
                api, repo_id, sha, SAFETENSORS_INDEX_FILE, names, timeout_s, settings
            )
        if index is None:
            notes.append(
                f"{repo_id} has no safetensors weights on the Hub; parameter counts are "
                "computed from the config."
            )
            return None
        return _sharded_params(api, repo_id, sha, index, timeout_s)
    except (SafetensorsParsingError, ModelConfigError, ValueError, KeyError) as exc:
        notes.append(
            f"the safetensors headers of {repo_id} could not be read ({exc}); parameter counts "
            "are computed from the config."
        )
        log.info("Safetensors headers of %s unreadable: %s", repo_id, exc)
        return None


def _sharded_params(
    api: Any, repo_id: str, sha: str, index: dict[str, Any], timeout_s: float
) -> dict[str, int]:
    """Sum the parameter counts of every shard named in a safetensors index."""
    shards = sorted(set(index["weight_map"].values()))
    totals: dict[str, int] = {}
    for shard in shards:
        header = api.parse_safetensors_file_metadata(
            repo_id, shard, revision=sha, timeout=timeout_s
        )
        for dtype, count in header.parameter_count.items():
            totals[dtype] = totals.get(dtype, 0) + int(count)
    return totals


def _translate(
    exc: Exception,
    where: str,
    revision: str | None,
    token: str | None,
    timeout_s: float,
    settings: _HubSettings,
) -> Exception:
    """Turn a huggingface_hub or transport exception into a one-sentence user error."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    hub = settings.endpoint
    status = exc.response.status_code if isinstance(exc, HfHubHTTPError) else None

    if isinstance(exc, HFValidationError):
        return UnknownModelError(
            f"{where!r} is not a valid Hub model id; write it as owner/name, e.g. Qwen/Qwen3-8B."
        )
    if isinstance(exc, GatedRepoError) or status in (401, 403):
        if token or _implicit_token():
            return GatedModelError(
                f"{where} is gated or private and the token given has no access to it; accept "
                "its licence on the Hub with that account, or pass another token "
                "(--hf-token or HF_TOKEN)."
            )
        return GatedModelError(
            f"{where} is gated; accept its licence on the Hub and pass a token "
            "(--hf-token or HF_TOKEN)."
        )
    if isinstance(exc, RevisionNotFoundError):
        return UnknownModelError(
            f"revision {revision!r} of {where.split('@')[0]} is not on the Hub at {hub}; "
            "pass an existing branch, tag or commit."
        )
    if isinstance(exc, RepositoryNotFoundError):
        return UnknownModelError(
            f"{where} is not a model on the Hub at {hub}; check the spelling of the id, or pass "
            "a token (--hf-token or HF_TOKEN) if it is private."
        )
    if _is_timeout(exc):
        return _Unreachable(
            HubUnavailableError(
                f"the Hub at {hub} did not answer within {timeout_s:g} s for {where}, and it is "
                "not cached; try again, raise the timeout, or pass a local config.json."
            )
        )
    if isinstance(exc, LocalEntryNotFoundError) or _is_network_error(exc):
        return _Unreachable(
            HubUnavailableError(
                f"{where} is not in the bundled catalog and the Hub cannot be reached "
                f"({hub}); {_OFFLINE_FIX}."
            )
        )
    if status is not None and (status >= 500 or status in (408, 429)):
        return _Unreachable(
            HubUnavailableError(
                f"the Hub at {hub} answered HTTP {status} for {where}, and it is not cached; "
                "try again later, or pass a local config.json."
            )
        )
    return exc  # anything else is a bug, ours or the Hub's: keep the original


def _implicit_token() -> bool:
    """Whether huggingface_hub will send a token of its own (HF_TOKEN or a saved login)."""
    from huggingface_hub import get_token

    try:
        return get_token() is not None
    except Exception:  # a broken token store is not what this error is about
        return False


def _is_timeout(exc: BaseException) -> bool:
    """True if a timeout is anywhere in the chain of causes.

    Judged by class names so that it holds whichever HTTP client huggingface_hub uses
    (requests, httpx, httpx2).
    """
    return any(
        isinstance(e, TimeoutError) or any("Timeout" in c.__name__ for c in type(e).__mro__)
        for e in _chain(exc)
    )


def _is_network_error(exc: BaseException) -> bool:
    """True if a refused, reset or otherwise failed connection is in the chain of causes."""
    names = {"ConnectError", "ConnectionError", "NetworkError", "ProxyError", "TransportError"}
    return any(
        isinstance(e, ConnectionError) or any(c.__name__ in names for c in type(e).__mro__)
        for e in _chain(exc)
    )


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception, its causes and contexts, each once."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not e for e in seen):
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


# ---------------------------------------------------------------------------------------------
# The disk cache: one JSON file per (lower-cased repo id, revision).


def _cache_file(repo_id: str, revision: str | None) -> Path:
    """Where the answer for this repo and revision is kept."""
    safe_repo = re.sub(r"[^a-z0-9._-]", "_", repo_id.lower().replace("/", "--"))
    safe_rev = re.sub(r"[^A-Za-z0-9._-]", "_", revision or "main")
    return paths.cache_dir() / "hub" / f"{safe_repo}@{safe_rev}.json"


def _read_cache(path: Path) -> HubFiles | None:
    """The cached answer, or None if there is none or it cannot be read."""
    try:
        files = HubFiles.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("Ignoring unreadable Hub cache file %s: %s", path.name, exc)
        return None
    note = f"read from the local cache of the Hub answer of {files.fetched_at}"
    return HubFiles(**{**asdict(files), "from_cache": True, "notes": (*files.notes, note)})


def _write_cache(files: HubFiles, targets: set[Path]) -> None:
    """Keep the answer under each key; a cache that cannot be written only costs a refetch."""
    text = json.dumps(files.to_json(), indent=1, sort_keys=True)
    for path in targets:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(path)  # atomic: a concurrent reader sees the old file or the new one
        except OSError as exc:
            log.warning("Could not write the Hub cache file %s: %s", path.name, exc)
