"""YOLOX-nano (COCO, 80 classes, 416 px ONNX) as a person/vehicle/animal detector.

Pipeline (matching the wrapper that ships this .onnx, Kazuhito00/Image-Processing-Node-Editor):

* preprocess: upright image as **BGR**; ``r = min(416 / H, 416 / W)``; ``cv2.resize`` to
  ``(int(W * r), int(H * r))`` with ``INTER_LINEAR``; top-left on a 416x416 canvas filled with 114;
  raw 0..255 float CHW;
* decode: grids 52x52 / 26x26 / 13x13 (strides 8/16/32, row-major), ``xy = (o + grid) * stride``,
  ``wh = exp(o) * stride``, ``score = obj * class_prob`` (both already sigmoid); boxes / r;
* NMS: class-agnostic by default (argmax class per anchor, ``score > 0.25``, greedy IoU 0.45 with
  the legacy +1 pixel area), or class-wise (``class_agnostic=False``: every class whose score
  > 0.25, NMS per class); boxes are clipped to the image.

COCO classes are mapped to MegaDetector categories (``COCO_TO_MD``): person -> "2"; bicycle, car,
motorcycle, airplane, bus, train, truck, boat -> "3"; bird, cat, dog, horse, sheep, cow, elephant,
bear, zebra, giraffe -> "1"; all other classes are dropped from ``DetectionResult``.

``fuse_person_vehicle`` combines MD-Lite's 1-class boxes with these (see its docstring).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from sleuth.engine.base import Model, ModelError
from sleuth.engine.runtime import create_session
from sleuth.media.images import DecodedImage
from sleuth.models.detection import (
    Detection,
    DetectionResult,
    PreparedImage,
    as_decoded,
    batched_nms,
    candidate_threshold,
    iou_matrix,
    make_detections,
    nms,
    norm_xywh_to_xyxy,
    run_grouped,
    yolox_boxes,
    yolox_grid,
)

__all__ = [
    "COCO_HINTS",
    "COCO_TO_MD",
    "CocoDetection",
    "YoloxNanoCoco",
    "add_coco_hints",
    "fuse_person_vehicle",
    "preprocess_bgr",
]

INPUT_SIZE = 416
WRAPPER_SCORE = 0.25  # the upstream wrapper's candidate cut (the golden outputs)
STRIDES = (8, 16, 32)
PAD_VALUE = 114

_VEHICLES = (1, 2, 3, 4, 5, 6, 7, 8)  # bicycle car motorcycle airplane bus train truck boat
_ANIMALS = (
    14,
    15,
    16,
    17,
    18,
    19,
    20,
    21,
    22,
    23,
)  # bird cat dog horse sheep cow elephant bear zebra giraffe
#: COCO class id -> MegaDetector category ("1" animal, "2" person, "3" vehicle).
COCO_TO_MD: dict[int, str] = {0: "2", **dict.fromkeys(_VEHICLES, "3"), **dict.fromkeys(_ANIMALS, "1")}
#: COCO class id -> the coarse class it tells the label policy (bird 14; the other animals are mammals).
COCO_HINTS: dict[int, str] = {
    0: "person",
    **dict.fromkeys(_VEHICLES, "vehicle"),
    **dict.fromkeys(_ANIMALS, "mammal"),
    14: "bird",
}
HINT_MIN_CONF = 0.25  # the upstream wrapper's own operating threshold


def _coco_names() -> tuple[str, ...]:
    raw = (
        "person|bicycle|car|motorcycle|airplane|bus|train|truck|boat|traffic light|fire hydrant|"
        "stop sign|parking meter|bench|bird|cat|dog|horse|sheep|cow|elephant|bear|zebra|giraffe|"
        "backpack|umbrella|handbag|tie|suitcase|frisbee|skis|snowboard|sports ball|kite|"
        "baseball bat|baseball glove|skateboard|surfboard|tennis racket|bottle|wine glass|cup|fork|"
        "knife|spoon|bowl|banana|apple|sandwich|orange|broccoli|carrot|hot dog|pizza|donut|cake|"
        "chair|couch|potted plant|bed|dining table|toilet|tv|laptop|mouse|remote|keyboard|"
        "cell phone|microwave|oven|toaster|sink|refrigerator|book|clock|vase|scissors|teddy bear|"
        "hair drier|toothbrush"
    )
    return tuple(raw.split("|"))


#: Standard YOLOX COCO class names (index = class id), as in coco_labels.txt.
COCO_NAMES: tuple[str, ...] = _coco_names()


@dataclass(frozen=True)
class CocoDetection:
    """A raw COCO detection in pixels of the upright original image (clipped)."""

    class_id: int
    score: float
    xyxy: tuple[float, float, float, float]

    @property
    def class_name(self) -> str:
        return COCO_NAMES[self.class_id] if 0 <= self.class_id < len(COCO_NAMES) else str(self.class_id)


def preprocess_bgr(rgb: np.ndarray, size: int = INPUT_SIZE) -> tuple[np.ndarray, float]:
    """RGB HWC uint8 -> (BGR CHW float32 ``size x size`` input, ratio r)."""
    h, w = rgb.shape[:2]
    r = min(size / h, size / w)
    nw, nh = max(1, int(w * r)), max(1, int(h * r))
    # Resize, then swap to BGR: the resize is per channel, so this equals resizing the BGR image,
    # and the channel swap (a strided copy) runs on the small image instead of the decoded one.
    resized = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
    canvas = np.full((size, size, 3), PAD_VALUE, dtype=np.uint8)
    canvas[:nh, :nw] = resized[..., ::-1]
    return np.ascontiguousarray(canvas.transpose(2, 0, 1), dtype=np.float32), r


class YoloxNanoCoco(Model[bytes | DecodedImage, PreparedImage, np.ndarray, DetectionResult]):
    name = "yolox-nano-coco"
    max_batch_size = 1  # the shipped ONNX has a fixed batch dimension of 1

    def __init__(
        self,
        score_threshold: float | None = None,
        nms_threshold: float = 0.45,
        class_agnostic: bool = True,
        decode_max_side: int | None = INPUT_SIZE,
    ) -> None:
        # the wrapper's 0.25 (the golden outputs) unless given, or set by the catalog's ``conf_threshold``
        self.score_threshold = WRAPPER_SCORE if score_threshold is None else float(score_threshold)
        self._score_given = score_threshold is not None
        self.nms_threshold = nms_threshold
        self.class_agnostic = class_agnostic
        self.decode_max_side = decode_max_side
        self.session: Any = None
        self.input_name = "images"
        self._grid = yolox_grid(INPUT_SIZE, INPUT_SIZE, STRIDES)
        self._fixed_batch: int | None = 1

    def load(self, artefacts: Mapping[str, Path], providers: Sequence[str] | None = None) -> None:
        if "onnx" not in artefacts:
            raise ModelError("yolox-nano-coco: no 'onnx' artefact")
        entry = getattr(self, "catalog_entry", None)
        if not self._score_given and entry is not None and "conf_threshold" in entry.extra:
            self.score_threshold = candidate_threshold(entry.extra["conf_threshold"], "yolox-nano-coco")
        try:
            self.session = create_session(artefacts["onnx"], providers)
        except Exception as e:
            raise ModelError(f"yolox-nano-coco: cannot load {artefacts['onnx']}: {e}") from e
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        if list(inp.shape[1:]) != [3, INPUT_SIZE, INPUT_SIZE]:
            raise ModelError(f"yolox-nano-coco: unexpected input shape {inp.shape}")
        self._fixed_batch = inp.shape[0] if isinstance(inp.shape[0], int) else None
        self.max_batch_size = 8 if self._fixed_batch is None else self._fixed_batch

    def preprocess(self, item: bytes | DecodedImage) -> PreparedImage:
        img = as_decoded(item, self.decode_max_side)
        tensor, r = preprocess_bgr(img.rgb)
        # r maps decoded-image pixels to input pixels; fold the decode scale in.
        return PreparedImage(
            tensor=tensor,
            width=img.width,
            height=img.height,
            ratio_x=r * img.scale_x,
            ratio_y=r * img.scale_y,
            truncated=img.truncated,
            exif=img.exif,
        )

    def predict_batch(self, inputs: Sequence[PreparedImage]) -> list[np.ndarray]:
        if self.session is None:
            raise ModelError("yolox-nano-coco: not loaded")
        return run_grouped(self.session, self.input_name, [p.tensor for p in inputs], self._fixed_batch)

    def coco_detections(self, raw: np.ndarray, prepared: PreparedImage) -> list[CocoDetection]:
        """All COCO classes, in descending score (the upstream wrapper's output)."""
        o = np.asarray(raw, dtype=np.float32).reshape(-1, 85)
        cxcywh = yolox_boxes(o[:, :4], self._grid)
        xy, wh = cxcywh[:, :2], cxcywh[:, 2:]
        boxes = np.concatenate([xy - wh / 2, xy + wh / 2], axis=1).astype(np.float64)
        boxes[:, [0, 2]] /= prepared.ratio_x
        boxes[:, [1, 3]] /= prepared.ratio_y
        scores = o[:, 4:5] * o[:, 5:]
        thr = self.score_threshold
        if self.class_agnostic:
            cls = scores.argmax(1)
            sc = scores[np.arange(len(cls)), cls]
            sel = np.flatnonzero(sc > thr)
            b, s, c = boxes[sel], sc[sel], cls[sel]
            keep = nms(b, s, self.nms_threshold, plus_one=True)
        else:
            rows, cols = np.nonzero(scores > thr)
            b, s, c = boxes[rows], scores[rows, cols], cols
            keep = batched_nms(b, s, c, self.nms_threshold, plus_one=True)
        b, s, c = b[keep], s[keep], c[keep]
        b[:, [0, 1]] = np.maximum(b[:, [0, 1]], 0.0)
        b[:, 2] = np.minimum(b[:, 2], prepared.width)
        b[:, 3] = np.minimum(b[:, 3], prepared.height)
        return [
            CocoDetection(int(c[k]), float(s[k]), (float(b[k, 0]), float(b[k, 1]), float(b[k, 2]), float(b[k, 3])))
            for k in range(len(keep))
        ]

    def postprocess(self, raw: np.ndarray, prepared: PreparedImage) -> DetectionResult:
        coco = [d for d in self.coco_detections(raw, prepared) if d.class_id in COCO_TO_MD]
        xyxy = np.array([d.xyxy for d in coco], dtype=np.float64).reshape(-1, 4)
        dets = make_detections(
            xyxy,
            np.array([d.score for d in coco]),
            [COCO_TO_MD[d.class_id] for d in coco],
            prepared.width,
            prepared.height,
            [d.class_name for d in coco],
            [d.class_id for d in coco],
        )
        return DetectionResult.from_prepared(prepared, dets, self.name)


def _match(
    a_xyxy: np.ndarray,
    b_xyxy: np.ndarray,
    iou_threshold: float,
    containment: float,
    parts_of_b: np.ndarray | None = None,
) -> np.ndarray:
    """(N, M) bool: boxes a and b describe the same object.

    True when IoU >= ``iou_threshold``, or when the smaller box lies at least ``containment``
    inside the larger one *and* the two areas are within a factor 3 (so a small animal inside a
    large vehicle box is not taken for the vehicle). ``parts_of_b`` (M,) bool: for those b boxes
    an ``a`` box lying ``containment`` inside b matches whatever its size (a part of a person).
    """
    iou = iou_matrix(a_xyxy, b_xyxy)
    a_area = (a_xyxy[:, 2] - a_xyxy[:, 0]) * (a_xyxy[:, 3] - a_xyxy[:, 1])
    b_area = (b_xyxy[:, 2] - b_xyxy[:, 0]) * (b_xyxy[:, 3] - b_xyxy[:, 1])
    iw = np.minimum(a_xyxy[:, None, 2], b_xyxy[None, :, 2]) - np.maximum(a_xyxy[:, None, 0], b_xyxy[None, :, 0])
    ih = np.minimum(a_xyxy[:, None, 3], b_xyxy[None, :, 3]) - np.maximum(a_xyxy[:, None, 1], b_xyxy[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    small = np.minimum(a_area[:, None], b_area[None, :])
    big = np.maximum(a_area[:, None], b_area[None, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        contained = np.where(small > 0, inter / small, 0.0) >= containment
        similar = np.where(big > 0, small / big, 0.0) >= 1.0 / 3.0
    out = (iou >= iou_threshold) | (contained & similar)
    if parts_of_b is not None and len(a_xyxy) and len(b_xyxy):
        inside_b = np.where(a_area[:, None] > 0, inter / np.maximum(a_area[:, None], 1e-12), 0.0) >= containment
        out |= inside_b & np.asarray(parts_of_b, dtype=bool)[None, :]
    return np.asarray(out, dtype=bool)


def fuse_person_vehicle(
    animal_dets: Sequence[Detection],
    coco_dets: Sequence[Detection],
    *,
    min_conf: float = 0.5,
    iou_threshold: float = 0.5,
    containment: float = 0.8,
) -> list[Detection]:
    """Combine MD-Lite (1-class, everything is "animal") with YOLOX-nano COCO person/vehicle boxes.

    Rule, for YOLOX-nano person ("2") and vehicle ("3") boxes with ``conf >= min_conf``:

    1. An MD-Lite box that matches such a box (IoU >= ``iou_threshold``, or one box at least
       ``containment`` inside the other with areas within a factor 3; for a person box, also any
       MD-Lite box at least ``containment`` inside it, whatever its size: a part of that person,
       such as the upper body found as a second box) is relabelled with that category, keeping
       MD-Lite's box and confidence (the best-scoring match decides). An MD-Lite box that also
       matches a YOLOX-nano *animal* box with a higher score stays "animal".
    2. Person/vehicle boxes that match no MD-Lite box are added with their own box and score
       (the 1-class detector cannot produce them).

    Returns detections in descending confidence.
    """
    pv = [d for d in coco_dets if d.category in ("2", "3") and d.conf >= min_conf]
    animals_coco = [d for d in coco_dets if d.category == "1"]
    out: list[Detection] = []
    if not pv:
        return sorted(animal_dets, key=lambda d: -d.conf)
    a_xyxy = norm_xywh_to_xyxy([d.bbox for d in animal_dets]) if animal_dets else np.zeros((0, 4))
    p_xyxy = norm_xywh_to_xyxy([d.bbox for d in pv])
    m = _match(a_xyxy, p_xyxy, iou_threshold, containment, np.array([d.category == "2" for d in pv]))
    if animals_coco and len(animal_dets):
        c_xyxy = norm_xywh_to_xyxy([d.bbox for d in animals_coco])
        ma = _match(a_xyxy, c_xyxy, iou_threshold, containment)
    else:
        ma = np.zeros((len(animal_dets), 0), dtype=bool)
    for i, d in enumerate(animal_dets):
        js = np.flatnonzero(m[i])
        if js.size:
            best = max(js, key=lambda j: pv[j].conf)
            best_animal = max((animals_coco[k].conf for k in np.flatnonzero(ma[i])), default=-1.0)
            if pv[best].conf >= best_animal:
                out.append(Detection(pv[best].category, d.conf, d.bbox, pv[best].source_label, pv[best].source_class))
                continue
        out.append(d)
    unmatched = np.flatnonzero(~m.any(axis=0)) if len(animal_dets) else np.arange(len(pv))
    out.extend(pv[j] for j in unmatched)
    return sorted(out, key=lambda d: -d.conf)


def add_coco_hints(
    dets: Sequence[Detection],
    coco_dets: Sequence[Detection],
    *,
    min_conf: float = HINT_MIN_CONF,
    iou_threshold: float = 0.5,
    containment: float = 0.8,
) -> list[Detection]:
    """Each detection with ``hint`` set to what YOLOX-nano calls the same object (``COCO_HINTS``): the
    best-scoring COCO box with ``conf >= min_conf`` that matches it as in :func:`fuse_person_vehicle`. The
    label policy uses it to keep, e.g., bird labels off a box YOLOX-nano sees as an elephant."""
    cands = [d for d in coco_dets if d.source_class in COCO_HINTS and d.conf >= min_conf]
    if not cands or not dets:
        return list(dets)
    m = _match(
        norm_xywh_to_xyxy([d.bbox for d in dets]),
        norm_xywh_to_xyxy([d.bbox for d in cands]),
        iou_threshold,
        containment,
    )
    out = []
    for i, d in enumerate(dets):
        js = np.flatnonzero(m[i])
        if js.size and d.hint is None:
            best = cands[max(js, key=lambda j: cands[j].conf)]
            d = dataclasses.replace(d, hint=COCO_HINTS[int(best.source_class or 0)])
        out.append(d)
    return out
