"""Repeat detection elimination (MegaDetector's RDE idea): boxes that recur at one place across a camera's images.

A camera trap takes thousands of frames from one viewpoint. A detector that takes a branch, a sign post or
a logo for an animal does so on most of them, at the same place. A box is a *repeat* when boxes with
IoU >= ``iou`` occur in at least ``min_occurrences`` images of the same camera (its own image included,
each image counted once). Only boxes with ``conf >= min_conf`` count, and boxes larger than ``max_area`` of
the frame are never flagged (an animal filling the frame recurs too). The size limit, the 10 images and
conf >= 0.1 are MegaDetector's RDE defaults; its IoU 0.85 is not: MD-Lite's boxes on one sign post jitter
from frame to frame (IoU 0.55-0.8 on the shared squirrel camera), so 0.5 (measured in docs/accuracy.md: on
the shared set, 24 false boxes flagged and no true one). RDE ends in a manual review at MegaDetector, so
sleuth flags by default and drops only when asked (``sleuth detect --suppress-repeats``, the async job
option ``suppress_repeats``). An animal that sits still for ten frames is flagged too.

* :func:`flag_repeats` -- a whole folder at once (``sleuth detect``: every image before and after counts);
* :func:`flag_against_history` -- one new image against the camera's earlier ones (async jobs, which arrive
  one at a time: only earlier images count, so a camera's first images are never flagged).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sleuth.models.detection import iou_matrix, norm_xywh_to_xyxy

__all__ = ["RepeatRule", "camera_of", "flag_against_history", "flag_repeats"]

Box = Sequence[float]  # normalised [x, y, w, h]


@dataclass(frozen=True)
class RepeatRule:
    iou: float = 0.5
    min_occurrences: int = 10
    min_conf: float = 0.1
    max_area: float = 0.2

    def counts(self, bbox: Box, conf: float) -> bool:
        return conf >= self.min_conf and float(bbox[2]) * float(bbox[3]) <= self.max_area


def _occurrences(boxes: Sequence[Box], others: Sequence[Sequence[Box]], iou: float) -> np.ndarray:
    """Per box: in how many of ``others`` (images) a box with IoU >= ``iou`` occurs."""
    out = np.zeros(len(boxes), dtype=np.int64)
    if not len(boxes):
        return out
    a = norm_xywh_to_xyxy(boxes)
    for img in others:
        if len(img):
            out += (iou_matrix(a, norm_xywh_to_xyxy(img)) >= iou).any(axis=1)
    return out


def flag_repeats(images: Sequence[Sequence[tuple[Box, float]]], rule: RepeatRule | None = None) -> list[list[bool]]:
    """Per image of one camera, per ``(bbox, conf)``: whether that box is a repeat."""
    rule = rule or RepeatRule()
    counted = [[b for b, c in img if rule.counts(b, c)] for img in images]
    out: list[list[bool]] = []
    for i, img in enumerate(images):
        if not img:
            out.append([])
            continue
        others = counted[:i] + counted[i + 1 :]
        occ = _occurrences([b for b, _ in img], others, rule.iou) + 1
        out.append([bool(rule.counts(b, c) and n >= rule.min_occurrences) for (b, c), n in zip(img, occ, strict=True)])
    return out


def flag_against_history(
    current: Sequence[tuple[Box, float]], history: Sequence[Sequence[Box]], rule: RepeatRule | None = None
) -> list[bool]:
    """Per box of a new image: a repeat of the camera's earlier images (``history``: their counted boxes)?"""
    rule = rule or RepeatRule()
    if not current:
        return []
    occ = _occurrences([b for b, _ in current], history, rule.iou) + 1
    return [bool(rule.counts(b, c) and n >= rule.min_occurrences) for (b, c), n in zip(current, occ, strict=True)]


def camera_of(client_reference_id: str | None, serial: str | None) -> str | None:
    """An async job's camera: its ``client_reference_id`` up to the first ``/`` (``"cam-07/IMG_0001.JPG"`` ->
    ``"ref:cam-07"``, Animal Detect's own example groups images that way), else the EXIF camera serial
    (``"serial:..."``), else None (not grouped: no repeat detection)."""
    if client_reference_id and "/" in client_reference_id:
        prefix = client_reference_id.split("/", 1)[0].strip()
        if prefix:
            return "ref:" + prefix
    if serial:
        return "serial:" + serial.strip()
    return None
