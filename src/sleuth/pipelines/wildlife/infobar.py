"""The info bar a camera trap imprints at the top or bottom of its frames, found from the image; boxes in it.

Most camera traps stamp a band of text onto every frame: maker's logo, date and time, temperature, moon
phase, camera name. Detectors sometimes take a logo for an animal, and such a box repeats on every frame of
that camera. :func:`find_info_bars` finds the bands; :func:`in_info_bar` says whether a box lies in one.

A band is found, per edge, as rows ``[edge, edge + k)`` of a small grayscale copy of the frame (400 px wide)
such that, in enough column blocks (at least ``MIN_BLOCKS`` of ``BLOCKS``: bars need not span the whole
width), the band's pixels are mostly one flat background value, the same in all those blocks, a straight
boundary closes the band (most columns change sharply between row ``k - 1`` and ``k``), and the scene just
beyond it does not share that background. ``k`` is at most ``MAX_FRACTION`` of the height. The band must
hold some high-contrast pixels (the imprinted text). On the shared camera-trap set (docs/accuracy.md) a bar
is found on 40 of the 42 frames that show one (Reconyx, Bushnell, Browning, Cuddeback, BigFoot/SY,
ScoutGuard, DLC); the two misses are Reconyx frames whose 2 %-high bars sit on a dark scene.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["InfoBar", "find_info_bars", "in_info_bar"]

WIDTH = 400  # analysis width (pixels)
BLOCKS = 16  # column blocks
MIN_BLOCKS = 4  # a bar covers at least a quarter of the width
MAX_FRACTION = 0.14  # a bar is at most this fraction of the height
MIN_FRACTION = 0.012  # ... and at least this
NEAR = 14  # grey levels: "the background value"
STEP = 24  # grey levels: a sharp change across the boundary
TEXT = 70  # grey levels from the background: imprinted text
IN_BAR = 0.4  # a box with at least this fraction of its height in the bar (and mostly over it) is dropped


@dataclass(frozen=True)
class InfoBar:
    """A band ``[y0, y1)`` of the frame (normalised), over the columns ``[x0, x1)`` it was found in."""

    side: str  # "top" | "bottom"
    y0: float
    y1: float
    x0: float = 0.0
    x1: float = 1.0


def _gray(rgb: np.ndarray) -> np.ndarray:
    g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    h, w = g.shape[:2]
    nh = max(8, round(WIDTH * h / max(1, w)))
    return cv2.resize(g, (WIDTH, nh), interpolation=cv2.INTER_AREA).astype(np.float32)


def _band(g: np.ndarray) -> tuple[int, list[int]] | None:
    """Rows [0, k) of ``g`` (edge first) forming a bar, and its column blocks; or None."""
    h, w = g.shape
    n = max(3, int(h * MAX_FRACTION))
    if h < 2 * n:
        return None
    bw = w // BLOCKS
    gb = g[: n + n // 3 + 2, : bw * BLOCKS].reshape(-1, BLOCKS, bw)  # rows x blocks x columns
    change = np.abs(np.diff(gb[: n + 1], axis=0)) > STEP  # boundary between row i and i + 1
    step = change.mean(axis=2)  # rows x blocks
    q = np.clip(gb[:n], 0, 255).astype(np.int64) // 8  # 8-level bins
    cell = (np.arange(n)[:, None, None] * BLOCKS + np.arange(BLOCKS)[None, :, None]) * 32
    hist = np.bincount((cell + q).ravel(), minlength=n * BLOCKS * 32).reshape(n, BLOCKS, 32)
    cum = np.cumsum(hist, axis=0)  # per row and block: the histogram of the band down to that row
    best: tuple[int, int, list[int]] | None = None
    for k in range(max(2, int(h * MIN_FRACTION)), n):
        ok_step = step[k - 1] >= 0.5
        if ok_step.sum() < MIN_BLOCKS:
            continue
        mode = cum[k - 1].argmax(axis=1) * 8.0 + 4.0  # per block: the band's background value
        band, beyond = gb[:k], gb[k : k + max(2, k // 3)]
        dist = np.abs(band - mode[None, :, None])
        near = (dist <= NEAR).mean(axis=(0, 2))
        outside = (np.abs(beyond - mode[None, :, None]) <= NEAR).mean(axis=(0, 2))
        text = (dist > TEXT).mean(axis=(0, 2))
        good = ok_step & (near >= 0.5) & (outside < near - 0.25)
        if good.sum() < MIN_BLOCKS:
            continue
        found: dict[int, list[int]] = {}  # background value (16-level bin) -> blocks
        for blk in np.flatnonzero(good):
            found.setdefault(int(mode[blk]) // 16, []).append(int(blk))
        blocks = max(found.values(), key=len)  # the blocks sharing one background
        if len(blocks) < MIN_BLOCKS or float(text[blocks].mean()) < 0.004:
            continue
        score = len(blocks) * 1000 + int(change[k - 1].mean() * 999)
        if best is None or score > best[0]:
            best = (score, k, blocks)
    return None if best is None else (best[1], best[2])


def find_info_bars(rgb: np.ndarray) -> list[InfoBar]:
    """The imprinted bars of one upright frame (HxWx3 RGB or HxW grey uint8): none, top, bottom or both."""
    g = _gray(np.asarray(rgb))
    h = g.shape[0]
    out = []
    for side, rows in (("top", g), ("bottom", g[::-1])):
        found = _band(rows)
        if found is None:
            continue
        k, blocks = found
        x0, x1 = blocks[0] / BLOCKS, (blocks[-1] + 1) / BLOCKS
        if x1 - x0 >= 0.5:  # a bar over most of the width spans all of it (a logo in it breaks the flat background)
            x0, x1 = 0.0, 1.0
        if side == "top":
            out.append(InfoBar(side, 0.0, k / h, x0, x1))
        else:
            out.append(InfoBar(side, 1.0 - k / h, 1.0, x0, x1))
    return out


def in_info_bar(bbox: Sequence[float], bars: Sequence[InfoBar]) -> bool:
    """Whether a normalised ``[x, y, w, h]`` box lies in a bar: at least ``IN_BAR`` of its height inside the
    bar's rows, and at least half of its width over the bar's columns. (A logo often stands out of the bar,
    so "entirely inside" would miss it; an animal at the frame's edge reaches far beyond the bar.)"""
    x, y, w, h = (float(v) for v in bbox)
    if w <= 0 or h <= 0:
        return False
    for bar in bars:
        dy = min(y + h, bar.y1) - max(y, bar.y0)
        dx = min(x + w, bar.x1) - max(x, bar.x0)
        if dy >= IN_BAR * h and dx >= 0.5 * w:
            return True
    return False
