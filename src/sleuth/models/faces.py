"""MTCNN face detector (P-Net -> R-Net -> O-Net cascade) on ONNX Runtime.

Weights: ``facenet-pytorch`` wheel ``facenet_pytorch/data/{p,r,o}net.pt``, converted to ONNX by
``sleuth.convert.mtcnn``. The cascade logic (image pyramid, candidate generation, NMS, box
regression, squaring, landmark decoding) is written here from the MTCNN paper's description.

Output: :class:`Face` objects with boxes in original-image pixels (``x1, y1, x2, y2``, floats,
not clipped), the O-Net face probability as ``score`` and 5 landmarks (left eye, right eye, nose,
left mouth corner, right mouth corner) as ``(x, y)`` pixels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sleuth.engine.base import Model, ModelError
from sleuth.engine.runtime import create_session
from sleuth.media.images import open_image

THRESHOLDS = (0.6, 0.7, 0.7)
PYRAMID_FACTOR = 0.709


@dataclass
class Face:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in original pixels
    score: float
    landmarks: list[tuple[float, float]] = field(default_factory=list)

    @property
    def xywh(self) -> list[float]:
        x1, y1, x2, y2 = self.box
        return [x1, y1, x2 - x1, y2 - y1]

    def scaled(self, s: float) -> Face:
        x1, y1, x2, y2 = self.box
        return Face((x1 * s, y1 * s, x2 * s, y2 * s), self.score, [(x * s, y * s) for x, y in self.landmarks])


def decode_rgb(item: bytes | np.ndarray | Any) -> np.ndarray:
    """bytes / PIL image / HxWx3 uint8 array -> HxWx3 uint8 RGB (EXIF-upright). ValueError if bad."""
    from PIL import ImageOps

    if isinstance(item, np.ndarray):
        if item.ndim != 3 or item.shape[2] != 3 or item.dtype != np.uint8:
            raise ValueError("expected an HxWx3 uint8 RGB array")
        return item
    im = open_image(item)
    try:
        im = ImageOps.exif_transpose(im) or im
        rgb = np.asarray(im.convert("RGB"))
    except Exception as exc:
        raise ValueError(f"cannot decode image: {exc}") from exc
    if rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ValueError("image has zero size")
    return rgb


def nms(boxes: np.ndarray, scores: np.ndarray, thresh: float, mode: str = "union") -> np.ndarray:
    """Greedy NMS on ``[K,4]`` x1y1x2y2 boxes; ``mode='min'`` divides by the smaller area."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    x1, y1, x2, y2 = boxes.T
    areas = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        denom = np.minimum(areas[i], areas[rest]) if mode == "min" else areas[i] + areas[rest] - inter
        iou = inter / np.maximum(denom, 1e-9)
        order = rest[iou <= thresh]
    return np.asarray(keep, dtype=np.int64)


def _square(boxes: np.ndarray) -> np.ndarray:
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w / 2 - side / 2
    out[:, 1] = boxes[:, 1] + h / 2 - side / 2
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    w = (boxes[:, 2] - boxes[:, 0])[:, None]
    h = (boxes[:, 3] - boxes[:, 1])[:, None]
    return boxes + reg * np.concatenate([w, h, w, h], axis=1)


def _normalise(patch: np.ndarray) -> np.ndarray:
    return ((patch.astype(np.float32) - 127.5) * np.float32(0.0078125)).transpose(2, 0, 1)


def crop_patch(img: np.ndarray, box: Sequence[float], size: int) -> np.ndarray:
    """Crop ``box`` (x1,y1,x2,y2, may leave the image; outside = black) and resize to size x size."""
    import cv2

    h, w = img.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    x2, y2 = max(x2, x1 + 1), max(y2, y1 + 1)
    canvas = np.zeros((y2 - y1, x2 - x1, 3), dtype=np.uint8)
    sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if sx2 > sx1 and sy2 > sy1:
        canvas[sy1 - y1 : sy2 - y1, sx1 - x1 : sx2 - x1] = img[sy1:sy2, sx1:sx2]
    return np.asarray(cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA))


