"""Find result files, detect their format from content, import them into one table.

A batch never aborts: every file that cannot be used is listed with one reason
(malformed YAML/JSON, unknown format, schema violation, missing metrics, too
large, binary, duplicate). Parsed results are cached as Parquet, keyed on each
file's path, size and mtime (and those of the side files it depends on), so
reloading an unchanged tree costs a walk and one Parquet read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from cfgexplorer.benchmarks import guidellm, inference_perf, llmd_report, vllm_bench
from cfgexplorer.benchmarks.columns import BY_NAME, COLUMN_NAMES
from cfgexplorer.benchmarks.common import (
    Row,
    add_note,
    finalize_row,
    is_gpu_name,
    is_known,
    normalise_gpu,
)
from cfgexplorer.errors import ReportFileError

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 50 * 10**6  # bytes; files above 50 MB are skipped (issue 5)
BINARY_SNIFF_BYTES = 8192  # bytes read to spot a NUL byte, as git and grep do
CANDIDATE_SUFFIXES = frozenset({".json", ".yaml", ".yml"})  # what a directory walk tries
CONTEXT_FILE_NAME = "cfgexplorer-context.yaml"  # per-directory facts the results lack
IMPORTER_VERSION = "2"  # bump when an importer changes; old cache files are then ignored

# Side files read as inputs to other files, never imported themselves.
_AUXILIARY_NAMES = frozenset({CONTEXT_FILE_NAME, inference_perf.CONFIG_FILE_NAME})

# Columns a context file or a directory name may fill (deployment and workload only).
_CONTEXT_COLUMNS = frozenset(
    name for name, col in BY_NAME.items() if col.group in ("config", "workload")
)

ProgressCallback = Callable[[int, int], None]


@dataclass
class LoadResult:
    """What a load produced: the table, the files used, and the files skipped with reasons."""

    table: pd.DataFrame
    skipped: list[tuple[str, str]] = field(default_factory=list)
    loaded: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """JSON-able counts and reasons (no table)."""
        return {
            "rows": len(self.table),
            "files_loaded": len(self.loaded),
            "files_skipped": len(self.skipped),
            "loaded": list(self.loaded),
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
        }


# ----------------------------------------------------------------------------- table


def empty_table() -> pd.DataFrame:
    """A table with every column and no rows."""
    return coerce_table(pd.DataFrame(columns=list(COLUMN_NAMES)))


def coerce_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Give every known column its dtype: float64, object strings, or nullable boolean."""
    out = frame.reindex(columns=[*COLUMN_NAMES, *[c for c in frame if c not in BY_NAME]])
    for name in COLUMN_NAMES:
        kind = BY_NAME[name].kind
        if kind == "float":
            out[name] = pd.to_numeric(out[name], errors="coerce").astype("float64")
        elif kind == "bool":
            out[name] = out[name].astype("boolean")
        else:
            values = out[name].astype(object)
            out[name] = values.where(values.notna(), None)
    return out


def rows_to_table(rows: Iterable[Row]) -> pd.DataFrame:
    """Rows (dicts) to a typed table with every column."""
    records = list(rows)
    if not records:
        return empty_table()
    return coerce_table(pd.DataFrame.from_records(records, columns=list(COLUMN_NAMES)))


# ----------------------------------------------------------------------------- parsing


def _looks_binary(data: bytes) -> bool:
    if b"\x00" in data[:BINARY_SNIFF_BYTES]:
        return True
    try:
        data[:BINARY_SNIFF_BYTES].decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the sniff boundary is not binary.
        return exc.start < BINARY_SNIFF_BYTES - 4
    return False


_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_document(name: str, data: bytes) -> Any:
    """Parse JSON or YAML text; raise :class:`ReportFileError` with the reason otherwise."""
    if len(data) > MAX_FILE_BYTES:
        raise ReportFileError(
            f"file is {len(data) / 1e6:.0f} MB, over the {MAX_FILE_BYTES / 1e6:.0f} MB limit"
        )
    if _looks_binary(data):
        raise ReportFileError("binary file, not a JSON or YAML result")
    text = data.decode("utf-8", errors="replace")
    if not text.strip():
        raise ReportFileError("empty file")
    if text.lstrip().startswith(("{", "[")):
        try:
            return json.loads(text)  # Python's json accepts Infinity/NaN (FORMATS.md P7)
        except json.JSONDecodeError as exc:
            json_error = f"malformed JSON: line {exc.lineno}: {exc.msg}"
    else:
        json_error = None
    try:
        return yaml.load(text, Loader=_YAML_LOADER)
    except yaml.YAMLError as exc:
        if json_error:
            raise ReportFileError(json_error) from None
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ReportFileError(f"malformed YAML: {where}{problem}") from None


