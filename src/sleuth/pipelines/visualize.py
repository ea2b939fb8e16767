"""Visualisations as PNG bytes, drawn with Pillow only.

* :func:`heatmap_png` - occlusion saliency: for each face, a grey patch slides over the (unaligned)
  256x256 face crop; the drop in P(fake) when a region is hidden is that region's saliency
  (how much it drives the "fake" score). The normalised map is overlaid in red on the face box.
* :func:`timeline_png` - one bar per window/chunk (height = P(fake); red at or above the decision
  threshold, green below, grey = no face), with a dashed line at the threshold. A score of 0 still
  gets a 1-pixel bar.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sleuth.models.faces import Face, decode_rgb
from sleuth.pipelines.faces import CROP_MARGIN, crop_face

PATCH = 32
STRIDE = 32
MAX_HEATMAP_FACES = 4
MAX_SIDE = 1024


def occlusion_map(crop: np.ndarray, model: Any, patch: int = PATCH, stride: int = STRIDE) -> np.ndarray:
    """``[n, n]`` map of P(fake) drops when a grey ``patch`` hides each cell of a 256x256 crop."""
    size = crop.shape[0]
    starts = list(range(0, size - patch + 1, stride))
    variants = [crop]
    for y in starts:
        for x in starts:
            v = crop.copy()
            v[y : y + patch, x : x + patch] = 128
            variants.append(v)
    scores = model.score_crops(variants)
    base = scores[0]
    return np.asarray(base - scores[1:], dtype=np.float64).reshape(len(starts), len(starts))


def heatmap_png(image: bytes | np.ndarray, faces: Sequence[Face], model: Any) -> bytes:
    """Image with each face's occlusion-saliency map overlaid (red = drives the fake score)."""
    from PIL import Image, ImageDraw

    rgb = decode_rgb(image)
    out = Image.fromarray(rgb).convert("RGBA")
    for face in list(faces)[:MAX_HEATMAP_FACES]:
        crop = crop_face(rgb, face, align=False)
        sal = np.clip(occlusion_map(crop, model), 0, None)
        peak = float(sal.max())
        norm = sal / peak if peak > 1e-6 else np.zeros_like(sal)
        x1, y1, x2, y2 = face.box
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        side = max(x2 - x1, y2 - y1) * CROP_MARGIN
        side_px = max(1, round(side))
        alpha = Image.fromarray((norm * 160).astype(np.uint8), "L").resize(
            (side_px, side_px), Image.Resampling.BILINEAR
        )
        red = Image.new("RGBA", (side_px, side_px), (255, 0, 0, 0))
        red.putalpha(alpha)
        _paste_clipped(out, red, round(cx - side / 2), round(cy - side / 2))
        ImageDraw.Draw(out).rectangle([x1, y1, x2, y2], outline=(255, 255, 0, 255), width=max(2, side_px // 100))
    img = out.convert("RGB")
    if max(img.size) > MAX_SIDE:
        img.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def _paste_clipped(base: Any, layer: Any, x: int, y: int) -> None:
    """alpha_composite that tolerates a layer hanging over the top/left edge."""
    cx, cy = max(0, -x), max(0, -y)
    if cx >= layer.width or cy >= layer.height:
        return
    base.alpha_composite(layer.crop((cx, cy, layer.width, layer.height)), dest=(max(0, x), max(0, y)))


def timeline_png(
    chunks: Sequence[Mapping[str, Any]], width: int = 800, height: int = 200, threshold: float = 0.5
) -> bytes:
    """Bar chart of ``[{"start", "end", "score"}, ...]`` (score None = no face, drawn grey)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), (255, 255, 255))
    d = ImageDraw.Draw(img)
    left, right, top, bottom = 40, width - 10, 10, height - 25
    d.line([(left, top), (left, bottom), (right, bottom)], fill=(0, 0, 0))
    for frac, text in ((0.0, "0"), (0.5, "0.5"), (1.0, "1")):
        yy = bottom - frac * (bottom - top)
        d.text((4, yy - 6), text, fill=(0, 0, 0))
    if chunks:
        t0 = min(float(c["start"]) for c in chunks)
        t1 = max(float(c["end"]) for c in chunks)
        span = max(t1 - t0, 1e-9)
        for c in chunks:
            xa = left + (float(c["start"]) - t0) / span * (right - left)
            xb = left + (float(c["end"]) - t0) / span * (right - left)
            sc = c.get("score")
            if sc is None:
                d.rectangle([xa + 1, bottom - 4, max(xa + 1, xb - 1), bottom - 1], fill=(170, 170, 170))
                continue
            frac = min(1.0, max(0.0, float(sc)))
            yy = min(bottom - 1, bottom - frac * (bottom - top))  # a near-0 score: still a 1 px bar
            colour = (220, 40, 40) if float(sc) >= threshold else (40, 160, 60)
            d.rectangle([xa + 1, yy, max(xa + 1, xb - 1), bottom - 1], fill=colour)
        d.text((left, bottom + 6), f"{t0:.1f}s", fill=(0, 0, 0))
        d.text((right - 40, bottom + 6), f"{t1:.1f}s", fill=(0, 0, 0))
    y_half = bottom - min(1.0, max(0.0, threshold)) * (bottom - top)
    for x in range(left, right, 8):
        d.line([(x, y_half), (min(x + 4, right), y_half)], fill=(60, 60, 60))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
