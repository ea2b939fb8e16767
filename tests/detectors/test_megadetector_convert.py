"""MegaDetector releases converted by sleuth's own YOLOv5 / YOLO11 networks match upstream's outputs.

The checkpoints in ``golden_md/`` have the release file format (upstream's pickled module classes,
FP16, trainer dict) with random, nudged weights; upstream's outputs on them were recorded by
``scripts/golden/make_megadetector_golden.py`` (docs/models.md). No upstream package is needed here.
Each checkpoint goes through the catalog as a pull would (mirror fetch, md5 check, recorded sha256,
conversion) into a private cache.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .md_golden import (
    ARCHS,
    GOLDEN,
    entry_name,
    golden_json,
    golden_npz,
    match_boxes,
    mirror_with_golden,
    write_catalog,
)

pytestmark = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch (the convert extra) needed")

ARCH_IDS = list(ARCHS)


@pytest.fixture(scope="module")
def md_settings(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from sleuth.settings import Settings

    root = tmp_path_factory.mktemp("mdconv")
    cat = write_catalog(root / "catalog")
    mirror = mirror_with_golden(root / "mirror", None)
    mp = pytest.MonkeyPatch()
    mp.setenv("SLEUTH_CATALOG_DIR", str(cat))
    yield Settings(data_dir=root / "data", model_cache=root / "cache", model_mirror=mirror)
    mp.undo()


@pytest.fixture(scope="module")
def converted(md_settings: Any) -> dict[str, dict[str, Path]]:
    from sleuth.engine.catalog import ensure

    return {arch: ensure(entry_name(arch), md_settings) for arch in ARCH_IDS}


def _tensor(img: np.ndarray) -> np.ndarray:
    return (np.ascontiguousarray(img.transpose(2, 0, 1))[None] / np.float32(255.0)).astype(np.float32)


@pytest.mark.parametrize("arch", ARCH_IDS)
def test_raw_head_outputs_match_upstream(arch: str) -> None:
    import torch

    from sleuth.convert.megadetector import build_network, read_release

    g = golden_npz(arch)
    rel = read_release(GOLDEN / f"{arch}.pt")
    assert rel.family == ("yolov5" if arch.startswith("yolov5") else "yolo11")
    assert rel.names == ["animal", "person", "vehicle"]
    net = build_network(rel)
    with torch.no_grad():
        _, raw = net(torch.from_numpy(_tensor(g["raw_input"])))
    levels = sorted(k for k in g if k.startswith("raw_") and k != "raw_input")
    assert len(levels) == len(raw) == len(rel.strides)
    for i, key in enumerate(levels):
        ours = raw[i][0].numpy()
        assert ours.shape == g[key].shape
        np.testing.assert_allclose(ours, g[key], rtol=0, atol=1e-3, err_msg=f"{arch} level {i}")


@pytest.mark.parametrize("arch", ARCH_IDS)
def test_onnx_decoded_output_matches_upstream(arch: str, converted: dict[str, dict[str, Path]]) -> None:
    import onnxruntime as ort

    g = golden_npz(arch)
    sess = ort.InferenceSession(str(converted[arch]["onnx"]), providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    assert meta["sleuth.output"] == ("yolov5" if arch.startswith("yolov5") else "yolov8")
    out = sess.run(None, {"images": _tensor(g["raw_input"])})[0][0]
    gold = g["decoded"]
    assert out.shape == gold.shape
    # YOLOv5 rows: cx cy w h (pixels) then obj, cls; YOLO11 rows of the transposed layout: 4 box rows, then cls.
    boxes, scores = (out[:, :4], out[:, 4:]) if arch.startswith("yolov5") else (out[:4], out[4:])
    gboxes, gscores = (gold[:, :4], gold[:, 4:]) if arch.startswith("yolov5") else (gold[:4], gold[4:])
    np.testing.assert_allclose(scores, gscores, rtol=0, atol=1e-3)
    np.testing.assert_allclose(boxes, gboxes, rtol=1e-3, atol=1e-3)  # pixels; wh reach thousands


@pytest.mark.parametrize("arch", ARCH_IDS)
def test_boxes_after_nms_match_upstream(arch: str, converted: dict[str, dict[str, Path]], md_settings: Any) -> None:
    from sleuth.engine.catalog import load_catalog
    from sleuth.models.megadetector import MegaDetectorOnnx

    gold = golden_json(arch)
    model = MegaDetectorOnnx()
    model.catalog_entry = load_catalog(settings=md_settings)[entry_name(arch)]  # type: ignore[attr-defined]
    model.load(converted[arch])
    assert model.image_size == gold["image_size"] and model.stride == gold["stride"]
    prepared = model.preprocess((GOLDEN / "scene.png").read_bytes())
    assert list(prepared.tensor.shape[1:]) == gold["letterboxed_hw"]
    result = model.postprocess(model.predict_batch([prepared])[0], prepared)
    w, h = prepared.width, prepared.height
    ours = [
        (
            [d.bbox[0] * w, d.bbox[1] * h, (d.bbox[0] + d.bbox[2]) * w, (d.bbox[1] + d.bbox[3]) * h],
            d.conf,
            d.source_class,
        )
        for d in result.detections
    ]
    match_boxes(ours, gold)


def test_every_release_entry_converts_with_the_right_network() -> None:
    from sleuth.engine.catalog import load_catalog

    cat = load_catalog()
    for arch, (releases, size) in ARCHS.items():
        for name in releases:
            e = cat[name]
            assert e.convert == "sleuth.convert.megadetector:convert", name
            assert e.loader == "sleuth.models.megadetector:MegaDetectorOnnx", name
            assert e.extra["image_size"] == size, name
            assert e.extra["architecture"].lower().startswith(arch[:6]), name
    cedar = cat["mdv1000-cedar"]
    assert not cedar.servable and not cedar.convert and "YOLOv9" in cedar.extra["manual_export"]
