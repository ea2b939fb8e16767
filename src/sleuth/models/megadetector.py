"""Generic ONNX loader for MegaDetector-style YOLO exports (MDv5, MDv1000).

The public MegaDetector releases are PyTorch ``.pt`` checkpoints (YOLOv5 / YOLOv9 / YOLO11 code
bases). This loader serves an **ONNX export** of such a model; it does not read ``.pt`` files:
``sleuth models pull mdv5a.0.0`` converts the release with ``sleuth.convert.megadetector`` (our
own YOLOv5 / YOLO11 definitions), whose ONNX metadata (``sleuth.output``, ``sleuth.stride``) and
catalog entry (``image_size``, ``conf_threshold``) configure this loader. A hand-made export
registered as a local entry works too. Two output layouts are understood:

* YOLOv5 style ``[N, A, 5 + C]``: ``cx, cy, w, h, obj, cls_0 .. cls_{C-1}`` (sigmoid applied),
  ``score = obj * cls``;
* YOLOv8/9/11 style ``[N, 4 + C, A]``: ``cx, cy, w, h, cls_0 ..`` (no objectness),
  ``score = cls``.

Boxes are in input pixels. Preprocessing is MegaDetector's letterbox: resize keeping the aspect
ratio so the long side fits ``image_size`` (``cv2.INTER_LINEAR``), pad with grey 114 *centred*;
for a fixed-size ONNX input the pad fills the whole ``image_size`` square, for a dynamic one
(``auto=True`` in YOLOv5 terms) only up to the next multiple of ``stride`` (32, or 64 for the
P6 models such as MDv5). RGB, scaled to 0..1.

Postprocessing: candidates with ``score >= conf_threshold``; class-wise NMS at IoU 0.45 (as
YOLOv5's default); boxes mapped back through the letterbox as the model's upstream does it (YOLOv5:
one gain and the unrounded centred pad, as MegaDetector's ``scale_coords``; YOLO11: ultralytics'
per-axis scale and rounded pad) and clipped to the image; classes
0/1/2 -> MegaDetector categories "1"/"2"/"3" (animal/person/vehicle).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from sleuth.engine.base import Model, ModelError
from sleuth.engine.runtime import create_session
from sleuth.media.images import DecodedImage
from sleuth.models.detection import (
    DetectionResult,
    PreparedImage,
    as_decoded,
    batched_nms,
    candidate_threshold,
    cxcywh_to_xyxy,
    make_detections,
    run_grouped,
)

__all__ = ["MegaDetectorOnnx", "letterbox", "decode_yolo_output"]

OutputFormat = Literal["auto", "yolov5", "yolov8"]


def letterbox(
    rgb: np.ndarray, size: tuple[int, int], stride: int = 32, auto: bool = False, pad_value: int = 114
) -> tuple[np.ndarray, float, float, float]:
    """Aspect-preserving resize + centred pad. ``size`` = (height, width) of the target.

    Returns ``(image HWC uint8, ratio, pad_x, pad_y)`` with ``x_in = x * ratio + pad_x``.
    With ``auto`` the padding only reaches the next multiple of ``stride``.
    """
    h, w = rgb.shape[:2]
    r = min(size[0] / h, size[1] / w)
    nw, nh = round(w * r), round(h * r)
    dw, dh = size[1] - nw, size[0] - nh
    if auto:
        dw, dh = dw % stride, dh % stride
    dw_f, dh_f = dw / 2, dh / 2
    img = rgb if (nw, nh) == (w, h) else cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
    top, bottom = round(dh_f - 0.1), round(dh_f + 0.1)
    left, right = round(dw_f - 0.1), round(dw_f + 0.1)
    img = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(pad_value,) * 3)
    return img, r, float(left), float(top)


def decode_yolo_output(
    raw: np.ndarray, num_classes: int, output_format: OutputFormat = "auto"
) -> tuple[np.ndarray, np.ndarray]:
    """One image's raw output -> (cxcywh boxes (A, 4), class scores (A, C))."""
    o = np.asarray(raw, dtype=np.float32)
    if o.ndim == 3 and o.shape[0] == 1:
        o = o[0]
    if o.ndim != 2:
        raise ModelError(f"megadetector: expected a 2-D output per image, got shape {o.shape}")
    fmt = output_format
    if fmt == "auto":
        if o.shape[1] == 5 + num_classes and o.shape[0] != 4 + num_classes:
            fmt = "yolov5"
        elif o.shape[0] == 4 + num_classes and o.shape[1] != 5 + num_classes:
            fmt = "yolov8"
        elif o.shape[1] == 5 + num_classes and o.shape[0] == 4 + num_classes:
            raise ModelError(f"megadetector: output {o.shape} is ambiguous; set output_format 'yolov5' or 'yolov8'")
        else:
            raise ModelError(f"megadetector: output {o.shape} does not fit {num_classes} classes")
    if fmt == "yolov5":
        if o.shape[1] != 5 + num_classes:
            raise ModelError(f"megadetector: YOLOv5 output needs {5 + num_classes} columns, got {o.shape}")
        return o[:, :4], o[:, 4:5] * o[:, 5:]
    if o.shape[0] != 4 + num_classes:
        raise ModelError(f"megadetector: YOLOv8 output needs {4 + num_classes} rows, got {o.shape}")
    t = o.T
    return t[:, :4], t[:, 4:]


