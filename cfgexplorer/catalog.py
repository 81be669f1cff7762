"""The bundled model catalog: real configs of popular models, usable offline.

``data/catalog/index.json`` lists every model with its file, aliases and the
published parameter total where one is known; each model file holds the
config (filled with transformers' defaults when the catalog was built, see
``scripts/build_catalog.py``) and any ModelOpt ``hf_quant_config.json``.
Lookups are case-insensitive, as the Hub resolves ids.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from cfgexplorer.paths import data_dir
from cfgexplorer.spec import ModelSpec, spec_from_config


@dataclass(frozen=True)
class CatalogEntry:
    """One bundled model: where its config is and what is published about it."""

    model_id: str
    file: str
    origin: str
    aliases: tuple[str, ...]
    published_params: int | None
    published_source: str | None
    stores_tied_head: bool = False
    published_basis: str = "parameters"  # what the published total counts


@cache
def entries() -> dict[str, CatalogEntry]:
    """Every catalog entry by model id (read once per process)."""
    raw = json.loads((data_dir() / "catalog" / "index.json").read_text())
    out = {}
    for model_id, item in raw.items():
        pub = item.get("published_params") or {}
        out[model_id] = CatalogEntry(
            model_id=model_id,
            file=item["file"],
            origin=item.get("origin", ""),
            aliases=tuple(item.get("aliases") or ()),
            published_params=pub.get("total"),
            published_source=pub.get("source"),
            stores_tied_head=bool((item.get("checkpoint_facts") or {}).get("stores_tied_head")),
            published_basis=str(
                (item.get("checkpoint_facts") or {}).get("published_basis", "parameters")
            ),
        )
    return out


@cache
def _lookup_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for model_id, entry in entries().items():
        table[model_id.lower()] = model_id
        for alias in entry.aliases:
            table[alias.lower()] = model_id
    return table


def find(ref: str) -> CatalogEntry | None:
    """The catalog entry for a model id or alias, matched case-insensitively."""
    model_id = _lookup_table().get(ref.strip().strip("/").lower())
    return entries()[model_id] if model_id else None


def search(text: str | None = None) -> list[CatalogEntry]:
    """Entries whose id contains ``text`` (case-insensitive), sorted by id."""
    needle = (text or "").lower()
    return sorted(
        (e for e in entries().values() if needle in e.model_id.lower()),
        key=lambda e: e.model_id.lower(),
    )


@cache
def raw_files(model_id: str) -> dict[str, Any]:
    """The stored config (and hf_quant_config) of a catalog model."""
    entry = entries()[model_id]
    return json.loads((data_dir() / "catalog" / entry.file).read_text())


@cache
def catalog_spec(model_id: str) -> ModelSpec:
    """The ModelSpec of a catalog model (built once per process, immutable)."""
    payload = raw_files(model_id)
    spec = spec_from_config(
        payload["config"],
        model_id=model_id,
        source="catalog",
        hf_quant_config=payload.get("hf_quant_config"),
    )
    if entries()[model_id].stores_tied_head:
        spec = replace(spec, checkpoint_stores_tied_head=True)
    return spec