def detect_format(doc: Any) -> str | None:
    """Name of the format of a parsed document, from its content alone."""
    if llmd_report.report_version(doc):
        return llmd_report.FORMAT
    if inference_perf.looks_like(doc):
        return inference_perf.FORMAT
    if guidellm.looks_like(doc):
        return guidellm.FORMAT
    if vllm_bench.looks_like(doc):
        return vllm_bench.FORMAT
    return None


def import_document(
    doc: Any, file_name: str, config: Mapping[str, Any] | None = None
) -> tuple[str, list[Row]]:
    """Detect the format and import; returns (format, rows) or raises ReportFileError."""
    fmt = detect_format(doc)
    if fmt == llmd_report.FORMAT:
        rows = llmd_report.import_report(doc, llmd_report.report_version(doc) or "")
    elif fmt == inference_perf.FORMAT:
        rows = inference_perf.import_inference_perf(doc, file_name, config)
    elif fmt == guidellm.FORMAT:
        rows = guidellm.import_guidellm(doc)
    elif fmt == vllm_bench.FORMAT:
        rows = vllm_bench.import_vllm(doc)
    else:
        if isinstance(doc, Mapping) and "version" in doc:
            raise ReportFileError(llmd_report.not_a_report_reason(doc))
        raise ReportFileError(
            "unknown format: not an llm-d report, vLLM bench, GuideLLM or inference-perf result"
        )
    for row in rows:
        row["Format"] = fmt
    return fmt, rows


def _import_bytes(name: str, data: bytes, config: Mapping[str, Any] | None) -> list[Row]:
    """Parse and import, turning unexpected failures into a skip reason too."""
    try:
        doc = parse_document(name, data)
        return import_document(doc, name, config)[1]
    except ReportFileError:
        raise
    except RecursionError:
        raise ReportFileError("document nested too deeply") from None
    except Exception as exc:  # a batch never aborts on one odd file
        log.debug("import of %s failed", name, exc_info=True)
        raise ReportFileError(f"could not import: {type(exc).__name__}: {exc}") from None


def load_bytes(name: str, data: bytes) -> LoadResult:
    """Import one uploaded file (no side files, no cache). ``name`` is only a label."""
    label = Path(name).name or "upload"
    try:
        rows = _import_bytes(label, data, None)
    except ReportFileError as exc:
        log.info("skipped upload %s: %s", label, exc)
        return LoadResult(empty_table(), [(label, str(exc))], [])
    for row in rows:
        row["File"] = label
    return LoadResult(rows_to_table(rows), [], [label])


# ----------------------------------------------------------------------------- context


_PD_DIR = re.compile(r"(?:^|[-_])(\d+)p(\d+)d$", re.IGNORECASE)
_REPLICAS_DIR = re.compile(r"(?:^|[-_])(\d+)[-_]?replicas?$", re.IGNORECASE)
_GPUS_DIR = re.compile(r"^(\d+)x([A-Za-z][\w.-]*)$")
_TP_STEM = re.compile(r"(?:^|[-_])tp(\d+)(?:[-_]|$)", re.IGNORECASE)


def path_hints(path: Path) -> Row:
    """Deployment facts encoded in directory and file names by common sweep layouts.

    llm-d exp-7: ``<GPU>/<llm-d-XpYd | vllm-Nreplicas>/``; LambdaLabs:
    ``<N>x<GPU>/<model>_tp<TP>_len<L>.json`` (FORMATS.md 9.1 "What is missing").
    """
    hints: Row = {}
    for part in reversed(path.parent.parts[-3:]):
        if m := _PD_DIR.search(part):
            hints.setdefault("P_Replicas", float(m.group(1)))
            hints.setdefault("D_Replicas", float(m.group(2)))
            hints.setdefault("Is_PD", True)
        elif m := _REPLICAS_DIR.search(part):
            hints.setdefault("Replicas", float(m.group(1)))
            hints.setdefault("Is_PD", False)
        elif m := _GPUS_DIR.match(part):
            hints.setdefault("Num_GPUs", float(m.group(1)))
            hints.setdefault("GPU_Raw", m.group(2))
        elif is_gpu_name(part):
            hints.setdefault("GPU_Raw", part)
    if m := _TP_STEM.search(path.stem):
        hints["TP"] = float(m.group(1))
    if "GPU_Raw" in hints:
        hints["GPU"] = normalise_gpu(hints["GPU_Raw"])
    return hints


