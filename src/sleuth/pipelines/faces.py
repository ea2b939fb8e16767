"""Face detection on (possibly large) images, face crops for MesoNet, and IoU tracking.

* :func:`detect_faces` runs the detector on a copy downscaled to ``max_side`` (cheap on 1080p)
  and maps the boxes back to original pixels.
* :func:`crop_face` cuts a square crop around a face with a margin, rotated so the eyes are
  level when landmarks are known (one affine warp: crop + align + resize together).
  Framing: MesoNet's own test crops (``shared/data/faces``) are about 1.0-1.3x the MTCNN box's
  longer side, so the default margin is 1.2x.
* :class:`IoUTracker` links faces across sampled frames by box IoU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from sleuth.models.faces import MTCNN, Face

CROP_MARGIN = 1.2
DETECT_MAX_SIDE = 640
MIN_FACE_FRACTION = 0.04  # smallest face searched, as a fraction of the shorter image side


def detect_faces(
    detector: MTCNN, rgb: np.ndarray, max_side: int = DETECT_MAX_SIDE, min_score: float = 0.9
) -> list[Face]:
    """Faces in ``rgb`` (HxWx3 uint8) with boxes/landmarks in original pixels, best first."""
    import cv2

    h, w = rgb.shape[:2]
    s = min(1.0, max_side / max(h, w))
    small = rgb
    if s < 1.0:
        small = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    min_face = max(20, int(MIN_FACE_FRACTION * min(small.shape[:2])))
    faces = [f for f in detector.detect(small, min_face=min_face) if f.score >= min_score]
    return [f.scaled(1.0 / s) for f in faces] if s < 1.0 else faces


def crop_face(
    rgb: np.ndarray, face: Face, size: int = 256, margin: float = CROP_MARGIN, align: bool = True
) -> np.ndarray:
    """Square ``size`` x ``size`` uint8 crop around ``face`` (outside the image = black)."""
    import cv2

    x1, y1, x2, y2 = face.box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    side = max(x2 - x1, y2 - y1) * margin
    angle = 0.0
    if align and len(face.landmarks) >= 2:
        (lx, ly), (rx, ry) = face.landmarks[0], face.landmarks[1]
        angle = math.degrees(math.atan2(ry - ly, rx - lx))
    scale = size / max(side, 1.0)
    # rotate about the face centre by the eye angle, scale to the output, centre in the output
    m = cv2.getRotationMatrix2D((cx, cy), angle, scale)
    m[0, 2] += size / 2 - cx
    m[1, 2] += size / 2 - cy
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    out = cv2.warpAffine(rgb, m, (size, size), flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return np.asarray(out)


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two x1y1x2y2 boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Track:
    track_id: int
    last_box: tuple[float, float, float, float]
    last_index: int
    members: list[tuple[int, int]] = field(default_factory=list)  # (frame index, face index)


class IoUTracker:
    """Greedy IoU association of faces in consecutive sampled frames.

    A face joins the track whose last box overlaps it most (IoU >= ``min_iou``), provided that track
    was seen within ``max_gap`` sampled frames; otherwise it starts a new track.
    """

    def __init__(self, min_iou: float = 0.3, max_gap: int = 2) -> None:
        self.min_iou = min_iou
        self.max_gap = max_gap
        self.tracks: list[Track] = []

    def update(self, frame_index: int, faces: Sequence[Face]) -> list[int]:
        """Assign each face of frame ``frame_index`` a track id (returned in face order)."""
        live = [t for t in self.tracks if frame_index - t.last_index <= self.max_gap]
        pairs = sorted(
            ((iou(t.last_box, f.box), ti, fi) for ti, t in enumerate(live) for fi, f in enumerate(faces)),
            reverse=True,
        )
        ids: list[int | None] = [None] * len(faces)
        used: set[int] = set()
        for ov, ti, fi in pairs:
            if ov < self.min_iou:
                break
            if ti in used or ids[fi] is not None:
                continue
            used.add(ti)
            ids[fi] = live[ti].track_id
        out: list[int] = []
        for fi, f in enumerate(faces):
            tid = ids[fi]
            if tid is None:
                tid = len(self.tracks)
                self.tracks.append(Track(tid, f.box, frame_index))
            t = self.tracks[tid]
            t.last_box, t.last_index = f.box, frame_index
            t.members.append((frame_index, fi))
            out.append(tid)
        return out
