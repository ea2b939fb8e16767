"""Fixtures of the audio deepfake tests: shared data paths and the three loaded detectors.

Models come from the catalog (``sleuth.engine.catalog.ensure``): artefacts from the
``../shared/data/models`` mirror, converted to ONNX once per model cache (torch needed
only for that conversion).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
MODELS = DATA / "models"
AUDIO = DATA / "audio"

needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data not present (a user's clone)")
has_espeak = shutil.which("espeak-ng") is not None

MODEL_NAMES = ("aasist", "aasist-l", "rawgat-st")
GOLDEN_KEYS = {"aasist": "AASIST", "aasist-l": "AASIST-L", "rawgat-st": "RawGAT_ST_mul"}


def golden(name: str) -> dict[str, Any]:
    """The reference_outputs.json that covers catalog model ``name``."""
    folder = "rawgat_st" if name == "rawgat-st" else "aasist"
    data: dict[str, Any] = json.loads((MODELS / folder / "reference_outputs.json").read_text())
    return data


def audio_manifest() -> list[dict[str, Any]]:
    files: list[dict[str, Any]] = json.loads((AUDIO / "manifest.json").read_text())["files"]
    return files


@pytest.fixture(scope="session")
def audio_settings(model_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    if not DATA.is_dir():
        pytest.skip("../shared/data not present (a user's clone)")
    from sleuth.settings import Settings

    return Settings(  # type: ignore[call-arg]
        data_dir=tmp_path_factory.mktemp("audio-data"), model_cache=model_cache, model_mirror=MODELS
    )


@pytest.fixture(scope="session")
def model_paths(audio_settings: Any) -> dict[str, dict[str, Path]]:
    """``name -> ensure(name)`` for the three audio models (fetch from mirror, convert once)."""
    from sleuth.engine.catalog import ConversionError, ensure

    out: dict[str, dict[str, Path]] = {}
    for name in MODEL_NAMES:
        try:
            out[name] = ensure(name, audio_settings)
        except ConversionError as exc:
            try:
                import torch  # noqa: F401
            except ImportError:
                pytest.skip(f"{name} is not converted yet and torch (build-time extra) is missing")
            raise exc
    return out


@pytest.fixture(scope="session")
def detectors(model_paths: dict[str, dict[str, Path]], audio_settings: Any) -> dict[str, Any]:
    """``name -> loaded Model`` through each catalog entry's ``loader``."""
    from sleuth.engine.catalog import get_entry, import_object, load_catalog

    catalog = load_catalog(settings=audio_settings)
    out: dict[str, Any] = {}
    for name, paths in model_paths.items():
        cls = import_object(get_entry(name, catalog).loader)
        m = cls()
        m.load(paths)
        out[name] = m
    return out
