"""YOLOX-nano COCO: parity with the upstream wrapper, COCO->MD mapping, MD-Lite fusion."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import pytest

from sleuth.models.detection import Detection
from sleuth.models.yolox_nano import COCO_NAMES, COCO_TO_MD, YoloxNanoCoco, fuse_person_vehicle

from .conftest import DATA, MODELS, needs_data


@needs_data
def test_labels_and_mapping() -> None:
    labels = (MODELS / "yolox_nano_coco" / "coco_labels.txt").read_text().splitlines()
    assert tuple(labels) == COCO_NAMES
    names = {COCO_NAMES[k]: v for k, v in COCO_TO_MD.items()}
    assert names["person"] == "2"
    assert {names[n] for n in ("bicycle", "car", "motorcycle", "bus", "truck", "train", "boat", "airplane")} == {"3"}
    animals = ("bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe")
    assert {names[n] for n in animals} == {"1"}
    assert len(COCO_TO_MD) == 19


@needs_data
@pytest.mark.parametrize("class_agnostic,key", [(True, "detections"), (False, "detections_class_aware_nms")])
def test_parity_with_upstream_wrapper(yolox_nano_artefacts: Any, class_agnostic: bool, key: str) -> None:
    ref = json.loads((MODELS / "yolox_nano_coco" / "reference_outputs.json").read_text())
    m = YoloxNanoCoco(class_agnostic=class_agnostic, decode_max_side=None)
    m.load(yolox_nano_artefacts)
    tol = ref["tolerances"]["recommended_for_a_port"]
    worst_s = worst_b = 0.0
    for r in ref["results"]:
        p = m.preprocess((DATA / r["shared_path"]).read_bytes())
        digest = hashlib.sha256(p.tensor[None].astype("<f4").tobytes()).hexdigest()
        assert digest == r["preprocessed"]["model_input_sha256_float32le"], r["shared_path"]
        raw = m.predict_batch([p])[0]
        assert (
            abs(float((raw[:, 4:5] * raw[:, 5:]).max()) - r["raw_output"]["max_score_obj_x_cls"])
            <= tol["raw_max_score_abs"]
        )
        dets = m.coco_detections(raw, p)
        assert [d.class_id for d in dets] == [g["class_id"] for g in r[key]], r["shared_path"]
        for d, g in zip(dets, r[key], strict=True):
            x1, y1, x2, y2 = d.xyxy
            box = [x1 / p.width, y1 / p.height, (x2 - x1) / p.width, (y2 - y1) / p.height]
            worst_s = max(worst_s, abs(d.score - g["score"]))
            worst_b = max(worst_b, float(np.abs(np.array(box) - g["bbox_xywh_norm"]).max()))
    print(f"\nYOLOX-nano parity ({key}): max |score diff| {worst_s:.2e}, max |bbox diff| {worst_b:.2e}")
    assert worst_s <= tol["detection_score_abs"] and worst_b <= tol["detection_bbox_norm_abs"]


@needs_data
def test_md_categories_in_results(yolox_nano: Any) -> None:
    human, vehicle = (
        yolox_nano([(DATA / f"camera_traps/speciesnet/{n}.jpg").read_bytes()])[0] for n in ("human", "vehicle")
    )
    assert [d.category for d in human.detections] == ["2"] and human.detections[0].source_label == "person"
    assert [d.category for d in vehicle.detections] == ["3"] and vehicle.detections[0].source_label == "car"


def _det(cat: str, conf: float, box: tuple[float, float, float, float], label: str | None = None) -> Detection:
    return Detection(cat, conf, box, label)


def test_fusion_rule_units() -> None:
    md = [_det("1", 0.8, (0.1, 0.1, 0.2, 0.4)), _det("1", 0.6, (0.6, 0.6, 0.1, 0.1))]
    coco = [
        _det("2", 0.9, (0.11, 0.12, 0.19, 0.37), "person"),  # same object as md[0]
        _det("3", 0.7, (0.5, 0.5, 0.45, 0.45), "car"),  # big box around md[1]: areas differ > 3x
        _det("3", 0.3, (0.0, 0.8, 0.1, 0.1), "truck"),  # below min_conf: ignored
    ]
    out = fuse_person_vehicle(md, coco)
    assert [(d.category, d.conf) for d in out] == [("2", 0.8), ("3", 0.7), ("1", 0.6)]
    assert out[0].bbox == md[0].bbox and out[0].source_label == "person"
    # a stronger COCO animal on the same box keeps it an animal
    coco2 = [*coco, _det("1", 0.95, (0.1, 0.1, 0.2, 0.4), "dog")]
    assert fuse_person_vehicle(md, coco2)[0].category == "1"
    # containment with similar areas counts as the same object
    md3 = [_det("1", 0.5, (0.2, 0.2, 0.3, 0.5))]
    coco3 = [_det("2", 0.6, (0.22, 0.25, 0.25, 0.4), "person")]
    assert [d.category for d in fuse_person_vehicle(md3, coco3)] == ["2"]
    assert fuse_person_vehicle(md3, []) == md3
    # a small box inside a person box is a part of that person (areas 4.5x apart); inside a vehicle it
    # stays an animal; and a stronger YOLOX-nano animal on it keeps it an animal inside a person too
    part = _det("1", 0.4, (0.25, 0.3, 0.1, 0.15))
    person = _det("2", 0.8, (0.2, 0.2, 0.25, 0.27), "person")
    car = _det("3", 0.8, (0.2, 0.2, 0.25, 0.27), "car")
    assert [(d.category, d.conf) for d in fuse_person_vehicle([part], [person])] == [("2", 0.4)]
    assert [d.category for d in fuse_person_vehicle([part], [car]) if d.conf == 0.4] == ["1"]
    dog = _det("1", 0.9, (0.25, 0.3, 0.1, 0.15), "dog")
    assert [d.category for d in fuse_person_vehicle([part], [person, dog]) if d.conf == 0.4] == ["1"]


@needs_data
def test_fusion_on_shared_person_vehicle_images(mdlite_full: Any, yolox_nano: Any, manifest: dict[str, Any]) -> None:
    """On the shared set's person/vehicle images, report what fusion recovers (printed numbers)."""
    from sleuth.models.detection import iou_matrix, norm_xywh_to_xyxy

    found = total = 0
    wrong_animals = 0
    for r in manifest["images"]:
        if r["kind"] in ("invalid", "blank"):
            continue
        data = (DATA / "camera_traps" / r["path"]).read_bytes()
        fused = fuse_person_vehicle(mdlite_full([data])[0].detections, yolox_nano([data])[0].detections)
        fused = [d for d in fused if d.conf >= 0.25]
        refs = [b for b in r["boxes"] if b["md_category"] in ("2", "3") and (b["conf"] or 1) >= 0.2]
        if r["kind"] == "animal":
            wrong_animals += sum(d.category != "1" for d in fused)
        if not refs:
            continue
        iou = iou_matrix(norm_xywh_to_xyxy([b["bbox"] for b in refs]), norm_xywh_to_xyxy([d.bbox for d in fused]))
        for i, b in enumerate(refs):
            total += 1
            found += any(fused[j].category == b["md_category"] for j in np.flatnonzero(iou[i] >= 0.5))
    print(
        f"\nfusion: person/vehicle reference boxes found with the right category {found}/{total}; "
        f"person/vehicle boxes on animal-only images {wrong_animals}"
    )
    assert total >= 4 and found >= 2  # human.jpg and vehicle.jpg at least
    assert wrong_animals <= 2