class MTCNN(Model[Any, np.ndarray, list[Face], list[Face]]):
    """Face detector. ``__call__([image])`` -> ``[[Face, ...]]``; ``detect(rgb)`` for one array."""

    name = "mtcnn"
    max_batch_size = 1

    def __init__(self, min_face: int = 20, thresholds: Sequence[float] = THRESHOLDS) -> None:
        self.min_face = min_face
        self.thresholds = tuple(thresholds)
        self._sess: dict[str, Any] = {}

    def load(self, artefacts: Mapping[str, Path], providers: Sequence[str] | None = None) -> None:
        for stage in ("pnet", "rnet", "onet"):
            path = artefacts.get(f"{stage}_onnx")
            if path is None:
                raise ModelError(f"mtcnn: missing converted artefact {stage}_onnx")
            # small nets: one thread each keeps them from fighting the decoder for cores
            self._sess[stage] = create_session(path, providers, intra_op_threads=1, cpu_arena=False)  # pyramid shapes

    def preprocess(self, item: Any) -> np.ndarray:
        return decode_rgb(item)

    def predict_batch(self, inputs: Sequence[np.ndarray]) -> list[list[Face]]:
        return [self.detect(x) for x in inputs]

    def postprocess(self, raw: list[Face], prepared: np.ndarray) -> list[Face]:
        return raw

    # -- the cascade -------------------------------------------------------------------------
    def _stage1(self, img: np.ndarray, min_face: int) -> np.ndarray:
        import cv2

        h, w = img.shape[:2]
        m = 12.0 / min_face
        side = min(h, w) * m
        scales: list[float] = []
        while side >= 12:
            scales.append(m * PYRAMID_FACTOR ** len(scales))
            side *= PYRAMID_FACTOR
        found: list[np.ndarray] = []
        for s in scales:
            hs, ws = int(math.ceil(h * s)), int(math.ceil(w * s))
            if hs < 12 or ws < 12:
                continue
            small = cv2.resize(img, (ws, hs), interpolation=cv2.INTER_AREA)
            prob, reg = self._sess["pnet"].run(["prob", "reg"], {"input": _normalise(small)[None]})
            p = prob[0, 1]
            ys, xs = np.nonzero(p >= self.thresholds[0])
            if len(ys) == 0:
                continue
            boxes = np.stack([2 * xs, 2 * ys, 2 * xs + 12, 2 * ys + 12], axis=1).astype(np.float32) / s
            cand = np.concatenate([boxes, p[ys, xs, None], reg[0][:, ys, xs].T], axis=1)
            found.append(cand[nms(cand[:, :4], cand[:, 4], 0.5)])
        if not found:
            return np.zeros((0, 5), np.float32)
        allc = np.concatenate(found)
        allc = allc[nms(allc[:, :4], allc[:, 4], 0.7)]
        boxes = _square(_regress(allc[:, :4], allc[:, 5:9]))
        return np.concatenate([boxes, allc[:, 4:5]], axis=1)

    def _refine(self, img: np.ndarray, cand: np.ndarray, stage: str) -> tuple[np.ndarray, np.ndarray]:
        size = 24 if stage == "rnet" else 48
        batch = np.stack([_normalise(crop_patch(img, b, size)) for b in cand[:, :4]])
        names = ["prob", "reg"] + (["landmarks"] if stage == "onet" else [])
        outs = self._sess[stage].run(names, {"input": batch})
        p = outs[0][:, 1]
        keep = p >= self.thresholds[1 if stage == "rnet" else 2]
        boxes = cand[keep, :4]
        reg = outs[1][keep]
        lms = outs[2][keep] if stage == "onet" else np.zeros((int(keep.sum()), 10), np.float32)
        if stage == "onet":
            w = (boxes[:, 2] - boxes[:, 0])[:, None]
            h = (boxes[:, 3] - boxes[:, 1])[:, None]
            lms = np.concatenate([boxes[:, 0:1] + w * lms[:, :5], boxes[:, 1:2] + h * lms[:, 5:]], axis=1)
        return np.concatenate([_regress(boxes, reg), p[keep, None]], axis=1), lms

    def detect(self, img: np.ndarray, min_face: int | None = None) -> list[Face]:
        """Detect faces in one HxWx3 uint8 RGB array."""
        if not self._sess:
            raise ModelError("mtcnn: load() first")
        mf = max(12, int(min_face or self.min_face))
        cand = self._stage1(img, mf)
        if len(cand) == 0:
            return []
        cand, _ = self._refine(img, cand, "rnet")
        if len(cand) == 0:
            return []
        cand = cand[nms(cand[:, :4], cand[:, 4], 0.7)]
        cand = np.concatenate([_square(cand[:, :4]), cand[:, 4:5]], axis=1)
        out, lms = self._refine(img, cand, "onet")
        if len(out) == 0:
            return []
        keep = nms(out[:, :4], out[:, 4], 0.7, mode="min")
        faces = []
        for i in keep:
            x1, y1, x2, y2, sc = (float(v) for v in out[i])
            pts = [(float(lms[i, k]), float(lms[i, 5 + k])) for k in range(5)]
            faces.append(Face((x1, y1, x2, y2), sc, pts))
        faces.sort(key=lambda f: -f.score)
        return faces