def read_context_file(path: Path) -> Row:
    """A ``cfgexplorer-context.yaml``: column -> value for deployment and workload columns."""
    try:
        doc = yaml.load(path.read_text(), Loader=_YAML_LOADER)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ReportFileError(f"context file unreadable: {type(exc).__name__}") from None
    if doc is None:
        return {}
    if not isinstance(doc, Mapping):
        raise ReportFileError("context file must be a mapping of column name to value")
    unknown = sorted(str(k) for k in doc if k not in _CONTEXT_COLUMNS)
    if unknown:
        raise ReportFileError(
            f"context file names columns it may not set: {', '.join(unknown)} "
            "(only deployment and workload columns)"
        )
    context: Row = {}
    for key, value in doc.items():
        kind = BY_NAME[key].kind
        if kind == "float":
            context[key] = float(value) if value is not None else math.nan
        elif kind == "bool":
            context[key] = bool(value)
        else:
            context[key] = str(value)
    if "GPU_Raw" in context and "GPU" not in context:
        context["GPU"] = normalise_gpu(context["GPU_Raw"])
    return context


def _apply_facts(row: Row, facts: Row, source: str) -> None:
    filled = [k for k, v in facts.items() if is_known(v) and not is_known(row.get(k))]
    for key in filled:
        row[key] = facts[key]
    if filled:
        add_note(row, f"from {source}: {', '.join(sorted(filled))}")


# ----------------------------------------------------------------------------- walking


@dataclass
class _Candidate:
    path: Path
    root: Path  # the argument it was found under (context files are read up to it)


def _walk(
    paths: Iterable[str | os.PathLike[str]], follow_symlinks: bool
) -> tuple[list[_Candidate], list[tuple[str, str]]]:
    found: list[_Candidate] = []
    skipped: list[tuple[str, str]] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists() and not path.is_symlink():
            raise ReportFileError(f"{raw}: no such file or directory; check the path")
        if path.is_file():
            found.append(_Candidate(path, path.parent))
            continue
        seen: set[str] = set()
        for dirpath, dirnames, filenames in os.walk(path, followlinks=follow_symlinks):
            here = Path(dirpath)
            real = os.path.realpath(here)
            if real in seen:  # a symlink loop when following links
                dirnames[:] = []
                continue
            seen.add(real)
            dirnames.sort()
            if not follow_symlinks:
                for name in [d for d in dirnames if (here / d).is_symlink()]:
                    skipped.append((str(here / name), "symbolic link not followed"))
            for name in sorted(filenames):
                file = here / name
                if Path(name).suffix.lower() not in CANDIDATE_SUFFIXES:
                    continue
                if name in _AUXILIARY_NAMES:
                    continue
                if file.is_symlink() and not follow_symlinks:
                    skipped.append((str(file), "symbolic link not followed"))
                    continue
                found.append(_Candidate(file, path))
    # Overlapping arguments (a directory and a file inside it) must not count a run twice.
    unique: dict[str, _Candidate] = {}
    for candidate in found:
        unique.setdefault(os.path.realpath(candidate.path), candidate)
    return list(unique.values()), skipped


