"""Detector score maps (raw score -> MegaDetector scale), candidate cuts and clipped boxes in the service path."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from sleuth.models.detection import Detection, clip_boxes
from sleuth.models.score_map import ScoreMap, fit_isotonic, map_detections, score_map_of

from .conftest import CT, needs_data


def test_score_map_interpolates_and_inverts() -> None:
    m = ScoreMap((0.0, 0.1, 0.5, 1.0), (0.0, 0.2, 0.8, 0.9))
    assert m(0.05) == pytest.approx(0.1)
    assert m(0.3) == pytest.approx(0.5)
    assert m(1.0) == pytest.approx(0.9)
    assert list(m.apply([0.0, 0.1, 0.75])) == pytest.approx([0.0, 0.2, 0.85])
    for t in np.linspace(0.0, 0.9, 37):
        x = m.inverse(float(t))
        assert m(x) >= t - 1e-9
        assert x == 0.0 or m(x - 1e-6) < t + 1e-9  # the smallest such raw score
    assert m.inverse(0.95) == 1.0  # unreachable
    flat = ScoreMap((0.0, 0.2, 0.4, 1.0), (0.0, 0.3, 0.3, 1.0))
    assert flat.inverse(0.3) == pytest.approx(0.2)
    assert ScoreMap.identity().is_identity and not m.is_identity


@pytest.mark.parametrize(
    ("cfg", "msg"),
    [
        ({"x": [0, 1]}, "x and y must be lists"),
        ({"x": [0, 0.5, 1], "y": [0, 0.6, 0.5]}, "non-decreasing"),
        ({"x": [0, 0.5], "y": [0, 0.5]}, "end at 1"),
        ({"x": [0, 0.5, 0.5, 1], "y": [0, 0.1, 0.2, 1]}, "strictly increasing"),
        ({"x": [0, 1], "y": [0, 1.5]}, "within"),
        ({"x": [0, 1], "y": [0, 1], "knots": 3}, "unknown keys"),
        ({"x": [0, True], "y": [0, 1]}, "lists of numbers"),
        ([0, 1], "must be a table"),
    ],
)
def test_score_map_config_errors_name_the_key(cfg: Any, msg: str) -> None:
    with pytest.raises(ValueError, match=msg) as e:
        ScoreMap.from_config(cfg, "detectors.toml: model 'x': score_map")
    assert "model 'x'" in str(e.value)


def test_fit_isotonic_is_monotone_and_follows_the_data() -> None:
    rng = np.random.default_rng(0)
    raw = rng.uniform(0, 1, 400)
    target = np.clip(np.sqrt(raw) + rng.normal(0, 0.05, raw.size), 0, 1)
    m = fit_isotonic(raw, target)
    assert all(b >= a for a, b in zip(m.y, m.y[1:], strict=False))
    for x in (0.1, 0.3, 0.5, 0.7):
        assert m(x) == pytest.approx(np.sqrt(x), abs=0.08)
    # a violating pair is pooled to its (weighted) mean
    light = fit_isotonic([0.2, 0.4], [1.0, 0.0], knots=(0.3,))
    heavy = fit_isotonic([0.2, 0.4], [1.0, 0.0], knots=(0.3,), weights=[3, 1])
    assert light(0.3) == pytest.approx(0.5)
    assert heavy(0.3) == pytest.approx(0.75)
    with pytest.raises(ValueError, match=">= 2"):
        fit_isotonic([0.5], [0.5])


def test_map_detections_and_clip_boxes() -> None:
    dets = [Detection("1", 0.3, (0.1, 0.1, 0.2, 0.2)), Detection("1", 0.6, (-0.1, -0.05, 1.1, 1.0))]
    m = ScoreMap((0.0, 0.5, 1.0), (0.0, 0.9, 1.0))
    out = map_detections(dets, m)
    assert [d.conf for d in out] == pytest.approx([0.92, 0.54])  # re-sorted by mapped score
    assert map_detections(dets, None) == dets
    clipped = clip_boxes(out + [Detection("1", 0.5, (1.2, 0.1, 0.1, 0.1))])  # the last lies outside: dropped
    assert len(clipped) == 2
    assert clipped[0].bbox == pytest.approx((0.0, 0.0, 1.0, 0.95))
    assert clipped[1] is out[1]  # inside already: unchanged
    for d in clipped:
        x, y, w, h = d.bbox
        assert x >= 0 and y >= 0 and x + w <= 1 + 1e-12 and y + h <= 1 + 1e-12


def test_shipped_score_maps_reach_the_api_minimum() -> None:
    """Every catalog score map parses, and its candidate cut lets threshold=0.01 see every box mapped to 0.01."""
    from sleuth.engine.catalog import load_catalog

    with_map = 0
    for entry in load_catalog().values():
        m = score_map_of(entry)
        if m is None:
            continue
        with_map += 1
        assert m.fitted_on, entry.name
        cut = entry.extra.get("conf_threshold")
        assert cut is not None, f"{entry.name}: a score map needs the model's candidate cut in the catalog"
        assert m(float(cut)) < 0.01, entry.name
    assert with_map >= 2  # mdlite, mdlite-fp32


@needs_data
def test_service_reaches_low_scores_maps_them_and_clips(mdlite_artefacts: Any, yolox_nano_artefacts: Any) -> None:
    from sleuth.engine.registry import get_batcher, get_model
    from sleuth.models.mdlite import ZAMBA_CONF, MegadetectorLite
    from sleuth.pipelines.wildlife import ImageOptions
    from sleuth.services import wildlife as svc

    assert MegadetectorLite().conf_threshold == ZAMBA_CONF == 0.1  # the golden parity path keeps zamba's cut
    profile = svc.resolve_profile("default", True)
    assert get_model(profile.detector).conf_threshold == 0.005  # the catalog's, for serving
    smap = svc.detector_score_map(profile.detector)
    assert smap is not None
    files = ["speciesnet/vehicle.jpg", "speciesnet/blank2.jpg"]
    inputs = [svc.ImageInput(f, (CT / f).read_bytes()) for f in files]
    low = svc.run_images(inputs, ImageOptions(threshold=0.01), profile, detector_only=True)
    scores = [d["score"] for o in low for d in o.detections]
    assert scores and min(scores) < 0.1  # zamba's cut hid everything under 0.1 (raw)
    assert all(s >= 0.01 for s in scores)
    for o in low:
        for d in o.detections:
            x, y, w, h = d["bbox"]
            assert x >= 0 and y >= 0 and x + w <= 1 + 1e-6 and y + h <= 1 + 1e-6
    # vehicle.jpg's top MD-Lite box starts left of the image (x = -0.054 in the golden output): clipped to 0
    assert min(d["bbox"][0] for d in low[0].detections) == 0.0
    # the reported score of an MD-Lite box is the mapped raw score
    raw = get_batcher(profile.detector).run([svc._decode(inputs[1])])[0].detections
    assert raw
    top = max(raw, key=lambda d: d.conf)
    assert max(scores[len(low[0].detections) :]) == pytest.approx(smap(top.conf), abs=1e-6)
