"""Shared fixtures of the detector tests: data folder, catalog-built models (session scoped)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
CT = DATA / "camera_traps"
MODELS = DATA / "models"

needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="shared/data not present")


def _settings() -> Any:
    from sleuth.settings import Settings

    s = Settings()
    if s.model_mirror is None and MODELS.is_dir():
        s = Settings(model_mirror=MODELS)
    return s


def _ensure(name: str) -> dict[str, Path]:
    from sleuth.engine.catalog import ArtefactError, ConversionError, ensure

    if name == "mdlite":
        pytest.importorskip("torch", reason="the MD-Lite converter needs the 'convert' extra (torch)")
    try:
        return ensure(name, _settings())
    except ConversionError:
        raise
    except ArtefactError as e:  # fetching failed (e.g. no network for the zamba wheel)
        pytest.skip(f"cannot fetch {name} through the catalog: {e}")


@pytest.fixture(scope="session")
def mdlite_artefacts() -> dict[str, Path]:
    if not DATA.is_dir():
        pytest.skip("shared/data not present")
    return _ensure("mdlite")


@pytest.fixture(scope="session")
def yolox_nano_artefacts() -> dict[str, Path]:
    if not DATA.is_dir():
        pytest.skip("shared/data not present")
    return _ensure("yolox-nano-coco")


@pytest.fixture(scope="session")
def mdlite_full(mdlite_artefacts: dict[str, Path]) -> Any:
    from sleuth.models.mdlite import MegadetectorLite

    m = MegadetectorLite(decode_max_side=None, rect=False, precision="fp32", fast_resize=False)  # upstream
    m.load(mdlite_artefacts)
    return m


@pytest.fixture(scope="session")
def yolox_nano(yolox_nano_artefacts: dict[str, Path]) -> Any:
    from sleuth.models.yolox_nano import YoloxNanoCoco

    m = YoloxNanoCoco(decode_max_side=None)
    m.load(yolox_nano_artefacts)
    return m


@pytest.fixture(scope="session")
def manifest() -> dict[str, Any]:
    if not CT.is_dir():
        pytest.skip("shared/data/camera_traps not present")
    return json.loads((CT / "manifest.json").read_text())
