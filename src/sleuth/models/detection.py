"""Shared types and numpy helpers of the object detectors (MD-Lite, YOLOX-nano, MegaDetector ONNX).

Boxes in results follow the MegaDetector convention: normalised ``[x_min, y_min, width, height]``
of the EXIF-upright original image, categories ``"1"`` animal, ``"2"`` person, ``"3"`` vehicle.
No torch here: this runs in the serving path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sleuth.media.images import DecodedImage, ExifInfo, decode_image

__all__ = [
    "MD_CATEGORIES",
    "Detection",
    "DetectionResult",
    "PreparedImage",
    "as_decoded",
    "candidate_threshold",
    "clip_boxes",
    "cxcywh_to_xyxy",
    "iou_matrix",
    "nms",
    "batched_nms",
    "xyxy_to_norm_xywh",
    "norm_xywh_to_xyxy",
    "run_grouped",
    "yolox_boxes",
    "yolox_grid",
]

#: MegaDetector category ids -> names.
MD_CATEGORIES: dict[str, str] = {"1": "animal", "2": "person", "3": "vehicle"}


@dataclass(frozen=True)
class Detection:
    """One box. ``bbox`` = normalised ``[x_min, y_min, width, height]`` of the upright image."""

    category: str
    conf: float
    bbox: tuple[float, float, float, float]
    source_label: str | None = None  # the producing model's own class name (e.g. COCO "dog")
    source_class: int | None = None
    hint: str | None = None  # what a second detector calls the object: mammal / bird / person / vehicle

    @property
    def label(self) -> str:
        return MD_CATEGORIES.get(self.category, self.category)

    def to_md(self, ndigits: int | None = None) -> dict[str, Any]:
        """MegaDetector batch-output dict: ``{"category", "conf", "bbox"}``."""
        if ndigits is None:
            return {
                "category": self.category,
                "conf": float(self.conf),
                "bbox": [float(v) for v in self.bbox],
            }
        return {
            "category": self.category,
            "conf": round(float(self.conf), ndigits),
            "bbox": [round(float(v), ndigits) for v in self.bbox],
        }


@dataclass
class DetectionResult:
    """Detections on one image, in descending confidence."""

    width: int
    height: int
    detections: list[Detection]
    truncated: bool = False
    exif: ExifInfo = field(default_factory=ExifInfo)
    model: str = ""

    @classmethod
    def from_prepared(cls, prepared: PreparedImage, detections: list[Detection], model: str) -> DetectionResult:
        """The result for one prepared image (its original size, truncation flag and EXIF)."""
        return cls(
            width=prepared.width,
            height=prepared.height,
            detections=detections,
            truncated=prepared.truncated,
            exif=prepared.exif,
            model=model,
        )

    @property
    def max_conf(self) -> float:
        return max((d.conf for d in self.detections), default=0.0)

    def to_md(self, ndigits: int | None = None) -> dict[str, Any]:
        return {
            "detections": [d.to_md(ndigits) for d in self.detections],
            "max_detection_conf": float(self.max_conf),
            "width": self.width,
            "height": self.height,
        }


@dataclass
class PreparedImage:
    """A model-ready tensor plus what postprocessing needs to map boxes back.

    ``x_orig = (x_input - pad_x) / ratio_x`` (and likewise for y), in pixels of the upright
    original image of size ``width x height``.
    """

    tensor: np.ndarray  # (C, H, W) float32
    width: int
    height: int
    ratio_x: float
    ratio_y: float
    pad_x: float = 0.0
    pad_y: float = 0.0
    truncated: bool = False
    exif: ExifInfo = field(default_factory=ExifInfo)


def as_decoded(item: bytes | bytearray | memoryview | DecodedImage, max_side: int | None) -> DecodedImage:
    """Accept encoded bytes or an already decoded image (ValueError for anything else)."""
    if isinstance(item, DecodedImage):
        return item
    if isinstance(item, (bytes, bytearray, memoryview)):
        return decode_image(bytes(item), max_side)
    raise ValueError(f"expected image bytes or a DecodedImage, got {type(item).__name__}")


def clip_boxes(detections: Sequence[Detection]) -> list[Detection]:
    """The detections with boxes clipped to the image (``[0, 1]``); a box left with no area is dropped."""
    out = []
    for d in detections:
        x, y, w, h = d.bbox
        if x >= 0.0 and y >= 0.0 and x + w <= 1.0 and y + h <= 1.0 and w > 0 and h > 0:
            out.append(d)
            continue
        x0, y0 = min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0)
        x1, y1 = min(max(x + w, 0.0), 1.0), min(max(y + h, 0.0), 1.0)
        if x1 <= x0 or y1 <= y0:
            continue
        out.append(dataclasses.replace(d, bbox=(x0, y0, x1 - x0, y1 - y0)))
    return out


def candidate_threshold(value: object, model: str) -> float:
    """A catalog entry's ``conf_threshold`` (the model's own candidate cut), checked: a number in [0, 1)."""
    from sleuth.engine.base import ModelError

    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) < 1.0:
        raise ModelError(f"{model}: catalog conf_threshold must be a number in [0, 1), got {value!r}")
    return float(value)


def iou_matrix(a: np.ndarray, b: np.ndarray, plus_one: bool = False) -> np.ndarray:
    """IoU of every box in ``a`` (N, 4 xyxy) with every box in ``b`` (M, 4 xyxy) -> (N, M)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    e = 1.0 if plus_one else 0.0
    area_a = (a[:, 2] - a[:, 0] + e) * (a[:, 3] - a[:, 1] + e)
    area_b = (b[:, 2] - b[:, 0] + e) * (b[:, 3] - b[:, 1] + e)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + e
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + e
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(union > 0, inter / union, 0.0)
    return out


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, *, plus_one: bool = False) -> np.ndarray:
    """Greedy NMS: visit boxes in descending score, drop any box whose IoU with a kept box is
    greater than ``iou_threshold``. Returns kept indices in descending score.

    ``plus_one`` uses the legacy pixel convention ``area = (x2 - x1 + 1) * (y2 - y1 + 1)``.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if boxes.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    e = 1.0 if plus_one else 0.0
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1 + e) * (y2 - y1 + e)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        iw = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + e, 0, None)
        ih = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + e, 0, None)
        inter = iw * ih
        union = areas[i] + areas[rest] - inter
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = np.where(union > 0, inter / union, 0.0)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def batched_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    iou_threshold: float,
    *,
    plus_one: bool = False,
) -> np.ndarray:
    """Class-wise NMS (boxes of different classes never suppress each other).

    Returns kept indices in descending score (stable for ties).
    """
    classes = np.asarray(classes).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    kept: list[np.ndarray] = []
    for c in np.unique(classes):
        idx = np.flatnonzero(classes == c)
        kept.append(idx[nms(np.asarray(boxes)[idx], scores[idx], iou_threshold, plus_one=plus_one)])
    if not kept:
        return np.zeros(0, dtype=np.int64)
    allk = np.concatenate(kept)
    return allk[np.argsort(-scores[allk], kind="stable")]


def xyxy_to_norm_xywh(xyxy: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pixel ``x1, y1, x2, y2`` -> normalised ``[x_min, y_min, w, h]`` (not clipped)."""
    b = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    out = np.empty_like(b)
    out[:, 0] = b[:, 0] / width
    out[:, 1] = b[:, 1] / height
    out[:, 2] = (b[:, 2] - b[:, 0]) / width
    out[:, 3] = (b[:, 3] - b[:, 1]) / height
    return out