def _stat_key(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return "-"
    return f"{st.st_size}:{st.st_mtime_ns}"


class _Context:
    """Side files per directory (inference-perf config.yaml, context files), read once."""

    def __init__(self) -> None:
        self._configs: dict[Path, Mapping[str, Any] | None] = {}
        self._contexts: dict[Path, Row] = {}
        self.errors: dict[Path, str] = {}

    def dependency_key(self, candidate: _Candidate) -> str:
        parts = [_stat_key(candidate.path.parent / inference_perf.CONFIG_FILE_NAME)]
        parts += [_stat_key(d / CONTEXT_FILE_NAME) for d in self._context_dirs(candidate)]
        return "|".join(parts)

    def _context_dirs(self, candidate: _Candidate) -> list[Path]:
        directory, dirs = candidate.path.parent, []
        while True:
            dirs.append(directory)
            if directory == candidate.root or directory.parent == directory:
                break
            if candidate.root not in directory.parents:
                break
            directory = directory.parent
        return dirs[::-1]  # outermost first, so deeper files override

    def config(self, directory: Path) -> Mapping[str, Any] | None:
        if directory not in self._configs:
            file = directory / inference_perf.CONFIG_FILE_NAME
            parsed = None
            if file.is_file():
                try:
                    parsed = yaml.load(file.read_text(), Loader=_YAML_LOADER)
                except (OSError, UnicodeDecodeError, yaml.YAMLError):
                    parsed = None
            self._configs[directory] = parsed if isinstance(parsed, Mapping) else None
        return self._configs[directory]

    def facts(self, candidate: _Candidate) -> Row:
        merged: Row = {}
        for directory in self._context_dirs(candidate):
            if directory not in self._contexts:
                file = directory / CONTEXT_FILE_NAME
                try:
                    self._contexts[directory] = read_context_file(file) if file.is_file() else {}
                except ReportFileError as exc:
                    self.errors[file] = str(exc)
                    self._contexts[directory] = {}
            merged.update(self._contexts[directory])
        return merged


def _import_file(candidate: _Candidate, context: _Context) -> list[Row]:
    path = candidate.path
    try:
        size = path.stat().st_size
    except OSError as exc:
        if path.is_symlink():
            raise ReportFileError("broken symbolic link: its target does not exist") from None
        raise ReportFileError(f"cannot read: {exc.strerror or exc}") from None
    if size > MAX_FILE_BYTES:
        raise ReportFileError(
            f"file is {size / 1e6:.0f} MB, over the {MAX_FILE_BYTES / 1e6:.0f} MB limit"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ReportFileError(f"cannot read: {exc.strerror or exc}") from None
    rows = _import_bytes(path.name, data, context.config(path.parent))
    facts = context.facts(candidate)
    hints = path_hints(path)
    directory = path.parent
    base = re.sub(r"_\d+$", "", directory.name)
    for row in rows:
        row["File"] = str(path)
        row["Directory"] = str(directory)
        row["Directory_Base"] = base
        if facts:
            _apply_facts(row, facts, CONTEXT_FILE_NAME)
        if hints:
            _apply_facts(row, hints, "directory names")
        if facts or hints:
            finalize_row(row)
    return rows


# ----------------------------------------------------------------------------- dedup

_REPORT_NAME = re.compile(
    r"^benchmark_report(?:_v(?P<version>[\d.]+))?,_(?P<native>.+?)\.(?:ya?ml|json)$"
)


def _version_key(text: Any) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in str(text).split("."))
    except ValueError:
        return (0,)


def _drop_duplicate_reports(table: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """v0.1 and v0.2 reports of one native file: keep the newest version (FORMATS.md P8)."""
    if table.empty:
        return table, []
    names = table["File"].map(lambda f: Path(str(f)).name)
    native = names.str.extract(_REPORT_NAME)["native"]
    mask = native.notna() & (table["Format"] == llmd_report.FORMAT)
    if not mask.any():
        return table, []
    keyed = pd.DataFrame(
        {
            "dir": table.loc[mask, "Directory"],
            "native": native[mask],
            "version": table.loc[mask, "Report_Version"].map(_version_key),
            "file": table.loc[mask, "File"],
        }
    )
    drop: list[Any] = []
    skipped: list[tuple[str, str]] = []
    for _, group in keyed.groupby(["dir", "native"], sort=False):
        if group["file"].nunique() < 2:
            continue
        best = group.sort_values("version", kind="stable").iloc[-1]
        for index, item in group.iterrows():
            if item["file"] != best["file"]:
                drop.append(index)
                skipped.append(
                    (str(item["file"]), f"duplicate of {Path(best['file']).name} (newer version)")
                )
    return table.drop(index=drop), list(dict.fromkeys(skipped))


# ----------------------------------------------------------------------------- cache

_KEY_COLUMNS = ("_src", "_sig", "_skip")


def _cache_path(roots: list[str], follow_symlinks: bool) -> Path:
    from cfgexplorer.paths import cache_dir

    digest = hashlib.sha1(
        json.dumps([sorted(roots), follow_symlinks]).encode(), usedforsecurity=False
    ).hexdigest()[:16]
    return cache_dir() / "sweeps" / f"sweep-v{IMPORTER_VERSION}-{digest}.parquet"


def _read_cache(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # a corrupt cache is rebuilt, never fatal
        log.info("ignoring unreadable sweep cache %s: %s", path.name, exc)
        return None
    if not set(_KEY_COLUMNS) <= set(frame.columns):
        return None
    return frame


def _write_cache(path: Path, frame: pd.DataFrame) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except Exception as exc:  # caching is an optimisation only
        log.info("could not write sweep cache %s: %s", path.name, exc)


# ----------------------------------------------------------------------------- entry point


def load_paths(
    paths: Iterable[str | os.PathLike[str]],
    follow_symlinks: bool = False,
    use_cache: bool = True,
    progress: ProgressCallback | None = None,
) -> LoadResult:
    """Load every result file under ``paths`` (files or directories, walked recursively).

    Parameters
    ----------
    paths
        Files (always tried, whatever their name) and directories (walked; only
        ``.json``/``.yaml``/``.yml`` files are tried).
    follow_symlinks
        Follow symbolic links to files and directories; off by default.
    use_cache
        Reuse results of unchanged files from the Parquet cache in
        :func:`cfgexplorer.paths.cache_dir` and update it.
    progress
        Called as ``progress(done, total)`` after each file.

    Returns
    -------
    LoadResult
        The table (one row per run, stage or benchmark), the files used, and the
        files skipped with one reason each. A missing path raises
        :class:`~cfgexplorer.errors.ReportFileError`.
    """
    roots = [str(Path(p).expanduser().resolve()) for p in paths]
    candidates, skipped = _walk(paths, follow_symlinks)
    context = _Context()

    cache_file = _cache_path(roots, follow_symlinks) if use_cache else None
    cached = _read_cache(cache_file) if cache_file else None
    cached_index: dict[str, Any] = {}
    if cached is not None and not cached.empty:
        cached_index = cached.groupby("_src", sort=False).indices

    hit_positions: list[Any] = []
    new_rows: list[Row] = []
    results: dict[str, str | None] = {}  # source -> skip reason (None = loaded)
    misses = 0
    total = len(candidates)
    for done, candidate in enumerate(candidates, start=1):
        source = str(candidate.path)
        signature = f"{_stat_key(candidate.path)}|{context.dependency_key(candidate)}"
        hit = cached_index.get(source)
        if hit is not None and cached is not None and cached["_sig"].iat[hit[0]] == signature:
            reason = cached["_skip"].iat[hit[0]]
            results[source] = reason if isinstance(reason, str) and reason else None
            hit_positions.append(hit)
        else:
            misses += 1
            try:
                rows = _import_file(candidate, context)
            except ReportFileError as exc:
                rows, reason = [], str(exc)
                log.info("skipped %s: %s", source, reason)
                new_rows.append({"_src": source, "_sig": signature, "_skip": reason})
                results[source] = reason
            for row in rows:
                row.update({"_src": source, "_sig": signature, "_skip": ""})
            new_rows.extend(rows)
            if rows:
                results[source] = None
        if progress is not None:
            progress(done, total)

    parts: list[pd.DataFrame] = []
    if hit_positions and cached is not None:
        parts.append(cached.iloc[np.concatenate(hit_positions)])
    if new_rows:
        fresh = pd.DataFrame.from_records(new_rows, columns=[*COLUMN_NAMES, *_KEY_COLUMNS])
        parts.append(coerce_table(fresh))
    combined = pd.concat(parts, ignore_index=True) if parts else empty_table()
    combined = coerce_table(combined)
    if cache_file is not None and (misses or cached is None or len(cached_index) != total):
        _write_cache(cache_file, combined.reindex(columns=[*COLUMN_NAMES, *_KEY_COLUMNS]))

    order = {str(c.path): i for i, c in enumerate(candidates)}
    if "_src" in combined:
        good = combined[combined["_skip"].fillna("") == ""]
        good = good.iloc[good["_src"].map(order).argsort(kind="stable")]
    else:
        good = combined
    table = coerce_table(good.drop(columns=list(_KEY_COLUMNS), errors="ignore"))
    table = table.reset_index(drop=True)
    table, duplicates = _drop_duplicate_reports(table)
    table = table.reset_index(drop=True)

    for file, reason in context.errors.items():
        skipped.append((str(file), reason))
    skipped += [(src, reason) for src, reason in results.items() if reason]
    skipped += duplicates
    dropped = {p for p, _ in duplicates}
    loaded = [src for src, reason in results.items() if reason is None and src not in dropped]
    return LoadResult(table, skipped, loaded)
