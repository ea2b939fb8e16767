"""Fixtures for the species classifier tests: the Coral pack through the model catalog."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .helpers import CORAL, DATA


@pytest.fixture(scope="session")
def catalog_settings(model_cache: Path) -> Any:
    from sleuth.settings import Settings

    kwargs: dict[str, Any] = {"model_cache": model_cache}
    if (DATA / "models").is_dir():
        kwargs["model_mirror"] = DATA / "models"
    return Settings(**kwargs)


@pytest.fixture(scope="session")
def coral_artefacts(catalog_settings: Any) -> dict[str, dict[str, Path]]:
    if not CORAL.is_dir():
        pytest.skip("../shared/data/models/coral not present")
    from sleuth.engine.catalog import ensure

    return {name: ensure(name, catalog_settings) for name in ("coral-imagenet", "coral-inat-birds")}


@pytest.fixture(scope="session")
def coral_pack(catalog_settings: Any, coral_artefacts: dict[str, dict[str, Path]]) -> Any:
    from sleuth.models.classifier import load_coral_pack

    return load_coral_pack(settings=catalog_settings)


@pytest.fixture(scope="session")
def reference() -> dict[str, Any]:
    path = CORAL / "reference_outputs.json"
    if not path.is_file():
        pytest.skip("coral reference outputs not present")
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def manifest() -> dict[str, Any]:
    path = DATA / "camera_traps" / "manifest.json"
    if not path.is_file():
        pytest.skip("camera_traps manifest not present")
    return json.loads(path.read_text())
