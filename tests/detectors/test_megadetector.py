"""MegaDetectorOnnx end to end on small ONNX graphs with MD's I/O and known outputs."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image

from sleuth.engine.base import ModelError
from sleuth.models.megadetector import MegaDetectorOnnx, decode_yolo_output, letterbox


def _const_model(path: Path, out: np.ndarray, hw: tuple[int | str, int | str]) -> Path:
    """images [B,3,H,W] -> output = `out` broadcast over the batch (Shape/Slice/Concat/Expand)."""
    const = helper.make_tensor("k", TensorProto.FLOAT, out.shape, out.astype(np.float32).ravel().tolist())
    nodes = [
        helper.make_node("Constant", [], ["kv"], value=const),
        helper.make_node("Shape", ["images"], ["shp"]),
        helper.make_node("Slice", ["shp", "s0", "s1"], ["bdim"]),
        helper.make_node("Concat", ["bdim", "rest"], ["oshape"], axis=0),
        helper.make_node("Expand", ["kv", "oshape"], ["output"]),
    ]
    inits = [
        helper.make_tensor("s0", TensorProto.INT64, [1], [0]),
        helper.make_tensor("s1", TensorProto.INT64, [1], [1]),
        helper.make_tensor("rest", TensorProto.INT64, [2], list(out.shape[1:])),
    ]
    g = helper.make_graph(
        nodes,
        "md_stub",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, hw[0], hw[1]])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", *out.shape[1:]])],
        initializer=inits,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
    return path


def _jpeg(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (90, 120, 60)).save(buf, "JPEG")
    return buf.getvalue()


# Known objects in a 800x600 image, normalised [x, y, w, h], MD class index, score.
OBJECTS = [
    ((0.10, 0.20, 0.30, 0.40), 0, 0.90),
    ((0.55, 0.05, 0.20, 0.50), 1, 0.70),
    ((0.60, 0.70, 0.35, 0.25), 2, 0.40),
]
W, H, S = 800, 600, 320


def _encode(size: int = S) -> tuple[np.ndarray, float, float, float]:
    """cx, cy, w, h in letterboxed input pixels for OBJECTS (same geometry as the loader)."""
    _, r, px, py = letterbox(np.zeros((H, W, 3), np.uint8), (size, size))
    rows = []
    for (x, y, w, h), _, _ in OBJECTS:
        rows.append([(x + w / 2) * W * r + px, (y + h / 2) * H * r + py, w * W * r, h * H * r])
    return np.array(rows), r, px, py


def test_letterbox_geometry() -> None:
    img, r, px, py = letterbox(np.zeros((600, 800, 3), np.uint8), (320, 320))
    assert img.shape == (320, 320, 3) and r == pytest.approx(0.4) and (px, py) == (0.0, 40.0)
    assert (img[:40] == 114).all() and (img[-40:] == 114).all() and (img[40:280] == 0).all()
    img, r, px, py = letterbox(np.zeros((600, 800, 3), np.uint8), (1280, 1280), stride=64, auto=True)
    assert img.shape == (960, 1280, 3) and py == 0.0  # 960 is already a multiple of 64
    img, *_ = letterbox(np.zeros((500, 800, 3), np.uint8), (1280, 1280), stride=64, auto=True)
    assert img.shape == (832, 1280, 3)  # 800 -> next multiple of 64


@pytest.mark.parametrize("layout", ["yolov5", "yolov8"])
def test_end_to_end_known_boxes(tmp_path: Path, layout: str) -> None:
    boxes, *_ = _encode()
    n_anchor = 40
    if layout == "yolov5":
        out = np.zeros((1, n_anchor, 8), np.float32)
        for i, (_, c, s) in enumerate(OBJECTS):
            out[0, i, :4] = boxes[i]
            out[0, i, 4] = 1.0  # objectness
            out[0, i, 5 + c] = s
        # a near-duplicate of object 0 (same class) must be suppressed by NMS, and a low-score row dropped
        out[0, 10, :4], out[0, 10, 4], out[0, 10, 5] = boxes[0] + 1.0, 0.9, 0.5
        out[0, 11, :4], out[0, 11, 4], out[0, 11, 5] = boxes[1], 0.5, 0.001
    else:
        out = np.zeros((1, 7, n_anchor), np.float32)
        for i, (_, c, s) in enumerate(OBJECTS):
            out[0, :4, i] = boxes[i]
            out[0, 4 + c, i] = s
        out[0, :4, 10], out[0, 4, 10] = boxes[0] + 1.0, 0.45
    model_path = _const_model(tmp_path / "md.onnx", out, (S, S))
    md = MegaDetectorOnnx(output_format="auto", conf_threshold=0.01)
    md.load({"onnx": model_path})
    assert md.image_size == S
    res = md([_jpeg(W, H), _jpeg(W, H)])  # batch of 2 through the dynamic batch axis
    for r in res:
        assert (r.width, r.height) == (W, H)
        assert [d.category for d in r.detections] == ["1", "2", "3"]
        assert [d.conf for d in r.detections] == pytest.approx([s for _, _, s in OBJECTS], abs=1e-6)
        for d, (box, _, _) in zip(r.detections, OBJECTS, strict=True):
            np.testing.assert_allclose(d.bbox, box, atol=1e-6)
        assert r.to_md()["detections"][0]["category"] == "1"


def test_dynamic_input_uses_stride_padding(tmp_path: Path) -> None:
    out = np.zeros((1, 5, 8), np.float32)
    model_path = _const_model(tmp_path / "dyn.onnx", out, ("h", "w"))
    md = MegaDetectorOnnx(image_size=640, stride=64)
    md.load({"onnx": model_path})
    p = md.preprocess(_jpeg(W, H))
    assert p.tensor.shape == (3, 512, 640) and p.tensor.max() <= 1.0  # 480 -> 512 (multiple of 64)
    assert md.postprocess(md.predict_batch([p])[0], p).detections == []


def test_layout_errors() -> None:
    with pytest.raises(ModelError, match="ambiguous"):
        decode_yolo_output(np.zeros((7, 8)), 3)
    with pytest.raises(ModelError):
        decode_yolo_output(np.zeros((10, 11)), 3)
    b, s = decode_yolo_output(np.zeros((1, 7, 20)), 3)
    assert b.shape == (20, 4) and s.shape == (20, 3)


def test_missing_onnx_is_explained(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="export them to ONNX"):
        MegaDetectorOnnx().load({"weights": tmp_path / "md_v5a.0.0.pt"})
