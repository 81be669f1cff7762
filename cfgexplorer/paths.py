"""Where bundled data lives, from a wheel install or from a checkout."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


@cache
def data_dir() -> Path:
    """Return the directory holding the bundled data files.

    A wheel carries them as ``cfgexplorer/data``; a checkout (or an editable
    install) keeps them in ``data/`` beside the package. Never the CWD.
    """
    for candidate in (_PACKAGE_DIR / "data", _PACKAGE_DIR.parent / "data"):
        if (candidate / "gpus.yaml").is_file() or (candidate / "catalog").is_dir():
            return candidate
    raise FileNotFoundError(
        f"bundled data not found next to {_PACKAGE_DIR}; reinstall the cfgexplorer package"
    )


def cache_dir() -> Path:
    """Return the per-user cache directory (Hub specs, sweep tables).

    ``CFGEXPLORER_CACHE`` wins; otherwise ``$XDG_CACHE_HOME/cfgexplorer`` or
    ``~/.cache/cfgexplorer``.
    """
    explicit = os.environ.get("CFGEXPLORER_CACHE")
    if explicit:
        path = Path(explicit)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        path = Path(base) / "cfgexplorer"
    path.mkdir(parents=True, exist_ok=True)
    return path
