"""Helpers for the species classifier tests: where the shared data is, image loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
CORAL = DATA / "models" / "coral"

needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data not present")


def load_rgb(path: Path) -> np.ndarray:
    from PIL import Image, ImageFile, ImageOps

    old = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True  # one SpeciesNet test image is deliberately truncated
    try:
        with Image.open(path) as im:
            return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = old  # a process-wide flag: never leak it into other tests