def norm_xywh_to_xyxy(boxes: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """Normalised ``[x, y, w, h]`` -> normalised ``[x1, y1, x2, y2]``."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.stack([b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]], axis=1)


def cxcywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """``[cx, cy, w, h]`` -> ``[x1, y1, x2, y2]`` (float64)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.stack([b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 3] / 2, b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2], 1)


def yolox_grid(height: int, width: int, strides: Sequence[int] = (8, 16, 32)) -> np.ndarray:
    """``[A, 3]`` float32 = ``gx, gy, stride`` per anchor row of a YOLOX head on a ``height x width`` input.

    Rows in level order (stride 8, 16, 32), row-major within a level, as the head flattens them.
    """
    parts = []
    for s in strides:
        ys, xs = np.meshgrid(np.arange(height // s), np.arange(width // s), indexing="ij")
        parts.append(np.stack([xs.ravel(), ys.ravel(), np.full(xs.size, s)], 1))
    return np.concatenate(parts).astype(np.float32)


def yolox_boxes(reg: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """YOLOX box decode: raw ``(dx, dy, log w, log h)`` rows (``[..., A, 4]``) -> ``cx, cy, w, h`` in input pixels."""
    out = np.empty_like(reg)
    out[..., :2] = (reg[..., :2] + grid[:, :2]) * grid[:, 2:]
    out[..., 2:4] = np.exp(reg[..., 2:4]) * grid[:, 2:]
    return out


def run_grouped(
    session: Any,
    input_name: str,
    tensors: Sequence[np.ndarray],
    max_batch: int | None = None,
    transform: Callable[[np.ndarray, tuple[int, ...]], np.ndarray] | None = None,
) -> list[np.ndarray]:
    """One ORT run per tensor shape (in chunks of ``max_batch``); the first output per tensor, in input order.

    ``transform(y, shape)`` post-processes each run's batched output (e.g. a size-dependent decode).
    """
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, t in enumerate(tensors):
        groups.setdefault(tuple(t.shape), []).append(i)
    out: list[np.ndarray | None] = [None] * len(tensors)
    for shape, idx in groups.items():
        step = max_batch or len(idx)
        for k in range(0, len(idx), step):
            chunk = idx[k : k + step]
            y = session.run(None, {input_name: np.stack([tensors[i] for i in chunk])})[0]
            if transform is not None:
                y = transform(y, shape)
            for j, i in enumerate(chunk):
                out[i] = y[j]
    return [o for o in out if o is not None]


def make_detections(
    xyxy_px: np.ndarray,
    scores: np.ndarray,
    categories: Sequence[str],
    width: int,
    height: int,
    source_labels: Sequence[str | None] | None = None,
    source_classes: Sequence[int | None] | None = None,
) -> list[Detection]:
    norm = xyxy_to_norm_xywh(xyxy_px, width, height)
    out = []
    for k in range(norm.shape[0]):
        out.append(
            Detection(
                category=categories[k],
                conf=float(scores[k]),
                bbox=(float(norm[k, 0]), float(norm[k, 1]), float(norm[k, 2]), float(norm[k, 3])),
                source_label=source_labels[k] if source_labels is not None else None,
                source_class=source_classes[k] if source_classes is not None else None,
            )
        )
    return out
