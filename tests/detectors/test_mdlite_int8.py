"""MD-Lite serving path: rectangular letterbox, fast resize, INT8 graph and its calibration table.

The exact upstream computation (square input, PIL bicubic, FP32) is checked against zamba's golden
outputs in ``test_mdlite.py``; here each serving change is measured against that FP32 model on the
shared camera-trap images, INT8 on the images the calibration table did *not* see.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sleuth.models.mdlite import MegadetectorLite, letterbox_topleft_pil

from .conftest import CT, needs_data

DET_CONF = 0.25


def _usable(manifest: dict[str, Any]) -> list[str]:
    return [r["path"] for r in manifest["images"] if r["kind"] != "invalid" and not r["path"].endswith(".mp4")]


def _loaded(artefacts: dict[str, Path], **kw: Any) -> MegadetectorLite:
    m = MegadetectorLite(**kw)
    m.load(artefacts)
    return m


def _agreement(ref: MegadetectorLite, got: MegadetectorLite, paths: list[str]) -> tuple[int, int, float, float, int]:
    """(ref boxes >= DET_CONF, matched at IoU >= 0.5, worst matched IoU, worst |score diff|, new boxes)."""
    from sleuth.models.detection import iou_matrix, norm_xywh_to_xyxy

    n = matched = new = 0
    worst_iou, worst_ds = 1.0, 0.0
    for p in paths:
        data = (CT / p).read_bytes()
        a = [d for d in ref([data])[0].detections]
        b = [d for d in got([data])[0].detections]
        a_hi = [d for d in a if d.conf >= DET_CONF]
        b_hi = [d for d in b if d.conf >= DET_CONF]
        n += len(a_hi)
        if a_hi and b:
            iou = iou_matrix(norm_xywh_to_xyxy([d.bbox for d in a_hi]), norm_xywh_to_xyxy([d.bbox for d in b]))
            for i, d in enumerate(a_hi):
                j = int(iou[i].argmax())
                if iou[i, j] >= 0.5:
                    matched += 1
                    worst_iou = min(worst_iou, float(iou[i, j]))
                    worst_ds = max(worst_ds, abs(d.conf - b[j].conf))
        if b_hi:  # confident boxes of `got` with no partner at all (>= 0.1) in `ref`
            if a:
                iou = iou_matrix(norm_xywh_to_xyxy([d.bbox for d in b_hi]), norm_xywh_to_xyxy([d.bbox for d in a]))
                new += int((iou.max(axis=1) < 0.5).sum())
            else:
                new += len(b_hi)
    return n, matched, worst_iou, worst_ds, new


# -- letterbox (no data needed) ----------------------------------------------------------


@pytest.mark.parametrize("hw", [(750, 1000), (1080, 1920), (700, 500), (640, 640), (200, 300), (37, 1000)])
def test_rect_letterbox_is_the_square_minus_padding(hw: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (*hw, 3), dtype=np.uint8)
    square = letterbox_topleft_pil(rgb)
    rect = letterbox_topleft_pil(rgb, rect=True)
    h, w = rect.shape[:2]
    assert square.shape == (640, 640, 3)
    assert h % 32 == 0 and w % 32 == 0 and max(h, w) == 640
    np.testing.assert_array_equal(rect, square[:h, :w])  # same pixels ...
    assert not square[h:].any() and not square[:, w:].any()  # ... the rest was black padding


def test_fast_resize_keeps_geometry_and_stays_close() -> None:
    yy, xx = np.mgrid[0:1536, 0:2048]
    rgb = np.stack([(xx / 8) % 256, (yy / 6) % 256, (xx + yy) / 14 % 256], -1).astype(np.uint8)
    for rect in (False, True):
        pil = letterbox_topleft_pil(rgb, rect=rect)
        fast = letterbox_topleft_pil(rgb, rect=rect, fast_resize=True)
        assert fast.shape == pil.shape == ((480, 640, 3) if rect else (640, 640, 3))  # 2048x1536 -> 640x480
        assert not fast[480:].any() and fast[479].any()  # top-left, black below (square only)
        diff = np.abs(fast[:480].astype(int) - pil[:480].astype(int))
        assert diff.mean() < 2.0, diff.mean()


@pytest.mark.parametrize("hw", [(1, 2000), (3000, 2), (1, 1)])
def test_extreme_aspect_ratios_keep_one_pixel(hw: tuple[int, int]) -> None:
    from sleuth.models.yolox_nano import preprocess_bgr

    rgb = np.full((*hw, 3), 200, dtype=np.uint8)
    for kw in ({}, {"rect": True}, {"rect": True, "fast_resize": True}):
        out = letterbox_topleft_pil(rgb, **kw)
        assert out.shape[0] % 32 == 0 and out.shape[1] % 32 == 0 and out[0, 0].any()
    tensor, _r = preprocess_bgr(rgb)
    assert tensor.shape == (3, 416, 416) and tensor[:, 0, 0].tolist() == [200.0] * 3


def test_precision_is_validated() -> None:
    with pytest.raises(ValueError, match="precision"):
        MegadetectorLite(precision="fp16")


def test_auto_precision_follows_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    from sleuth.engine import runtime
    from sleuth.services import folder as fl
    from sleuth.services import wildlife as svc
    from sleuth.settings import get_settings

    assert "fpu" in runtime.cpu_flags() or not Path("/proc/cpuinfo").is_file() or runtime.platform.machine() != "x86_64"
    monkeypatch.setattr(runtime.platform, "machine", lambda: "x86_64")
    for flags, want in (({"avx512_vnni", "avx512f"}, "int8"), ({"avx_vnni"}, "int8"), ({"avx2", "fma"}, "fp32")):
        monkeypatch.setattr(runtime, "cpu_flags", lambda f=flags: f)
        assert runtime.resolve_precision("auto") == want, flags
    monkeypatch.setattr(runtime.platform, "machine", lambda: "aarch64")
    assert runtime.resolve_precision("auto") == "int8"
    monkeypatch.setattr(runtime, "int8_fast_path", lambda: False)
    assert runtime.resolve_precision("int8") == "int8" and runtime.resolve_precision("fp32") == "fp32"
    with pytest.raises(ValueError, match="auto, int8 or fp32"):
        runtime.resolve_precision("fp16")
    monkeypatch.setenv("SLEUTH_DETECTOR_PRECISION", "auto")
    get_settings.cache_clear()
    try:
        assert get_settings().detector_precision == "auto"
        assert svc.resolve_profile("default").detector == "mdlite-fp32"  # no fast INT8 here
        assert fl.DetectConfig().precision == "fp32" and fl.DetectConfig(precision="auto").precision == "fp32"
        assert fl.DetectConfig(precision="int8").precision == "int8"
        monkeypatch.setattr(runtime, "int8_fast_path", lambda: True)
        assert svc.resolve_profile("default").detector == "mdlite"
        assert fl.DetectConfig().precision == "int8"
    finally:
        get_settings.cache_clear()


# -- the calibration table and the quantizer ------------------------------------------------


def test_calibrate_and_quantize_a_tiny_model(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from sleuth.convert.quantize import calibrate_ranges, quantizable_tensors, quantize_int8

    rng = np.random.default_rng(1)
    w = rng.normal(0, 0.1, (8, 3, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
            helper.make_node("Sigmoid", ["c"], ["y"], name="sig"),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 16, 16])],
        [numpy_helper.from_array(w, "w")],
    )
    src = tmp_path / "tiny.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(src))
    feeds = [{"x": rng.uniform(-1, 1, (1, 3, 16, 16)).astype(np.float32)} for _ in range(3)]
    assert quantizable_tensors(src) == {"x", "c", "y"}
    ranges = calibrate_ranges(src, feeds)
    assert ranges["x"] == pytest.approx((min(f["x"].min() for f in feeds), max(f["x"].max() for f in feeds)))
    sess = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    ys = [sess.run(None, f)[0] for f in feeds]
    assert ranges["y"] == pytest.approx((min(y.min() for y in ys), max(y.max() for y in ys)), rel=1e-6)

    with pytest.raises(ValueError, match="does not cover"):
        quantize_int8(src, tmp_path / "q.onnx", {k: v for k, v in ranges.items() if k != "c"})
    q = quantize_int8(src, tmp_path / "q.onnx", ranges)
    ops = {n.op_type for n in onnx.load(str(q)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    yq = ort.InferenceSession(str(q), providers=["CPUExecutionProvider"]).run(None, feeds[0])[0]
    assert np.abs(yq - ys[0]).max() < 0.02  # a few 8-bit steps


def test_shipped_table_is_pinned_and_refused_when_changed(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    from sleuth.convert.quantize import load_table
    from sleuth.convert.yolox_tiny import CALIBRATION_SHA256, calibration_table_path, quantize_export

    path = calibration_table_path()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == CALIBRATION_SHA256
    table = load_table(path)
    assert table["method"] == "minmax" and len(table["ranges"]) > 200
    assert all(lo <= hi for lo, hi in table["ranges"].values())
    tampered = tmp_path / "t.json"
    tampered.write_text(json.dumps({**table, "ranges": {**table["ranges"], "images": [0.0, 1.0]}}))
    with pytest.raises(ValueError, match="is not the calibration table"):
        quantize_export(tmp_path / "unused.onnx", tmp_path / "q.onnx", tampered)
    with pytest.raises(ValueError, match="format 1"):
        load_table(_write(tmp_path / "bad.json", {"ranges": []}))


def _write(p: Path, obj: Any) -> Path:
    p.write_text(json.dumps(obj))
    return p


# -- on the shared camera-trap images ---------------------------------------------------------


@needs_data
def test_catalog_entries_serve_each_precision(mdlite_artefacts: dict[str, Path]) -> None:
    import onnx

    assert {"onnx", "onnx_int8"} <= set(mdlite_artefacts)
    q_ops = {n.op_type for n in onnx.load(str(mdlite_artefacts["onnx_int8"])).graph.node}
    f_ops = {n.op_type for n in onnx.load(str(mdlite_artefacts["onnx"])).graph.node}
    assert "QuantizeLinear" in q_ops and "QuantizeLinear" not in f_ops
    for key in ("onnx", "onnx_int8"):
        meta = {p.key: p.value for p in onnx.load(str(mdlite_artefacts[key]), load_external_data=False).metadata_props}
        assert meta.get("sleuth.output") == "raw", key  # what tells the loader to do the grid decode
    assert _loaded(mdlite_artefacts).precision == "int8"  # no catalog entry: INT8 when it is there
    assert _loaded(mdlite_artefacts, precision="fp32").precision == "fp32"
    assert _loaded({"onnx": mdlite_artefacts["onnx"]}).precision == "fp32"


def test_converter_fingerprint_covers_the_quantizer() -> None:
    import sleuth.convert.onnx_export as onnx_export
    import sleuth.convert.quantize as quantize
    import sleuth.convert.yolox_tiny as yolox_tiny
    from sleuth.engine.catalog import _converter_fingerprint, sha256_file

    assert yolox_tiny.FINGERPRINT_MODULES == ("sleuth.convert.quantize", "sleuth.convert.onnx_export")
    own = sha256_file(yolox_tiny.__file__)
    h = hashlib.sha256(own.encode())
    h.update(sha256_file(quantize.__file__).encode())
    h.update(sha256_file(onnx_export.__file__).encode())
    assert _converter_fingerprint("sleuth.convert.yolox_tiny:convert") == h.hexdigest() != own
    assert _converter_fingerprint("sleuth.convert.tflite:convert") == sha256_file(
        Path(yolox_tiny.__file__).with_name("tflite.py")
    )  # converters without helper modules keep the plain digest


@needs_data
def test_catalog_precision_extra(settings: Any) -> None:
    pytest.importorskip("torch", reason="the MD-Lite converter needs the 'convert' extra (torch)")
    from sleuth.engine.catalog import ensure
    from sleuth.engine.registry import get_model, reset

    assert set(ensure("mdlite-fp32")) == {"weights", "onnx"}  # the FP32 entry needs no calibration table

    reset()
    try:
        assert get_model("mdlite").precision == "int8"  # type: ignore[attr-defined]
        assert get_model("mdlite-fp32").precision == "fp32"  # type: ignore[attr-defined]
    finally:
        reset()


@needs_data
def test_mixed_sizes_in_one_batch(mdlite_artefacts: dict[str, Path]) -> None:
    m = _loaded(mdlite_artefacts)
    items = [
        (CT / "speciesnet/domestic_cattle.jpg").read_bytes(),  # 4:3 -> 640x480
        (CT / "speciesnet/vehicle.jpg").read_bytes(),
    ]
    squirrels = sorted((CT / "pw_ft_squirrels").glob("*.jpg"))
    items.append(squirrels[1].read_bytes())  # 640x640
    prepared = [m.preprocess(b) for b in items]
    assert len({p.tensor.shape for p in prepared}) >= 2
    batched = [m.postprocess(r, p) for r, p in zip(m.predict_batch(prepared), prepared, strict=True)]
    for b, res in zip(items, batched, strict=True):
        one = m([b])[0]
        assert one.detections and len(one.detections) == len(res.detections)
        for d1, d2 in zip(one.detections, res.detections, strict=True):
            assert d1.conf == pytest.approx(d2.conf, abs=1e-4)
            assert d1.bbox == pytest.approx(d2.bbox, abs=1e-4)


@needs_data
def test_portrait_boxes_follow_the_rotation(mdlite_artefacts: dict[str, Path]) -> None:
    """A 4:3 frame rotated to 3:4 runs at 480x640; its boxes are the landscape boxes, rotated."""
    import io

    from PIL import Image

    from sleuth.models.detection import iou_matrix, norm_xywh_to_xyxy

    m = _loaded(mdlite_artefacts)
    data = (CT / "speciesnet/domestic_cattle.jpg").read_bytes()
    buf = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").transpose(Image.Transpose.ROTATE_90).save(buf, "JPEG", quality=95)
    land, port = m([data])[0], m([buf.getvalue()])[0]
    assert m.preprocess(buf.getvalue()).tensor.shape == (3, 640, 480)
    assert (port.width, port.height) == (land.height, land.width)
    # ROTATE_90 is counter-clockwise: (x, y) -> (y, 1 - x) in normalised coordinates
    rotated = [(y, 1 - x - w, h, w) for x, y, w, h in (d.bbox for d in land.detections if d.conf >= DET_CONF)]
    got = [d.bbox for d in port.detections if d.conf >= 0.1]
    assert rotated and got
    iou = iou_matrix(norm_xywh_to_xyxy(rotated), norm_xywh_to_xyxy(got))
    # the model sees a rotated picture, so the boxes differ a little (measured IoU 0.69-0.81); a wrong
    # mapping (axes swapped, or the padding taken as image) gives no overlap at all
    assert (iou.max(axis=1) >= 0.5).all(), iou.max(axis=1)
    assert len(set(iou.argmax(axis=1).tolist())) == len(rotated)  # one partner each


@needs_data
def test_rect_input_matches_square_input(mdlite_artefacts: dict[str, Path], manifest: dict[str, Any]) -> None:
    """FP32, same resize: dropping the padding rows changes boxes near the bottom edge only slightly."""
    square = _loaded(mdlite_artefacts, precision="fp32", rect=False, fast_resize=False)
    rect = _loaded(mdlite_artefacts, precision="fp32", rect=True, fast_resize=False)
    n, matched, worst_iou, worst_ds, new = _agreement(square, rect, _usable(manifest))
    print(f"\nrect vs square: {matched}/{n} matched, worst IoU {worst_iou:.3f}, worst |dscore| {worst_ds:.3f}")
    assert n >= 60 and matched == n and new == 0
    assert worst_iou >= 0.85 and worst_ds <= 0.06  # measured: 0.910 / 0.031


@needs_data
def test_fast_resize_matches_pil_resize(mdlite_artefacts: dict[str, Path], manifest: dict[str, Any]) -> None:
    pil = _loaded(mdlite_artefacts, precision="fp32", fast_resize=False)
    fast = _loaded(mdlite_artefacts, precision="fp32", fast_resize=True)
    n, matched, worst_iou, worst_ds, new = _agreement(pil, fast, _usable(manifest))
    print(f"\nfast vs PIL resize: {matched}/{n} matched, worst IoU {worst_iou:.3f}, worst |dscore| {worst_ds:.3f}")
    assert n >= 60 and matched >= n - 1 and new <= 1
    assert worst_iou >= 0.8 and worst_ds <= 0.2  # measured: 0.906 / 0.157 (one box; the rest move less)


@needs_data
def test_int8_agrees_with_fp32_on_held_out_images(mdlite_artefacts: dict[str, Path], manifest: dict[str, Any]) -> None:
    """The images at odd manifest positions were not used to calibrate (scripts/calibrate_mdlite.py)."""
    from sleuth.convert.quantize import load_table
    from sleuth.engine.runtime import int8_fast_path

    if not int8_fast_path():
        pytest.skip("this x86 CPU has no VNNI: its INT8 kernels may saturate, so 'auto' serves FP32 here")
    from sleuth.convert.yolox_tiny import calibration_table_path

    usable = _usable(manifest)
    held_out = usable[1::2]
    calibrated = {p.removeprefix("camera_traps/") for p in load_table(calibration_table_path())["images"]}
    assert calibrated == set(usable[0::2]) and not calibrated & set(held_out)
    fp32 = _loaded(mdlite_artefacts, precision="fp32")
    int8 = _loaded(mdlite_artefacts, precision="int8")
    n, matched, worst_iou, worst_ds, new = _agreement(fp32, int8, held_out)
    print(f"\nINT8 vs FP32, held out: {matched}/{n} matched, worst IoU {worst_iou:.3f}, worst |dscore| {worst_ds:.3f}")
    assert n >= 30 and matched == n and new == 0
    assert worst_iou >= 0.6 and worst_ds <= 0.15
