"""What the field does for recall where MD-Lite is weak, measured on both sides: recall and false boxes.

MD-Lite variants on the decodable images of the shared camera-trap set, scored like ``accuracy.py``
(IoU >= 0.5 against the reference boxes; false boxes on the blank images counted apart):

* ``640`` -- today's input (long side 640, rectangular letterbox);
* ``768``, ``800``, ``832``, ``960``, ``1280`` -- a larger input (the graph has dynamic height/width);
* ``640+flip`` -- test-time augmentation: the mirrored image too, boxes merged by NMS;
* ``640+960`` -- two scales merged by NMS;
* ``640+tiles`` -- the whole frame plus 2x2 overlapping tiles (20 %), each at 640, merged by NMS (SAHI-style);
* ``640+yolox`` -- YOLOX-nano's COCO animal boxes (bird, cat, dog, horse, sheep, cow, elephant, bear, zebra,
  giraffe, conf >= 0.2) merged with MD-Lite's by NMS.

Scores are raw MD-Lite scores (no score map: the map is monotone, so it changes thresholds, not the ranking;
YOLOX-nano's scores are taken as they are). For each variant: recall and false boxes at raw thresholds, and
recall at the lowest threshold leaving at most k false boxes on the blanks. Usage::

    SLEUTH_MODEL_MIRROR=../shared/data/models python benchmarks/accuracy_variants.py
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import accuracy as A  # noqa: E402  (the sibling benchmark: data, matching, scoring)

THRESHOLDS = (0.05, 0.1, 0.2, 0.3)
COCO_ANIMALS = {14, 15, 16, 17, 18, 19, 20, 21, 22, 23}


def _session() -> Any:
    from sleuth.engine.registry import get_model

    return get_model("mdlite")


def _run(model: Any, rgb: np.ndarray, size: int, flip: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Raw candidates (normalised xyxy, score >= 0.005) of MD-Lite on ``rgb`` letterboxed to ``size``."""
    from sleuth.models.detection import cxcywh_to_xyxy, yolox_boxes, yolox_grid
    from sleuth.models.mdlite import letterbox_topleft_pil

    h0, w0 = rgb.shape[:2]
    im = np.ascontiguousarray(rgb[:, ::-1]) if flip else rgb
    pad = letterbox_topleft_pil(im, size=size, rect=True, fast_resize=True)
    t = np.ascontiguousarray(pad.transpose(2, 0, 1), dtype=np.float32)[None]
    raw = model.session.run(None, {model.input_name: t})[0][0].copy()
    raw[:, :4] = yolox_boxes(raw[:, :4], yolox_grid(t.shape[2], t.shape[3]))
    s = raw[:, 4] * raw[:, 5]
    keep = s >= 0.005
    xyxy = cxcywh_to_xyxy(raw[keep, :4]) / min(size / w0, size / h0)
    xyxy[:, [0, 2]] /= w0
    xyxy[:, [1, 3]] /= h0
    if flip:
        xyxy[:, [0, 2]] = 1 - xyxy[:, [2, 0]]
    return xyxy, s[keep]


def _tiles(model: Any, rgb: np.ndarray, n: int = 2, overlap: float = 0.2) -> list[tuple[np.ndarray, np.ndarray]]:
    h0, w0 = rgb.shape[:2]
    tw, th = w0 / (n - (n - 1) * overlap), h0 / (n - (n - 1) * overlap)
    out = []
    for i in range(n):
        for j in range(n):
            x0, y0 = int(round(i * tw * (1 - overlap))), int(round(j * th * (1 - overlap)))
            x1, y1 = min(w0, int(round(x0 + tw))), min(h0, int(round(y0 + th)))
            b, s = _run(model, np.ascontiguousarray(rgb[y0:y1, x0:x1]), 640)
            b = b.copy()
            b[:, [0, 2]] = (b[:, [0, 2]] * (x1 - x0) + x0) / w0
            b[:, [1, 3]] = (b[:, [1, 3]] * (y1 - y0) + y0) / h0
            out.append((b, s))
    return out


