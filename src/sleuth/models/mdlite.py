"""MD-Lite: zamba's MegadetectorLite, a 1-class ("animal") YOLOX-tiny detector at 640 px.

The ONNX file comes from ``sleuth.convert.yolox_tiny:convert`` (decode in the graph: output
``[N, 8400, 6]`` = ``cx, cy, w, h`` in 640-input pixels, ``obj``, ``cls``).

Pipeline (matching zamba 2.7.2 ``MegadetectorLiteYoloX.detect_image``):

* preprocess: upright RGB -> ``ImageOps.pad(img, (640, 640), BICUBIC, centering=(0, 0))``
  (aspect kept, long side 640, antialiased bicubic, top-left, black padding) -> raw 0..255 float
  CHW;
* postprocess: ``score = obj * cls``, keep ``score >= conf_threshold``, greedy NMS (IoU > 0.45
  suppressed, no +1), boxes divided by ``ratio = min(640 / W, 640 / H)`` and normalised by the
  upright original size; boxes are not clipped.

``decode_max_side``: with the default 640, JPEGs are decoded at a DCT reduction (1/2 .. 1/8)
that keeps the long side >= 640 before the pad/resize, which is several times faster than a
full decode. The golden outputs were made with a full decode; ``decode_max_side=None`` gives
that (bit-exact input); the measured difference is in ``docs/performance.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from sleuth.engine.base import Model, ModelError
from sleuth.engine.runtime import create_session
from sleuth.models.detection import (
    Detection,
    DetectionResult,
    PreparedImage,
    as_decoded,
    make_detections,
    nms,
)
from sleuth.pipelines.imaging import DecodedImage

__all__ = ["MegadetectorLite", "letterbox_topleft_pil"]

INPUT_SIZE = 640


def letterbox_topleft_pil(rgb: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """``ImageOps.pad`` to ``size x size``: antialiased BICUBIC, top-left, black. Returns HWC uint8."""
    img = Image.fromarray(rgb, "RGB")
    padded = ImageOps.pad(img, (size, size), method=Image.Resampling.BICUBIC, color=None, centering=(0, 0))
    return np.asarray(padded)


class MegadetectorLite(Model[bytes | DecodedImage, PreparedImage, np.ndarray, DetectionResult]):
    name = "mdlite"
    max_batch_size = 8

    def __init__(
        self,
        conf_threshold: float = 0.1,
        nms_threshold: float = 0.45,
        decode_max_side: int | None = INPUT_SIZE,
    ) -> None:
        self.conf_threshold = conf_threshold
        self.nms_threshold = nms_threshold
        self.decode_max_side = decode_max_side
        self.session: Any = None
        self.input_name = "images"

    # -- Model interface -----------------------------------------------------------------
    def load(self, artefacts: Mapping[str, Path], providers: Sequence[str] | None = None) -> None:
        if "onnx" not in artefacts:
            raise ModelError("mdlite: no 'onnx' artefact (run the yolox_tiny converter)")
        try:
            self.session = create_session(artefacts["onnx"], providers)
        except Exception as e:
            raise ModelError(f"mdlite: cannot load {artefacts['onnx']}: {e}") from e
        inp = self.session.get_inputs()[0]
        out = self.session.get_outputs()[0]
        self.input_name = inp.name
        if (
            list(inp.shape[1:]) != [3, INPUT_SIZE, INPUT_SIZE]
            or out.shape[-1] not in (6, None)
            and isinstance(out.shape[-1], int)
        ):
            raise ModelError(f"mdlite: unexpected I/O shapes {inp.shape} -> {out.shape}")

    def preprocess(self, item: bytes | DecodedImage) -> PreparedImage:
        img = as_decoded(item, self.decode_max_side)
        padded = letterbox_topleft_pil(img.rgb)
        tensor = np.ascontiguousarray(padded.transpose(2, 0, 1), dtype=np.float32)
        # Box scale as upstream: from the original upright size (not the draft-decoded one).
        ratio = min(INPUT_SIZE / img.width, INPUT_SIZE / img.height)
        return PreparedImage(
            tensor=tensor,
            width=img.width,
            height=img.height,
            ratio_x=ratio,
            ratio_y=ratio,
            truncated=img.truncated,
            exif=img.exif,
        )

    def predict_batch(self, inputs: Sequence[PreparedImage]) -> list[np.ndarray]:
        if self.session is None:
            raise ModelError("mdlite: not loaded")
        if not inputs:
            return []
        x = np.stack([p.tensor for p in inputs])
        out = self.session.run(None, {self.input_name: x})[0]
        return [out[i] for i in range(out.shape[0])]

    def postprocess(self, raw: np.ndarray, prepared: PreparedImage) -> DetectionResult:
        return DetectionResult(
            width=prepared.width,
            height=prepared.height,
            detections=self.decode(raw, prepared),
            truncated=prepared.truncated,
            exif=prepared.exif,
            model=self.name,
        )

    # -- helpers -------------------------------------------------------------------------
    def decode(self, raw: np.ndarray, prepared: PreparedImage) -> list[Detection]:
        raw = np.asarray(raw, dtype=np.float32).reshape(-1, 6)
        scores = raw[:, 4] * raw[:, 5]
        sel = np.flatnonzero(scores >= self.conf_threshold)
        if sel.size == 0:
            return []
        cxcywh = raw[sel, :4].astype(np.float64)
        s = scores[sel]
        xyxy = np.stack(
            [
                cxcywh[:, 0] - cxcywh[:, 2] / 2,
                cxcywh[:, 1] - cxcywh[:, 3] / 2,
                cxcywh[:, 0] + cxcywh[:, 2] / 2,
                cxcywh[:, 1] + cxcywh[:, 3] / 2,
            ],
            axis=1,
        )
        keep = nms(xyxy, s, self.nms_threshold)
        xyxy = xyxy[keep]
        xyxy[:, [0, 2]] = (xyxy[:, [0, 2]] - prepared.pad_x) / prepared.ratio_x
        xyxy[:, [1, 3]] = (xyxy[:, [1, 3]] - prepared.pad_y) / prepared.ratio_y
        n = len(keep)
        return make_detections(xyxy, s[keep], ["1"] * n, prepared.width, prepared.height, ["animal"] * n, [0] * n)
