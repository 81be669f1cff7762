"""Fixtures for the importer tests: a private cache directory and the sample files."""

from __future__ import annotations

from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parent / "samples"


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Every test gets its own sweep cache, never the user's."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("CFGEXPLORER_CACHE", str(cache))
    return cache


@pytest.fixture
def samples() -> Path:
    """Real sample result files (copied unchanged from the shared reference)."""
    return SAMPLES
