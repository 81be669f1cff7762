"""Config Explorer: capacity planning and GPU recommendation for serving LLMs with vLLM."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from cfgexplorer.spec import ModelSpec

__all__ = ["__version__", "load_model"]


def load_model(ref: str, token: str | None = None, **kwargs: Any) -> ModelSpec:
    """Resolve a model reference (local path, catalog id or Hub id) to a ModelSpec.

    Imported lazily so that ``import cfgexplorer`` stays cheap.
    """
    from cfgexplorer.sources import load_model as _load_model

    return _load_model(ref, token=token, **kwargs)
