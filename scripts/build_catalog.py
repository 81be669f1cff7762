"""Build the bundled model catalog in data/catalog/ from the reference configs.

Run from anywhere: ``python scripts/build_catalog.py [--reference DIR]``.

Each reference ``config.json`` is filled with the defaults of the installed
transformers (so that, say, a trimmed Gemma 3 config gains its head counts
and layer pattern) and stored with its ModelOpt companion. Entries without a
saved config come from ``scripts/catalog_extra.yaml``. Published parameter
totals from ``param_counts.csv`` go into the index with their source, so that
tests can check our counts against them.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import sys
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cfgexplorer.sources import fill_defaults

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REFERENCE = REPO.parent / "shared" / "reference"
OUT = REPO / "data" / "catalog"


def file_id(model_id: str) -> str:
    return model_id.replace("/", "--")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE)
    args = parser.parse_args()
    ref = args.reference / "model-configs"

    raw: dict[str, dict[str, Any]] = {}
    hf_quant: dict[str, dict[str, Any]] = {}
    for path in sorted(ref.glob("*.json")):
        name = path.name
        if name.endswith(".hf_quant_config.json"):
            model_id = name[: -len(".hf_quant_config.json")].replace("--", "/", 1)
            hf_quant[model_id] = json.loads(path.read_text())
            continue
        model_id = path.stem.replace("--", "/", 1)
        raw[model_id] = json.loads(path.read_text())

    extra = yaml.safe_load((REPO / "scripts" / "catalog_extra.yaml").read_text())
    entries: dict[str, dict[str, Any]] = {}
    for model_id, config in raw.items():
        entries[model_id] = {
            "config": config,
            "hf_quant_config": hf_quant.get(model_id),
            "origin": "reference config.json",
        }
    for model_id, recipe in extra["models"].items():
        if "config" in recipe:
            config = copy.deepcopy(recipe["config"])
            origin = "architecture from the model card (hand-written config)"
            quant = None
        else:
            base = entries[recipe["base"]]
            config = copy.deepcopy(base["config"])
            origin = f"architecture of {recipe['base']}"
            quant = base["hf_quant_config"] if recipe.get("copy_hf_quant_config") else None
            for key in recipe.get("drop", []):
                config.pop(key, None)
            config.update(copy.deepcopy(recipe.get("set", {})))
            if recipe.get("set_text"):
                config.setdefault("text_config", {}).update(recipe["set_text"])
        if recipe.get("hf_quant_config"):
            quant = copy.deepcopy(recipe["hf_quant_config"])
        entries[model_id] = {"config": config, "hf_quant_config": quant, "origin": origin}

    published: dict[str, dict[str, Any]] = {}
    with (ref / "param_counts.csv").open() as fh:
        for row in csv.DictReader(fh):
            published[row["model_id"]] = {
                "total": int(row["total_params"]),
                "source": row["source"][:160],
                "notes": row["notes"][:300],
            }

    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.json"):
        old.unlink()
    index: dict[str, Any] = {}
    for model_id in sorted(entries, key=str.lower):
        entry = entries[model_id]
        config = fill_defaults(entry["config"])
        # Catalog models are known to vLLM; the plain-JSON warning is for unknown sources.
        config.pop("_cfgexplorer_unknown_type", None)
        fname = file_id(model_id) + ".json"
        payload = {"model_id": model_id, "config": config}
        if entry["hf_quant_config"]:
            payload["hf_quant_config"] = entry["hf_quant_config"]
        (OUT / fname).write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")
        index[model_id] = {
            "file": fname,
            "origin": entry["origin"],
            "aliases": extra.get("aliases", {}).get(model_id, []),
            "published_params": published.get(model_id),
            "checkpoint_facts": extra.get("checkpoint_facts", {}).get(model_id, {}),
        }
    (OUT / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    print(f"wrote {len(index)} models to {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
