"""MD-Lite: zamba's MegadetectorLite, a 1-class ("animal") YOLOX-tiny detector at 640 px.

The ONNX files come from ``sleuth.convert.yolox_tiny:convert``: ``onnx`` (FP32) and
``onnx_int8`` (the same graph quantized to INT8 from a shipped calibration table), both with
dynamic height/width and the raw head output (``sleuth.output = raw`` in the ONNX metadata);
``predict_batch`` does the grid decode, so each raw result is ``[A, 6]`` = ``cx, cy, w, h`` in
input pixels, ``obj``, ``cls``. A fixed-640 export with the decode in the graph also loads.

Serving defaults, each measured against the upstream path in ``docs/performance.md``:

* ``precision="int8"`` (catalog ``extra.precision``; ``"fp32"`` for the exact upstream
  computation, the ``mdlite-fp32`` entry);
* ``rect=True``: the letterboxed image keeps its aspect ratio and is padded only up to the next
  multiple of 32 (640x480 for 4:3 frames, 640x384 for 16:9) instead of to 640x640. The padding is
  black at the bottom/right either way, so this only drops rows of padding the model would
  convolve over; ``rect=False`` gives zamba's square input;
* ``fast_resize=True``: OpenCV area-filter downscaling instead of PIL's antialiased bicubic
  (17 vs 4 ms per image here); ``fast_resize=False`` with ``decode_max_side=None``,
  ``rect=False`` and ``precision="fp32"`` reproduces zamba's input and outputs exactly (the
  golden tests).

Pipeline (matching zamba 2.7.2 ``MegadetectorLiteYoloX.detect_image``):

* preprocess: upright RGB -> ``ImageOps.pad(img, (640, 640), BICUBIC, centering=(0, 0))``
  (aspect kept, long side 640, antialiased bicubic, top-left, black padding) -> raw 0..255 float
  CHW (``rect=True``: the same pixels, cropped to the next multiple of 32 below/right of the image);
* postprocess: ``score = obj * cls``, keep ``score >= conf_threshold`` (zamba's 0.1 by default; the
  catalog entries serve 0.005, so that the API's threshold reaches the real scores down to 0.01 after
  the score map of ``sleuth.models.score_map``), greedy NMS (IoU > 0.45
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

import cv2
import numpy as np
from PIL import Image, ImageOps

from sleuth.engine.base import Model, ModelError
from sleuth.engine.runtime import create_session
from sleuth.media.images import DecodedImage
from sleuth.models.detection import (
    Detection,
    DetectionResult,
    PreparedImage,
    as_decoded,
    candidate_threshold,
    cxcywh_to_xyxy,
    make_detections,
    nms,
    run_grouped,
    yolox_boxes,
    yolox_grid,
)

__all__ = ["MegadetectorLite", "letterbox_topleft_pil"]

INPUT_SIZE = 640
STRIDES = (8, 16, 32)
PRECISIONS = ("int8", "fp32")
ZAMBA_CONF = 0.1  # zamba's candidate cut (the golden outputs)


def _contain_size(w: int, h: int, size: int) -> tuple[int, int]:
    """The size ``ImageOps.contain(img, (size, size))`` resizes to (long side ``size``, PIL's rounding)."""
    if w > h:
        return size, max(1, round(h / w * size))
    if h > w:
        return max(1, round(w / h * size)), size
    return size, size


def letterbox_topleft_pil(
    rgb: np.ndarray, size: int = INPUT_SIZE, rect: bool = False, fast_resize: bool = False
) -> np.ndarray:
    """``ImageOps.pad`` to ``size x size``: antialiased BICUBIC, top-left, black. Returns HWC uint8.

    ``rect``: the same image, padded only to the next multiple of 32 (``STRIDES[-1]``) per side.
    ``fast_resize``: OpenCV's area filter (downscaling; bicubic when enlarging) instead of PIL's
    antialiased bicubic, several times faster on the CPU; same size and placement.
    """
    h0, w0 = rgb.shape[:2]
    nw, nh = _contain_size(w0, h0, size)
    if not rect and not fast_resize and min(nw, nh) > 1:
        img = Image.fromarray(rgb, "RGB")
        padded = ImageOps.pad(img, (size, size), method=Image.Resampling.BICUBIC, color=None, centering=(0, 0))
        return np.asarray(padded)
    if fast_resize:
        interp = cv2.INTER_AREA if nw <= w0 else cv2.INTER_CUBIC
        fitted = rgb if (nw, nh) == (w0, h0) else cv2.resize(rgb, (nw, nh), interpolation=interp)
    else:
        fitted = np.asarray(Image.fromarray(rgb, "RGB").resize((nw, nh), Image.Resampling.BICUBIC))
    m = STRIDES[-1]
    w, h = (-(-nw // m) * m, -(-nh // m) * m) if rect else (size, size)
    out = np.zeros((h, w, 3), dtype=np.uint8)
    out[:nh, :nw] = fitted
    return out


class MegadetectorLite(Model[bytes | DecodedImage, PreparedImage, np.ndarray, DetectionResult]):
    name = "mdlite"
    max_batch_size = 8

    def __init__(
        self,
        conf_threshold: float | None = None,
        nms_threshold: float = 0.45,
        decode_max_side: int | None = INPUT_SIZE,
        rect: bool = True,
        precision: str | None = None,
        fast_resize: bool = True,
    ) -> None:
        if precision is not None and precision not in PRECISIONS:
            raise ValueError(f"mdlite: precision must be one of {PRECISIONS}, not {precision!r}")
        # zamba's 0.1 (the golden outputs) unless given, or set by the catalog entry's ``conf_threshold``
        self.conf_threshold = ZAMBA_CONF if conf_threshold is None else float(conf_threshold)
        self._conf_given = conf_threshold is not None
        self.nms_threshold = nms_threshold
        self.decode_max_side = decode_max_side
        self.rect = rect
        self.fast_resize = fast_resize
        self.precision = precision
        self.session: Any = None
        self.input_name = "images"
        self.raw_output = True
        self._grids: dict[tuple[int, int], np.ndarray] = {}

    # -- Model interface -----------------------------------------------------------------
    def load(self, artefacts: Mapping[str, Path], providers: Sequence[str] | None = None) -> None:
        entry = getattr(self, "catalog_entry", None)
        precision = self.precision or (entry.extra.get("precision") if entry is not None else None)
        if not self._conf_given and entry is not None and "conf_threshold" in entry.extra:
            self.conf_threshold = candidate_threshold(entry.extra["conf_threshold"], "mdlite")
        if precision is None:
            precision = "int8" if "onnx_int8" in artefacts else "fp32"
        if precision not in PRECISIONS:
            raise ModelError(f"mdlite: precision must be one of {PRECISIONS}, not {precision!r}")
        key = "onnx_int8" if precision == "int8" else "onnx"
        if key not in artefacts:
            raise ModelError(f"mdlite: no {key!r} artefact (run the yolox_tiny converter)")
        try:
            self.session = create_session(artefacts[key], providers)
        except Exception as e:
            raise ModelError(f"mdlite: cannot load {artefacts[key]}: {e}") from e
        self.precision = precision
        inp = self.session.get_inputs()[0]
        out = self.session.get_outputs()[0]
        self.input_name = inp.name
        meta = self.session.get_modelmeta().custom_metadata_map
        self.raw_output = meta.get("sleuth.output") == "raw"
        hw = list(inp.shape[2:])
        dynamic = all(not isinstance(d, int) for d in hw)
        if (
            len(inp.shape) != 4
            or inp.shape[1] != 3
            or not (dynamic or hw == [INPUT_SIZE, INPUT_SIZE])
            or (isinstance(out.shape[-1], int) and out.shape[-1] != 6)
        ):
            raise ModelError(f"mdlite: unexpected I/O shapes {inp.shape} -> {out.shape}")
        if not dynamic:
            self.rect = False  # a fixed 640x640 export takes only the square input
        if not self.raw_output and dynamic:
            raise ModelError("mdlite: a dynamic-size export must have the raw head output (sleuth.output = raw)")

    def preprocess(self, item: bytes | DecodedImage) -> PreparedImage:
        img = as_decoded(item, self.decode_max_side)
        padded = letterbox_topleft_pil(img.rgb, rect=self.rect, fast_resize=self.fast_resize)
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
        """One ORT run per input size in the batch; rows grid-decoded to ``cx, cy, w, h, obj, cls``."""
        if self.session is None:
            raise ModelError("mdlite: not loaded")
        decode = self._decode_grid if self.raw_output else None
        return run_grouped(self.session, self.input_name, [p.tensor for p in inputs], transform=decode)

    def _decode_grid(self, raw: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        h, w = shape[1], shape[2]
        g = self._grids.get((h, w))
        if g is None:
            g = self._grids[(h, w)] = yolox_grid(h, w, STRIDES)
        if raw.shape[1] != len(g):
            raise ModelError(f"mdlite: {raw.shape[1]} output rows for a {h}x{w} input, expected {len(g)}")
        dec = np.empty_like(raw)
        dec[..., :4] = yolox_boxes(raw[..., :4], g)
        dec[..., 4:] = raw[..., 4:]
        return dec

    def postprocess(self, raw: np.ndarray, prepared: PreparedImage) -> DetectionResult:
        return DetectionResult.from_prepared(prepared, self.decode(raw, prepared), self.name)

    # -- helpers -------------------------------------------------------------------------
    def decode(self, raw: np.ndarray, prepared: PreparedImage) -> list[Detection]:
        raw = np.asarray(raw, dtype=np.float32).reshape(-1, 6)
        scores = raw[:, 4] * raw[:, 5]
        sel = np.flatnonzero(scores >= self.conf_threshold)
        if sel.size == 0:
            return []
        xyxy = cxcywh_to_xyxy(raw[sel, :4])
        s = scores[sel]
        keep = nms(xyxy, s, self.nms_threshold)
        xyxy = xyxy[keep]
        xyxy[:, [0, 2]] = (xyxy[:, [0, 2]] - prepared.pad_x) / prepared.ratio_x
        xyxy[:, [1, 3]] = (xyxy[:, [1, 3]] - prepared.pad_y) / prepared.ratio_y
        n = len(keep)
        return make_detections(xyxy, s[keep], ["1"] * n, prepared.width, prepared.height, ["animal"] * n, [0] * n)
