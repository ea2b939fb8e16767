"""Imprinted info bars: found from the image, boxes in them dropped (synthetic frames and the shared set)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from sleuth.pipelines.wildlife.infobar import InfoBar, find_info_bars, in_info_bar

ROOT = Path(__file__).resolve().parents[2]
CT = ROOT.parent / "shared" / "data" / "camera_traps"


def _scene(h: int = 480, w: int = 640, seed: int = 0) -> np.ndarray:
    """A textured 'natural' frame: smoothed noise in green/brown."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.uniform(0, 255, (h, w)).astype(np.float32), (0, 0), 3)
    noise = (noise - noise.min()) / (noise.max() - noise.min())
    rgb = np.stack([60 + 90 * noise, 90 + 110 * noise, 40 + 60 * noise], axis=2)
    return rgb.astype(np.uint8)


def _stamp(rgb: np.ndarray, y0: int, y1: int, bg: int, fg: int, x0: int = 0, x1: int | None = None) -> None:
    rgb[y0:y1, x0:x1] = bg
    x1 = rgb.shape[1] if x1 is None else x1
    cv2.putText(rgb, "2021-05-27 06:08 53F", (x0 + 8, y1 - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (fg,) * 3, 2)


@pytest.mark.parametrize(("bg", "fg"), [(0, 255), (255, 0), (96, 230)])
def test_bottom_bar_found_in_any_flat_colour(bg: int, fg: int) -> None:
    rgb = _scene()
    _stamp(rgb, 456, 480, bg, fg)
    bars = find_info_bars(rgb)
    assert [b.side for b in bars] == ["bottom"]
    assert bars[0].y0 == pytest.approx(456 / 480, abs=0.01) and bars[0].y1 == 1.0
    assert (bars[0].x0, bars[0].x1) == (0.0, 1.0)


def test_top_and_bottom_bars_and_none() -> None:
    rgb = _scene(seed=1)
    assert find_info_bars(rgb) == []
    _stamp(rgb, 0, 20, 0, 255)
    _stamp(rgb, 450, 480, 0, 255)
    assert sorted(b.side for b in find_info_bars(rgb)) == ["bottom", "top"]


def test_flat_bottom_without_text_or_boundary_is_no_bar() -> None:
    rgb = _scene(seed=2)
    # snow: a bright, nearly flat lower part fading into the scene (no straight boundary, no text)
    ramp = np.linspace(0, 1, 120)[:, None, None]
    rgb[360:] = (rgb[360:] * (1 - ramp) + 240 * ramp).astype(np.uint8)
    assert find_info_bars(rgb) == []
    # a flat band with a boundary but no text at all is not an info bar either
    rgb2 = _scene(seed=3)
    rgb2[450:] = 20
    assert find_info_bars(rgb2) == []


def test_partial_bar_keeps_its_columns() -> None:
    rgb = _scene(seed=4)
    _stamp(rgb, 452, 480, 255, 0, 0, 200)  # "HCO ScoutGuard"-style boxes at the left and the right
    _stamp(rgb, 452, 480, 255, 0, 440, 640)
    (bar,) = find_info_bars(rgb)
    assert bar.side == "bottom" and bar.x0 == 0.0 and 0.3 < bar.x1 <= 1.0


def test_in_info_bar() -> None:
    bars = [InfoBar("bottom", 0.95, 1.0)]
    assert in_info_bar([0.85, 0.91, 0.14, 0.09], bars)  # a logo standing out of the bar (44 % inside)
    assert in_info_bar([0.1, 0.955, 0.1, 0.04], bars)  # text inside
    assert not in_info_bar([0.4, 0.6, 0.3, 0.4], bars)  # an animal at the frame's edge
    assert not in_info_bar([0.4, 0.8, 0.1, 0.18], bars)  # a small animal just above the bar
    partial = [InfoBar("bottom", 0.95, 1.0, 0.0, 0.3)]
    assert not in_info_bar([0.5, 0.96, 0.1, 0.04], partial)  # beside the bar's columns
    assert not in_info_bar([0.1, 0.9, 0.0, 0.05], bars)


@pytest.mark.skipif(not CT.is_dir(), reason="shared camera-trap images not present")
def test_shared_set_bars_and_the_logo_box() -> None:
    """Every squirrel frame (a Cuddeback camera) has its bottom bar found, and MD-Lite's box on the maker's
    logo in it (0.80 on the MegaDetector scale) no longer reaches the answer."""
    from sleuth.media.images import decode_image
    from sleuth.pipelines.wildlife import ImageOptions
    from sleuth.services import wildlife as svc

    man = json.loads((CT / "manifest.json").read_text())["images"]
    frames = [r["path"] for r in man if r["set"] == "pw_ft_squirrels"]
    for p in frames:
        bars = find_info_bars(decode_image((CT / p).read_bytes(), 1280).rgb)
        assert [b.side for b in bars] == ["bottom"], p
        assert 0.94 < bars[0].y0 < 0.97
    assert find_info_bars(decode_image((CT / "speciesnet/african_elephants_truncated_file.jpg").read_bytes()).rgb) == []
    profile = svc.resolve_profile("default", True)
    inputs = [svc.ImageInput(p, (CT / p).read_bytes()) for p in frames[:3]]
    for o in svc.run_images(inputs, ImageOptions(threshold=0.2), profile, detector_only=True):
        assert o.ok
        assert not [d for d in o.detections if d["bbox"][1] > 0.88 and d["bbox"][0] > 0.8], o.filename