class MegaDetectorOnnx(Model[bytes | DecodedImage, PreparedImage, np.ndarray, DetectionResult]):
    """A MegaDetector (or any 3-class MD-style YOLO) ONNX export.

    ``image_size``: the letterbox target; taken from the ONNX input when it is static, else
    this value (MDv5: 1280; MDv1000: see the catalog). ``stride``: 64 for P6 models (MDv5),
    32 otherwise; only used with dynamic input shapes.
    """

    name = "megadetector-onnx"
    max_batch_size = 8

    def __init__(
        self,
        image_size: int = 1280,
        stride: int = 64,
        output_format: OutputFormat = "auto",
        num_classes: int = 3,
        conf_threshold: float = 0.005,
        nms_threshold: float = 0.45,
        max_detections: int = 300,
        class_to_category: Mapping[int, str] | None = None,
        decode_max_side: int | None = None,
    ) -> None:
        self.image_size = image_size
        self.stride = stride
        self.output_format: OutputFormat = output_format
        self.num_classes = num_classes
        self.conf_threshold = conf_threshold
        self.nms_threshold = nms_threshold
        self.max_detections = max_detections
        self.class_to_category = dict(class_to_category or {0: "1", 1: "2", 2: "3"})
        self.decode_max_side = decode_max_side if decode_max_side is not None else image_size
        # How boxes go back to the image: "letterbox" (the rounded pad actually used), "yolov5"
        # (YOLOv5/MegaDetector's scale_boxes) or "exact" (ultralytics'); set by a sleuth conversion.
        self.box_mapping: Literal["letterbox", "yolov5", "exact"] = "letterbox"
        self.session: Any = None
        self.input_name = "images"
        self._static_hw: tuple[int, int] | None = None
        self._fixed_batch: int | None = None

    def _configure(self, meta: Mapping[str, str]) -> None:
        """Settings from the catalog entry (``image_size``, ``conf_threshold``) and the ONNX metadata."""
        entry = getattr(self, "catalog_entry", None)
        extra = entry.extra if entry is not None else {}
        if "image_size" in extra:
            self.image_size = int(extra["image_size"])
            self.decode_max_side = self.image_size
        if "conf_threshold" in extra:
            self.conf_threshold = candidate_threshold(extra["conf_threshold"], self.name)
        if meta.get("sleuth.output") in ("yolov5", "yolov8"):  # a sleuth conversion: map boxes as its upstream
            self.output_format = meta["sleuth.output"]  # type: ignore[assignment]
            self.box_mapping = "yolov5" if meta["sleuth.output"] == "yolov5" else "exact"
        if meta.get("sleuth.stride", "").isdigit():
            self.stride = int(meta["sleuth.stride"])

    def load(self, artefacts: Mapping[str, Path], providers: Sequence[str] | None = None) -> None:
        if "onnx" not in artefacts:
            raise ModelError(
                f"{self.name}: no 'onnx' artefact (MegaDetector releases are PyTorch .pt files; "
                "export them to ONNX first)"
            )
        try:
            self.session = create_session(artefacts["onnx"], providers)
        except Exception as e:
            raise ModelError(f"{self.name}: cannot load {artefacts['onnx']}: {e}") from e
        self._configure(self.session.get_modelmeta().custom_metadata_map)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        shape = list(inp.shape)
        if len(shape) != 4 or shape[1] != 3:
            raise ModelError(f"{self.name}: expected an NCHW RGB input, got {shape}")
        if isinstance(shape[2], int) and isinstance(shape[3], int):
            self._static_hw = (shape[2], shape[3])
            self.image_size = max(shape[2], shape[3])
        self._fixed_batch = shape[0] if isinstance(shape[0], int) else None
        if self._fixed_batch is not None:
            self.max_batch_size = self._fixed_batch

    def preprocess(self, item: bytes | DecodedImage) -> PreparedImage:
        img = as_decoded(item, self.decode_max_side)
        target = self._static_hw or (self.image_size, self.image_size)
        boxed, r, px, py = letterbox(img.rgb, target, self.stride, auto=self._static_hw is None)
        tensor = np.ascontiguousarray(boxed.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)
        h0, w0 = img.rgb.shape[:2]
        rx = ry = r
        if self.box_mapping == "yolov5":  # YOLOv5's scale_boxes: one gain, the unrounded centred pad
            px, py = (boxed.shape[1] - w0 * r) / 2, (boxed.shape[0] - h0 * r) / 2
        elif self.box_mapping == "exact":  # ultralytics': the resized image's own offset and per-axis scale
            rx, ry = round(w0 * r) / w0, round(h0 * r) / h0
        return PreparedImage(
            tensor=tensor,
            width=img.width,
            height=img.height,
            ratio_x=rx * img.scale_x,
            ratio_y=ry * img.scale_y,
            pad_x=px,
            pad_y=py,
            truncated=img.truncated,
            exif=img.exif,
        )

    def predict_batch(self, inputs: Sequence[PreparedImage]) -> list[np.ndarray]:
        if self.session is None:
            raise ModelError(f"{self.name}: not loaded")
        # Dynamic-shape exports letterbox to per-image sizes: batch only equal shapes together.
        limit = self._fixed_batch or self.max_batch_size
        return run_grouped(self.session, self.input_name, [p.tensor for p in inputs], limit)

    def postprocess(self, raw: np.ndarray, prepared: PreparedImage) -> DetectionResult:
        cxcywh, scores = decode_yolo_output(raw, self.num_classes, self.output_format)
        cls = scores.argmax(1) if scores.shape[1] else np.zeros(len(scores), dtype=np.int64)
        conf = scores[np.arange(len(cls)), cls] if len(cls) else np.zeros(0, dtype=np.float32)
        sel = np.flatnonzero(conf >= self.conf_threshold)
        xyxy = cxcywh_to_xyxy(cxcywh[sel])
        c, s = cls[sel], conf[sel]
        keep = batched_nms(xyxy, s, c, self.nms_threshold)[: self.max_detections]
        xyxy, c, s = xyxy[keep], c[keep], s[keep]
        xyxy[:, [0, 2]] = np.clip((xyxy[:, [0, 2]] - prepared.pad_x) / prepared.ratio_x, 0, prepared.width)
        xyxy[:, [1, 3]] = np.clip((xyxy[:, [1, 3]] - prepared.pad_y) / prepared.ratio_y, 0, prepared.height)
        cats = [self.class_to_category.get(int(k), str(int(k) + 1)) for k in c]
        dets = make_detections(xyxy, s, cats, prepared.width, prepared.height, None, [int(k) for k in c])
        return DetectionResult.from_prepared(prepared, dets, self.name)
