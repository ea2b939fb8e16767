"""TFLite -> ONNX converter: parity with the TFLite runtime's golden outputs."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from sleuth.convert.tflite import convert, convert_tflite
from sleuth.models.classifier import CoralClassifier, crop_box_px

from .helpers import CORAL, DATA, load_rgb, needs_data

pytestmark = needs_data

# REFERENCE_OUTPUTS.md: other TFLite kernel paths differ by up to 20 LSB; a port must keep top-1 and
# every top-5 probability within 0.1 (about 25 LSB of the 1/256 output scale).
TOL_LSB = 25


def _reference_input(ref_in: dict[str, Any], ref_res: dict[str, Any]) -> np.ndarray:
    img = load_rgb(DATA / ref_in["shared_path"])
    assert [img.shape[1], img.shape[0]] == ref_res["image_wh"]
    if "crop_bbox_xywh_norm" in ref_in:
        box = crop_box_px(img.shape[1], img.shape[0], ref_in["crop_bbox_xywh_norm"])
        assert list(box) == ref_res["crop_box_px_ltrb"]
        img = img[box[1] : box[3], box[0] : box[2]]
    return CoralClassifier().preprocess(img)


def _session(path: Path, optimise: bool = True) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    if not optimise:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def test_imagenet_parity_with_golden(coral_artefacts: dict[str, dict[str, Path]], reference: dict[str, Any]) -> None:
    sess = _session(coral_artefacts["coral-imagenet"]["onnx"])
    inputs = {i["id"]: i for i in reference["inputs"]}
    worst = 0
    for res in reference["results"]:
        x = _reference_input(inputs[res["input_id"]], res)
        # preprocessing is pinned exactly by the digest of the model input
        assert hashlib.sha256(x.tobytes()).hexdigest() == res["model_input_uint8_sha256"], res["input_id"]
        q = sess.run(None, {"input": x[None]})[0][0]
        assert q.dtype == np.uint8 and q.shape == (1001,)
        assert int(np.argmax(q)) == res["top5"][0]["index"], res["input_id"]
        for t in res["top5"]:
            if t["uint8"] > 0:  # zero entries are arbitrary ties in the reference
                diff = abs(int(q[t["index"]]) - t["uint8"])
                worst = max(worst, diff)
                assert diff <= TOL_LSB, (res["input_id"], t, int(q[t["index"]]))
    print(f"coral-imagenet ONNX vs TFLite golden: max top-5 diff {worst} LSB ({worst / 256:.4f} prob)")


@pytest.mark.parametrize("model", ["coral-imagenet", "coral-inat-birds"])
def test_fused_kernels_match_unfused_qdq(
    model: str, coral_artefacts: dict[str, dict[str, Path]], reference: dict[str, Any]
) -> None:
    """ORT's fused integer kernels vs the same QDQ graph run op by op in float (ORT_DISABLE_ALL).

    A gross-error check for the birds head, which has no golden outputs: the unfused path rounds
    every layer differently (as TFLite's own kernel paths do, up to 20 LSB apart), so the bound is
    0.15 in probability; a wrong padding, layout or scale would move the outputs far more.
    """
    onnx_path = coral_artefacts[model]["onnx"]
    fused, plain = _session(onnx_path), _session(onnx_path, optimise=False)
    inputs = {i["id"]: i for i in reference["inputs"]}
    batch = np.stack([_reference_input(inputs[r["input_id"]], r) for r in reference["results"]])
    a = fused.run(None, {"input": batch})[0].astype(int)
    b = plain.run(None, {"input": batch})[0].astype(int)
    assert (np.argmax(a, axis=1) == np.argmax(b, axis=1)).all()
    print(f"{model}: fused vs unfused QDQ max diff {np.abs(a - b).max()} LSB")
    assert np.abs(a - b).max() <= 38
    # batched == one by one
    single = np.concatenate([fused.run(None, {"input": x[None]})[0] for x in batch]).astype(int)
    assert np.abs(single - a).max() <= 1


def test_convert_is_deterministic(tmp_path: Path) -> None:
    src = CORAL / "mobilenet_v2_1.0_224_inat_bird_quant.tflite"
    out1 = convert({"weights": src}, tmp_path / "a")["onnx"]
    out2 = convert({"weights": src}, tmp_path / "b")["onnx"]
    assert out1.read_bytes() == out2.read_bytes()
    import onnx

    m = onnx.load(str(out1))
    meta = {p.key: p.value for p in m.metadata_props}
    assert meta["source_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert float(meta["output_scale"]) == 1 / 256


def test_convert_rejects_non_tflite(tmp_path: Path) -> None:
    bad = tmp_path / "x.tflite"
    bad.write_bytes(b"not a flatbuffer at all" * 4)
    with pytest.raises(ValueError):
        convert_tflite(bad, tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="weights"):
        convert({}, tmp_path)
