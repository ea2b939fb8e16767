"""Repeat detection elimination over a finished folder run: flag (and, when asked, drop) recurring boxes."""

from __future__ import annotations

from collections.abc import Sequence

from sleuth.exports.records import ImageRecord
from sleuth.pipelines.wildlife.repeats import RepeatRule, flag_repeats


def flag_folder_repeats(
    records: Sequence[ImageRecord], *, suppress: bool = False, rule: RepeatRule | None = None
) -> tuple[int, int]:
    """Flag ``DetectionRecord.repeat`` per camera folder (the file's parent folder, or ``record.camera``);
    with ``suppress`` the flagged boxes are removed. Videos are left alone (their frames are one visit, where
    a still animal recurs by nature). Returns (boxes flagged, cameras with a flagged box)."""
    by_camera: dict[str, list[ImageRecord]] = {}
    for rec in records:
        if rec.failure is None and not rec.is_video:
            by_camera.setdefault(rec.camera_folder, []).append(rec)
    flagged = cameras = 0
    for recs in by_camera.values():
        flags = flag_repeats([[(d.bbox, d.conf) for d in r.detections] for r in recs], rule)
        n = 0
        for rec, per in zip(recs, flags, strict=True):
            for det, f in zip(rec.detections, per, strict=True):
                det.repeat = f
                n += f
            if suppress:
                rec.detections = [d for d in rec.detections if not d.repeat]
        flagged += n
        cameras += n > 0
    return flagged, cameras
