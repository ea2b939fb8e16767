"""run_pipeline end to end with a real (tiny) ONNX classifier built with onnx.helper and deterministic
detector/relabeler functions; expectations are computed independently with numpy from the drawn scenes."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from PIL import Image, ImageOps

from sleuth.pipelines import taxonomy as tx
from sleuth.pipelines.wildlife import Detection, ImageOptions, crop_box, ensemble_image, run_pipeline
from sleuth.pipelines.wildlife.ensemble import classes_wanted

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
MANIFEST = DATA / "camera_traps" / "manifest.json"

RED_FOX = "aaaa0005-0000-4000-8000-000000000005;mammalia;carnivora;canidae;vulpes;vulpes;red fox"
MULE_DEER = "aaaa0001-0000-4000-8000-000000000001;mammalia;cetartiodactyla;cervidae;odocoileus;hemionus;mule deer"
CANIDAE = "aaaa0099-0000-4000-8000-000000000099;mammalia;carnivora;canidae;;;canine family"
LABELS = [RED_FOX, MULE_DEER, tx.VEHICLE, tx.BLANK]
# logits = mean_rgb (0..1) @ W + B
W = np.array([[10.0, 0.0, 0.0, -5.0], [0.0, 10.0, 0.0, -5.0], [0.0, 0.0, 10.0, -5.0]], dtype=np.float32)
B = np.array([0.0, 0.0, 0.0, 3.0], dtype=np.float32)
SIZE = 16


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> ort.InferenceSession:
    x = helper.make_tensor_value_info("crops", TensorProto.FLOAT, ["N", 3, SIZE, SIZE])
    y = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 4])
    nodes = [
        helper.make_node("ReduceMean", ["crops"], ["mean"], axes=[2, 3], keepdims=0),
        helper.make_node("MatMul", ["mean", "W"], ["mm"]),
        helper.make_node("Add", ["mm", "B"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    inits = [
        helper.make_tensor("W", TensorProto.FLOAT, W.shape, W.flatten().tolist()),
        helper.make_tensor("B", TensorProto.FLOAT, B.shape, B.tolist()),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "colour_classifier", [x], [y], inits),
        opset_imports=[helper.make_opsetid("", 13)],
    )
    onnx.checker.check_model(model)
    path = tmp_path_factory.mktemp("onnx") / "colour.onnx"
    onnx.save(model, path)
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


class OnnxClassifier:
    """Resize each crop to 16x16, run the ONNX model, return the top-k (label, score)."""

    def __init__(self, session: ort.InferenceSession, top_k: int = 4) -> None:
        self.session, self.top_k, self.calls, self.crops_seen = session, top_k, 0, 0

    def __call__(self, crops: Sequence[np.ndarray]) -> list[list[tuple[str, float]]]:
        self.calls += 1
        self.crops_seen += len(crops)
        batch = np.stack(
            [
                np.asarray(Image.fromarray(np.asarray(c, dtype=np.uint8)).resize((SIZE, SIZE)), dtype=np.float32)
                for c in crops
            ]
        )
        probs = self.session.run(None, {"crops": batch.transpose(0, 3, 1, 2) / 255.0})[0]
        out = []
        for p in probs:
            order = np.argsort(-p, kind="stable")[: self.top_k]
            out.append([(LABELS[i], float(p[i])) for i in order])
        return out


class Pack:
    """A classifier pack: classify(crops, top_k), labels, geofence, has_range_data."""

    def __init__(self, clf: OnnxClassifier, geofence: dict[str, Any] | None) -> None:
        self.clf, self.geofence, self.has_range_data = clf, geofence, bool(geofence)
        self.labels = [*LABELS, CANIDAE]
        self.top_ks: list[int] = []

    def classify(self, crops: Sequence[np.ndarray], top_k: int = 5) -> list[list[tuple[str, float]]]:
        self.top_ks.append(top_k)
        return [r[:top_k] for r in self.clf(crops)]


def expected_probs(rgb: tuple[int, int, int]) -> np.ndarray:
    logits = np.array(rgb, dtype=np.float64) / 255.0 @ W.astype(np.float64) + B
    e = np.exp(logits - logits.max())
    return e / e.sum()


# scenes: solid rectangles on a grey background; (colour, (x0, y0, x1, y1) in pixels, detector conf)
H, WIDTH = 120, 160
SCENES: list[list[tuple[tuple[int, int, int], tuple[int, int, int, int], float]]] = [
    [((220, 40, 0), (10, 10, 50, 60), 0.9), ((30, 210, 20), (80, 30, 150, 100), 0.8)],
    [((150, 150, 0), (20, 20, 100, 90), 0.75)],  # equal fox/deer evidence -> roll-up to the class
    [
        ((0, 0, 230), (5, 60, 60, 115), 0.85),
        ((200, 0, 10), (100, 10, 150, 40), 0.1),
    ],  # 2nd is under threshold
    [],  # blank
]


def draw(scene: list[tuple[tuple[int, int, int], tuple[int, int, int, int], float]]) -> np.ndarray:
    img = np.full((H, WIDTH, 3), 90, dtype=np.uint8)
    for colour, (x0, y0, x1, y1), _ in scene:
        img[y0:y1, x0:x1] = colour
    return img


def detect(images: Sequence[Any]) -> list[list[Detection]]:
    """Deterministic detector: one box per saturated colour blob; conf looked up from the scene table."""
    out = []
    for img in images:
        arr = np.asarray(img)
        dets = []
        grey = np.all(arr == 90, axis=2)
        colours = {tuple(int(v) for v in px) for px in arr[~grey].reshape(-1, 3)}
        for colour in sorted(colours):
            ys, xs = np.nonzero(np.all(arr == colour, axis=2))
            conf = next(c for s in SCENES for col, _, c in s if col == colour)
            h, w = arr.shape[:2]
            x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
            dets.append(Detection(1, conf, [x0 / w, y0 / h, (x1 - x0) / w, (y1 - y0) / h]))
        out.append(sorted(dets, key=lambda d: -d.conf))
    return out


def relabel_blue_as_vehicle(images: Sequence[Any], dets: Sequence[Sequence[Detection]]) -> list[list[Detection]]:
    out = []
    for img, per in zip(images, dets, strict=True):
        new = []
        for d in per:
            crop = crop_box(img, d.bbox)
            blue = crop[..., 2].mean() > 200 and crop[..., 0].mean() < 50
            new.append(Detection(3 if blue else d.category, d.conf, d.bbox))
        out.append(new)
    return out


def expected(options: ImageOptions, relabel: bool, **kw: Any) -> list[list[dict[str, Any]]]:
    res = []
    for scene in SCENES:
        dets, cls = [], []
        for colour, (x0, y0, x1, y1), conf in sorted(scene, key=lambda s: -s[2]):
            cat = 3 if (relabel and colour[2] > 200 and colour[0] < 50) else 1
            dets.append(Detection(cat, conf, [x0 / WIDTH, y0 / H, (x1 - x0) / WIDTH, (y1 - y0) / H]))
            p = expected_probs(colour)
            cls.append([(LABELS[i], float(p[i])) for i in np.argsort(-p, kind="stable")])
        res.append([a.to_dict() for a in ensemble_image(dets, cls, options, **kw)])
    return res


def close(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6)
    return bool(a == b)


def test_pipeline_matches_independent_computation(session: ort.InferenceSession) -> None:
    images = [draw(s) for s in SCENES]
    clf = OnnxClassifier(session)
    opts = ImageOptions(top_candidate=2)
    got = run_pipeline(images, detect, relabel_blue_as_vehicle, clf, opts, batch_size=2)
    assert close([[a.to_dict() for a in per] for per in got], expected(opts, relabel=True))
    # the box under threshold was never classified; crops were batched by 2 across images
    assert clf.crops_seen == 4 and clf.calls == 2
    labels = [[a.label for a in per] for per in got]
    assert labels == [["red fox", "mule deer"], ["mammalia class"], ["vehicle"], []]
    assert got[2][0].source == "detector" and got[2][0].score == 0.85  # relabelled -> rule 2b
    assert got[0][0].score == pytest.approx(expected_probs((220, 40, 0))[0], rel=1e-5)


def test_pipeline_without_relabeler_and_batch_size_invariance(session: ort.InferenceSession) -> None:
    images = [draw(s) for s in SCENES]
    opts = ImageOptions(threshold=0.3)
    runs = [
        [
            [a.to_dict() for a in per]
            for per in run_pipeline(images, detect, None, OnnxClassifier(session), opts, batch_size=b)
        ]
        for b in (1, 3, 64)
    ]
    assert close(runs[0], runs[1]) and close(runs[0], runs[2])
    assert close(runs[0], expected(opts, relabel=False))
    blue = runs[0][2][0]
    assert blue["label"] == "vehicle"  # an animal box the classifier calls vehicle
    assert blue["score"] == pytest.approx(expected_probs((0, 0, 230))[2], rel=1e-5)


def test_pipeline_classify_false_never_calls_the_classifier(session: ort.InferenceSession) -> None:
    clf = OnnxClassifier(session)
    images = [draw(s) for s in SCENES]
    got = run_pipeline(images, detect, relabel_blue_as_vehicle, clf, ImageOptions(classify=False))
    assert clf.calls == 0
    assert [[(a.label, a.score) for a in per] for per in got] == [
        [("animal", 0.9), ("animal", 0.8)],
        [("animal", 0.75)],
        [("vehicle", 0.85)],
        [],
    ]


def test_pipeline_with_a_pack_uses_its_labels_geofence_and_top_k(session: ort.InferenceSession) -> None:
    fence: dict[str, Any] = {"mammalia;carnivora;canidae;vulpes;vulpes": {"block": {"AUS": []}}}
    pack = Pack(OnnxClassifier(session), fence)
    images = [draw(SCENES[0])]
    got = run_pipeline(images, detect, None, pack, ImageOptions(country="Australia", top_candidate=7))
    assert pack.top_ks == [classes_wanted(7)]  # more than 7 + 1: several classes may name one taxon
    fox = got[0][0]
    assert fox.label == "canine family"  # the pack's own label for the family, via the geofence roll-up
    assert fox.source == "classifier+geofence+rollup_to_family"
    assert [c.label for c in fox.top_candidates or []] == [
        "mule deer",
        "vehicle",
    ]  # fenced fox and blank left out
    no_fence = run_pipeline(images, detect, None, Pack(OnnxClassifier(session), None), ImageOptions(country="AUS"))
    assert no_fence[0][0].label == "red fox"


def test_pipeline_accepts_other_detection_shapes_and_reports_bad_output(
    session: ort.InferenceSession,
) -> None:
    class Result:
        def __init__(self, dets: list[Any]) -> None:
            self.detections = dets

    def md_detector(images: Sequence[Any]) -> list[Result]:
        return [Result([{"category": "1", "conf": d.conf, "bbox": d.bbox} for d in per]) for per in detect(images)]

    images = [draw(SCENES[0]), Image.fromarray(draw(SCENES[1]))]
    a = run_pipeline(images, md_detector, None, OnnxClassifier(session), ImageOptions())
    b = run_pipeline([draw(SCENES[0]), draw(SCENES[1])], detect, None, OnnxClassifier(session), ImageOptions())
    assert close([[x.to_dict() for x in p] for p in a], [[x.to_dict() for x in p] for p in b])
    with pytest.raises(ValueError, match="detector returned 1 results for 2 images"):
        run_pipeline(images, lambda ims: [[]], None, None, ImageOptions())
    with pytest.raises(ValueError, match="classifier returned 0 results"):
        run_pipeline(images, md_detector, None, lambda crops: [], ImageOptions())
    with pytest.raises(ValueError, match="cannot crop"):
        crop_box("not an image", [0, 0, 1, 1])


def test_crop_box_clamps_and_keeps_at_least_one_pixel() -> None:
    img = np.arange(10 * 20 * 3, dtype=np.uint8).reshape(10, 20, 3)
    assert crop_box(img, [0.0, 0.0, 1.0, 1.0]).shape == (10, 20, 3)
    assert crop_box(img, [0.5, 0.5, 0.0, 0.0]).shape == (1, 1, 3)
    assert crop_box(img, [-0.5, -0.5, 2.0, 2.0]).shape == (10, 20, 3)
    assert crop_box(img, [0.98, 0.95, 0.5, 0.5]).shape == (1, 1, 3)
    np.testing.assert_array_equal(crop_box(img, [0.25, 0.2, 0.5, 0.5]), img[2:7, 5:15])


@pytest.mark.skipif(not MANIFEST.is_file(), reason="../shared/data not present")
def test_pipeline_on_real_camera_trap_images(session: ort.InferenceSession) -> None:
    """Real SpeciesNet test images with their reference MegaDetector boxes as the detector output."""
    records = {r["path"]: r for r in json.loads(MANIFEST.read_text())["images"]}
    paths = ["speciesnet/african_elephants.jpg", "speciesnet/human.jpg", "speciesnet/blank.jpg"]
    images = []
    for p in paths:
        with Image.open(DATA / "camera_traps" / p) as im:
            images.append(np.asarray(ImageOps.exif_transpose(im).convert("RGB")))

    def manifest_detector(ims: Sequence[Any]) -> list[list[Detection]]:
        assert len(ims) == len(paths)
        return [[Detection(int(b["md_category"]), b["conf"], b["bbox"]) for b in records[p]["boxes"]] for p in paths]

    opts = ImageOptions(threshold=0.2)
    clf = OnnxClassifier(session)
    got = run_pipeline(images, manifest_detector, None, clf, opts)
    n_over = [sum(b["conf"] >= 0.2 for b in records[p]["boxes"]) for p in paths]
    assert clf.crops_seen == sum(n_over)
    for per, p, n, img in zip(got, paths, n_over, images, strict=True):
        boxes = [b for b in records[p]["boxes"] if b["conf"] >= 0.2]
        assert len(per) <= n
        for a in per:
            assert a.bbox in [b["bbox"] for b in boxes]
            assert a.score >= 0.2
            # the classifier saw exactly the PIL crop of the box
            x, y, w, h = a.bbox
            hh, ww = img.shape[:2]
            left, top = math.floor(x * ww), math.floor(y * hh)
            right, bottom = math.ceil((x + w) * ww), math.ceil((y + h) * hh)
            pil = np.asarray(Image.fromarray(img).crop((left, top, min(right, ww), min(bottom, hh))))
            np.testing.assert_array_equal(crop_box(img, a.bbox), pil)
    # the person box of human.jpg is a confident MD person detection -> "human" by rule 1a
    person = [b for b in records["speciesnet/human.jpg"]["boxes"] if b["md_category"] == "2" and b["conf"] > 0.7]
    if person:
        assert any(a.label == "human" and a.source == "detector" for a in got[1])


def test_pack_labels_that_do_not_name_taxa_are_not_used_for_rollups(session: ort.InferenceSession) -> None:
    """A species-level label with empty genus/species (WordNet's "dingo") must not name the family."""
    fence: dict[str, Any] = {"mammalia;carnivora;canidae;vulpes;vulpes": {"block": {"AUS": []}}}
    pack = Pack(OnnxClassifier(session), fence)
    pack.labels = [*pack.labels, "dddd0000-0000-4000-8000-000000000001;mammalia;carnivora;canidae;;;dingo"]
    pack.labels = [lab for lab in pack.labels if not lab.endswith(";canine family")]
    pack.labels.insert(0, "dddd0000-0000-4000-8000-000000000001;mammalia;carnivora;canidae;;;dingo")
    pack.labels_name_taxa = False
    got = run_pipeline([draw(SCENES[0])], detect, None, pack, ImageOptions(country="Australia"))
    assert got[0][0].label == "canidae family"
    pack.labels_name_taxa = True
    got = run_pipeline([draw(SCENES[0])], detect, None, pack, ImageOptions(country="Australia"))
    assert got[0][0].label == "dingo"  # what the old behaviour produced
