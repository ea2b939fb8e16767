"""Flat CSV: one row per detection at or above the export threshold.

Columns (:data:`CSV_COLUMNS`): ``file, camera, datetime`` (ISO 8601, offset if known),
``event_id, category`` (animal/person/vehicle; ``blank`` for an image without kept boxes;
``failure`` for an unreadable file), ``conf, label`` (common name), ``scientific_name,
label_score, taxonomy`` (the full label string), ``bbox_x, bbox_y, bbox_w, bbox_h``
(normalised), ``frame_number`` (videos), ``failure`` (the failure message) and, for what a person reviewed in the
web app, ``review_status`` (confirmed/corrected/added on a box row, blank on an image row), ``reviewer`` and
``reviewed_at``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from sleuth.exports.records import ImageRecord, ReviewMark, RunInfo
from sleuth.exports.sequences import DEFAULT_GAP_SECONDS, event_index, group_events
from sleuth.exports.taxonomy import parse_label

CSV_COLUMNS = [
    "file",
    "camera",
    "datetime",
    "event_id",
    "category",
    "conf",
    "label",
    "scientific_name",
    "label_score",
    "taxonomy",
    "bbox_x",
    "bbox_y",
    "bbox_w",
    "bbox_h",
    "frame_number",
    "failure",
    "review_status",
    "reviewer",
    "reviewed_at",
]


def _num(value: float | None, decimals: int) -> str:
    if value is None:
        return ""
    return f"{round(float(value), decimals):.{decimals}f}"


def _review_cols(review: ReviewMark) -> dict[str, str]:
    d = review.to_dict()
    return {"review_status": d["status"], "reviewer": d["reviewer"], "reviewed_at": d["reviewed_at"]}


def csv_rows(
    records: Sequence[ImageRecord],
    info: RunInfo | None = None,
    *,
    threshold: float | None = None,
    gap_seconds: float = DEFAULT_GAP_SECONDS,
) -> list[dict[str, str]]:
    info = info or RunInfo()
    thr = info.resolve_threshold(threshold)
    ev_of = event_index(group_events(records, gap_seconds))
    rows: list[dict[str, str]] = []
    for rec in records:
        base = dict.fromkeys(CSV_COLUMNS, "")
        base.update(
            {
                "file": rec.file,
                "camera": rec.camera_folder,
                "datetime": rec.datetime.isoformat(sep=" ", timespec="seconds") if rec.datetime else "",
                "event_id": ev_of[rec.file][0].event_id if rec.file in ev_of else "",
            }
        )
        if rec.failure is not None:
            base.update({"category": "failure", "failure": rec.failure})
            rows.append(base)
            continue
        kept = rec.kept(thr)
        if not kept:
            base["category"] = "blank"
            if rec.review is not None:
                base.update(_review_cols(rec.review))
            rows.append(base)
            continue
        for det in kept:
            row = dict(base)
            label, score = det.top_label()
            taxon = parse_label(label) if label is not None else None
            row.update(
                {
                    "category": det.category_name,
                    "conf": _num(det.conf, 3),
                    "label": taxon.name if taxon else "",
                    "scientific_name": (taxon.scientific_name or "") if taxon else "",
                    "label_score": _num(score, 3),
                    "taxonomy": label or "",
                    "bbox_x": _num(det.bbox[0], 4),
                    "bbox_y": _num(det.bbox[1], 4),
                    "bbox_w": _num(det.bbox[2], 4),
                    "bbox_h": _num(det.bbox[3], 4),
                    "frame_number": str(det.frame_number) if det.frame_number is not None else "",
                }
            )
            if det.review is not None:
                row.update(_review_cols(det.review))
            rows.append(row)
    return rows


def to_csv_text(
    records: Sequence[ImageRecord],
    info: RunInfo | None = None,
    *,
    threshold: float | None = None,
    gap_seconds: float = DEFAULT_GAP_SECONDS,
) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_rows(records, info, threshold=threshold, gap_seconds=gap_seconds))
    return buf.getvalue()


def write_csv(
    records: Sequence[ImageRecord],
    info: RunInfo | None,
    path: str | Path,
    *,
    threshold: float | None = None,
    gap_seconds: float = DEFAULT_GAP_SECONDS,
) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = to_csv_text(records, info, threshold=threshold, gap_seconds=gap_seconds)
    path.write_text(text, encoding="utf-8")
    return path
