"""Fixtures for the engine tests: an isolated catalog, mirror and cache per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sleuth.settings import Settings, get_settings

from .engine_testlib import EngineEnv


@pytest.fixture
def eng(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EngineEnv]:
    """Only the test's catalog folder (packaged catalog hidden), a private mirror and cache.

    The same values go into the environment so code that calls ``get_settings()`` (CLI,
    registry) sees them too.
    """
    catalog_dir = tmp_path / "catalog"
    mirror = tmp_path / "mirror"
    cache = tmp_path / "cache"
    for d in (catalog_dir, mirror, cache):
        d.mkdir()
    monkeypatch.setenv("SLEUTH_CATALOG_DIR", str(catalog_dir))
    monkeypatch.setenv("SLEUTH_CATALOG_BUILTIN", "0")
    monkeypatch.setenv("SLEUTH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SLEUTH_MODEL_CACHE", str(cache))
    monkeypatch.setenv("SLEUTH_MODEL_MIRROR", str(mirror))
    monkeypatch.setenv("SLEUTH_MAX_WAIT_MS", "5")
    monkeypatch.delenv("SLEUTH_PIP_ARGS", raising=False)
    get_settings.cache_clear()
    s = Settings(data_dir=tmp_path / "data", model_cache=cache, model_mirror=mirror)
    yield EngineEnv(tmp_path, catalog_dir, mirror, cache, s)
    get_settings.cache_clear()
