"""Face detection, image results, visualisations on the shared MesoNet face crops."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from .helpers import DATA, needs_data, rank_auc

pytestmark = needs_data


def _manifest() -> list[dict]:
    return json.loads((DATA / "faces/manifest.json").read_text())["files"]


def test_mtcnn_finds_one_face_per_crop(detector) -> None:
    from sleuth.models.faces import decode_rgb
    from sleuth.pipelines.faces import detect_faces

    for f in _manifest():
        rgb = decode_rgb((DATA / "faces" / f["path"]).read_bytes())
        faces = detect_faces(detector, rgb)
        assert len(faces) == 1, f["path"]
        face = faces[0]
        assert face.score > 0.95
        x, y, w, h = face.xywh
        # the crops are face-centred and tightly framed
        assert abs((x + w / 2) - rgb.shape[1] / 2) < 0.2 * rgb.shape[1]
        assert 0.4 * rgb.shape[1] < max(w, h) < 1.3 * rgb.shape[1]
        (lex, ley), (rex, rey), (nx, ny), (lmx, lmy), (rmx, rmy) = face.landmarks
        assert lex < rex and lmx < rmx  # left/right order
        assert max(ley, rey) < ny < min(lmy, rmy)  # eyes above nose above mouth


def test_no_face_on_synthetic(detector) -> None:
    from sleuth.models.faces import decode_rgb
    from sleuth.pipelines.faces import detect_faces

    rgb = decode_rgb((DATA / "models/reference_inputs/synthetic_gradient_800x600.png").read_bytes())
    assert detect_faces(detector, rgb) == []


def test_image_results_and_auc(detector, mesonet) -> None:
    from sleuth.pipelines.deepfake_vision import analyze_image

    pos, neg = [], []
    for f in _manifest():
        r = analyze_image((DATA / "faces" / f["path"]).read_bytes(), detector, mesonet)
        assert r["type"] == "facial" and r["image"] is None
        assert len(r["children"]) == 1
        child = r["children"][0]
        assert child["type"] == "face" and len(child["box"]) == 4
        assert 0.0 <= r["score"] <= 1.0 and r["label"] == ("fake" if r["score"] >= 0.5 else "real")
        (pos if f["label"] == "fake" else neg).append(r["score"])
    auc = rank_auc(pos, neg)
    print(f"face-crop AUC (detector crop -> mesonet ensemble): {auc:.3f} fake={pos} real={neg}")
    assert auc == 1.0


def test_image_without_face_is_not_real(detector, mesonet) -> None:
    from sleuth.pipelines.deepfake_vision import analyze_image

    r = analyze_image((DATA / "models/reference_inputs/synthetic_pattern_256.png").read_bytes(), detector, mesonet)
    assert r["label"] == "unknown" and r["score"] is None and r["children"] == []
    assert "no face" in r["description"]


@pytest.mark.parametrize("data", [b"", b"\x89PNG\r\n\x1a\n garbage", b"GIF89a" + b"\x00" * 10])
def test_bad_image_raises_value_error(detector, mesonet, data: bytes) -> None:
    from sleuth.pipelines.deepfake_vision import analyze_image

    with pytest.raises(ValueError):
        analyze_image(data, detector, mesonet)


def test_truncated_jpeg_clean(detector, mesonet) -> None:
    from sleuth.pipelines.deepfake_vision import analyze_image

    data = (DATA / "faces/df/df00204.jpg").read_bytes()
    try:
        r = analyze_image(data[: len(data) // 3], detector, mesonet)
    except ValueError:
        return
    assert r["label"] in {"fake", "real", "unknown"}


def test_heatmap_and_timeline(detector, mesonet) -> None:
    from PIL import Image

    from sleuth.models.faces import decode_rgb
    from sleuth.pipelines.deepfake_vision import analyze_rgb
    from sleuth.pipelines.visualize import heatmap_png, occlusion_map, timeline_png

    rgb = decode_rgb((DATA / "faces/df/df00204.jpg").read_bytes())
    _, faces = analyze_rgb(rgb, detector, mesonet)
    from sleuth.pipelines.faces import crop_face

    sal = occlusion_map(crop_face(rgb, faces[0], align=False), mesonet)
    assert sal.shape == (8, 8) and np.isfinite(sal).all() and np.abs(sal).max() > 1e-3
    png = heatmap_png(rgb, faces, mesonet)
    im = Image.open(io.BytesIO(png))
    assert im.format == "PNG" and im.size == (rgb.shape[1], rgb.shape[0])
    arr = np.asarray(im.convert("RGB")).astype(int)
    assert np.abs(arr - rgb.astype(int)).max() > 30  # something was drawn
    tl = Image.open(
        io.BytesIO(
            timeline_png(
                [
                    {"start": 0, "end": 2, "score": 0.8},
                    {"start": 2, "end": 4, "score": None},
                    {"start": 4, "end": 6, "score": 0.1},
                ]
            )
        )
    )
    assert tl.format == "PNG" and tl.size == (800, 200)
    px = np.asarray(tl.convert("RGB"))
    assert ((px[..., 0] > 200) & (px[..., 1] < 80)).any()  # red bar (>= 0.5)
    assert ((px[..., 1] > 140) & (px[..., 0] < 80)).any()  # green bar (< 0.5)
    assert Image.open(io.BytesIO(timeline_png([]))).size == (800, 200)


def test_iou_tracker() -> None:
    from sleuth.models.faces import Face
    from sleuth.pipelines.faces import IoUTracker, iou

    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    t = IoUTracker()
    a, b = Face((0, 0, 100, 100), 1.0), Face((300, 0, 400, 100), 1.0)
    assert t.update(0, [a, b]) == [0, 1]
    assert t.update(1, [Face((310, 5, 410, 105), 1.0), Face((5, 5, 105, 105), 1.0)]) == [1, 0]
    assert t.update(5, [Face((5, 5, 105, 105), 1.0)]) == [2]  # gap too long: new track