def _yolox(img: Any) -> tuple[np.ndarray, np.ndarray]:
    from sleuth.engine.registry import get_batcher

    dets = [d for d in get_batcher("yolox-nano-coco").run([img])[0].detections if d.source_class in COCO_ANIMALS]
    dets = [d for d in dets if d.conf >= 0.2]
    b = np.array([[d.bbox[0], d.bbox[1], d.bbox[0] + d.bbox[2], d.bbox[1] + d.bbox[3]] for d in dets]).reshape(-1, 4)
    return b, np.array([d.conf for d in dets], dtype=np.float64)


def _merge(parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[A.Box]:
    from sleuth.models.detection import nms

    b = np.concatenate([p[0] for p in parts])
    s = np.concatenate([p[1] for p in parts])
    if not len(s):
        return []
    keep = nms(b, s, 0.45)
    return [A.Box([b[k, 0], b[k, 1], b[k, 2] - b[k, 0], b[k, 3] - b[k, 1]], float(s[k])) for k in keep]


VARIANTS: dict[str, Callable[[Any, Any], list[A.Box]]] = {
    "640": lambda m, img: _merge([_run(m, img.rgb, 640)]),
    "768": lambda m, img: _merge([_run(m, img.rgb, 768)]),
    "800": lambda m, img: _merge([_run(m, img.rgb, 800)]),
    "832": lambda m, img: _merge([_run(m, img.rgb, 832)]),
    "960": lambda m, img: _merge([_run(m, img.rgb, 960)]),
    "1280": lambda m, img: _merge([_run(m, img.rgb, 1280)]),
    "640+flip": lambda m, img: _merge([_run(m, img.rgb, 640), _run(m, img.rgb, 640, flip=True)]),
    "640+960": lambda m, img: _merge([_run(m, img.rgb, 640), _run(m, img.rgb, 960)]),
    "640+tiles": lambda m, img: _merge([_run(m, img.rgb, 640), *_tiles(m, img.rgb)]),
    "640+yolox": lambda m, img: _merge([_run(m, img.rgb, 640), _yolox(img)]),
}


def _totals(items: Sequence[A.Item], boxes: Sequence[Sequence[A.Box]], thr: float) -> tuple[int, int, int, int]:
    rep = A.evaluate(items, [[b for b in bs if b.score >= thr] for bs in boxes])
    tot = A.DetCounts()
    for v in rep.per_set.values():
        tot.add(v)
    return tot.found, tot.refs, tot.false, rep.blank_false


def main() -> int:
    if not A.CT.is_dir():
        print(f"no shared data at {A.CT}", file=sys.stderr)
        return 2
    items = A.load_items()
    images = A._decoded(items)  # the service's decode (long side 1280)
    model = _session()
    head = " | ".join(f"at {t}: recall, false (blank)" for t in THRESHOLDS)
    lines = [f"| variant | s/image | {head} | at 0.2, per set | recall at <= 0 / 1 / 2 false boxes on the blanks |"]
    lines.append("|---" * (4 + len(THRESHOLDS)) + "|")
    for name, fn in VARIANTS.items():
        t0 = time.perf_counter()
        boxes = [fn(model, img) for img in images]
        dt = (time.perf_counter() - t0) / len(images)
        cells = []
        for t in THRESHOLDS:
            found, refs, false, blank = _totals(items, boxes, t)
            cells.append(f"{found}/{refs}, {false} ({blank})")
        rep = A.evaluate(items, [[b for b in bs if b.score >= 0.2] for bs in boxes])
        cells.append(", ".join(f"{k.split('_')[0]} {v.found}/{v.refs}" for k, v in sorted(rep.per_set.items())))
        curve = A.recall_at_blank_false(items, boxes, (0, 1, 2))
        eq = " / ".join(f"{f}/{r} (thr {thr:.3f}, {fp} false)" for _, thr, f, r, fp in curve)
        lines.append(f"| {name} | {dt:.2f} | " + " | ".join(cells) + f" | {eq} |")
        print(lines[-1], file=sys.stderr)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
