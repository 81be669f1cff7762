"""Benchmark result importers: llm-d reports, vLLM bench, GuideLLM and inference-perf.

One module per input format; :mod:`~cfgexplorer.benchmarks.loader` detects the
format from content and builds one table whose columns are described in
:mod:`~cfgexplorer.benchmarks.columns`.
"""

from cfgexplorer.benchmarks.columns import COLUMN_NAMES, COLUMNS, Column, columns_table, direction
from cfgexplorer.benchmarks.loader import (
    LoadResult,
    detect_format,
    empty_table,
    load_bytes,
    load_paths,
    parse_document,
)

__all__ = [
    "COLUMNS",
    "COLUMN_NAMES",
    "Column",
    "LoadResult",
    "columns_table",
    "detect_format",
    "direction",
    "empty_table",
    "load_bytes",
    "load_paths",
    "parse_document",
]
