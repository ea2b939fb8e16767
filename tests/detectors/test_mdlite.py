"""MD-Lite (zamba YOLOX-tiny) parity with the golden outputs of zamba 2.7.2."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .conftest import DATA, MODELS, needs_data

pytestmark = needs_data


@pytest.fixture(scope="session")
def golden() -> dict[str, Any]:
    return json.loads((MODELS / "zamba_mdlite" / "reference_outputs.json").read_text())


def test_model_input_digests_match_exactly(mdlite_full: Any, golden: dict[str, Any]) -> None:
    for r in golden["results"]:
        p = mdlite_full.preprocess((DATA / r["shared_path"]).read_bytes())
        hwc = p.tensor.transpose(1, 2, 0).astype(np.uint8)
        assert hashlib.sha256(hwc.tobytes()).hexdigest() == r["preprocessed"]["padded_uint8_hwc_sha256"]
        assert p.ratio_x == pytest.approx(r["preprocessed"]["ratio"], rel=1e-6)


def test_detections_match_golden(mdlite_full: Any, golden: dict[str, Any]) -> None:
    tol_s = golden["tolerances"]["recommended_for_a_port"]["detection_score_abs"]
    tol_b = golden["tolerances"]["recommended_for_a_port"]["detection_bbox_norm_abs"]
    items = [(DATA / r["shared_path"]).read_bytes() for r in golden["results"]]
    prepared = [mdlite_full.preprocess(b) for b in items]
    raws = mdlite_full.predict_batch(prepared)  # one batch of 10: also checks batching
    worst_s = worst_b = 0.0
    for r, raw, p in zip(golden["results"], raws, prepared, strict=True):
        # rows after the grid decode (cx, cy, w, h, obj, cls): top row and its score
        scores = raw[:, 4] * raw[:, 5]
        ro = r["raw_output"]
        assert raw.shape == (8400, 6)
        assert abs(float(scores.max()) - ro["max_score_obj_x_cls"]) <= 1e-4
        assert int(scores.argmax()) == ro["argmax_score_row"]
        np.testing.assert_allclose(raw[ro["argmax_score_row"]], ro["top5_rows"][0]["values"], rtol=1e-4, atol=2e-3)
        res = mdlite_full.postprocess(raw, p)
        assert (res.width, res.height) == (r["decoded_image"]["width"], r["decoded_image"]["height"])
        assert len(res.detections) == len(r["detections"]), r["shared_path"]
        for d, g in zip(res.detections, r["detections"], strict=True):
            assert d.category == "1" and d.label == "animal"
            worst_s = max(worst_s, abs(d.conf - g["score"]))
            worst_b = max(worst_b, float(np.abs(np.array(d.bbox) - g["bbox_xywh_norm"]).max()))
    print(f"\nMD-Lite parity: max |score diff| {worst_s:.2e}, max |bbox diff| {worst_b:.2e}")
    assert worst_s <= tol_s and worst_b <= tol_b


def test_single_vs_batched_and_unclipped_boxes(mdlite_full: Any) -> None:
    data = (DATA / "camera_traps/speciesnet/vehicle.jpg").read_bytes()
    one = mdlite_full([data])[0]
    two = mdlite_full([data, (DATA / "camera_traps/speciesnet/blank.jpg").read_bytes()])
    assert [d.conf for d in one.detections] == pytest.approx([d.conf for d in two[0].detections], abs=1e-5)
    assert two[1].detections == []
    assert min(d.bbox[0] for d in one.detections) < 0  # golden: x = -0.054, not clipped


def test_draft_decode_stays_close(mdlite_artefacts: dict[str, Path], mdlite_full: Any, golden: dict[str, Any]) -> None:
    """Serving default (JPEG DCT-domain decode at >= 640 px): same objects, small score changes."""
    from sleuth.models.detection import iou_matrix, norm_xywh_to_xyxy
    from sleuth.models.mdlite import MegadetectorLite

    fast = MegadetectorLite(rect=False, precision="fp32", fast_resize=False)  # draft decode only
    fast.load(mdlite_artefacts)
    worst = 0.0
    for r in golden["results"]:
        res = fast([(DATA / r["shared_path"]).read_bytes()])[0]
        g = [x for x in r["detections"] if x["score"] >= 0.3]
        if not g:
            continue
        iou = iou_matrix(
            norm_xywh_to_xyxy([x["bbox_xywh_norm"] for x in g]), norm_xywh_to_xyxy([d.bbox for d in res.detections])
        )
        for i, x in enumerate(g):
            j = int(iou[i].argmax())
            assert iou[i, j] >= 0.7, r["shared_path"]
            worst = max(worst, abs(res.detections[j].conf - x["score"]))
    print(f"\nMD-Lite draft decode: max |score diff| of matched golden boxes {worst:.3f}")
    assert worst < 0.06


def test_bn_eps_and_strict_state_dict(mdlite_artefacts: dict[str, Path]) -> None:
    torch = pytest.importorskip("torch")
    from sleuth.convert.yolox_tiny import load_checkpoint

    model = load_checkpoint(mdlite_artefacts["weights"])  # strict=True inside
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(m.eps == 1e-3 for m in bns)


def test_bad_items_raise_value_error(mdlite_full: Any) -> None:
    with pytest.raises(ValueError):
        mdlite_full.preprocess(b"")
    with pytest.raises(ValueError):
        mdlite_full.preprocess(b"GIF89a-not-really")
    with pytest.raises(ValueError):
        mdlite_full.preprocess(12)
