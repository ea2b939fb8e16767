"""Session fixtures for the image/video deepfake tests (heavy things built once)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .helpers import DATA, ensure_model, make_video


@pytest.fixture(scope="session")
def detector() -> Any:
    from sleuth.models.faces import MTCNN

    det = MTCNN()
    det.load(ensure_model("mtcnn"), ["CPUExecutionProvider"])
    return det


@pytest.fixture(scope="session")
def mesonet() -> Any:
    if not DATA.is_dir():
        pytest.skip("shared/data not present")
    from sleuth.models.mesonet import MesoNet

    m = MesoNet()
    m.load(ensure_model("mesonet"), ["CPUExecutionProvider"])
    return m


@pytest.fixture(scope="session")
def synth_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("vid") / "synth_10s_25fps.mp4")
