"""COCO Camera Traps JSON (https://lila.science/coco-camera-traps).

* ``images``: ``id`` (= file), ``file_name``, ``width``, ``height``, ``datetime``
  (``"YYYY-MM-DD HH:MM:SS"``), ``seq_id``, ``seq_num_frames``, ``frame_num`` (from
  :func:`sleuth.exports.sequences.group_events`), ``location`` (camera folder), ``corrupt``
  (true for failures, which get no annotation).
* ``categories``: ``0 "empty"``, then one per name in order of first appearance. Names are the
  label's common name where a box has a label (``category_names="label"``, default) or the
  detector class animal/person/vehicle (``category_names="detector"``); lowercase.
* ``annotations``: one per kept box, ``bbox`` in absolute pixels (when width/height are known)
  and ``bbox_relative`` (normalised), plus ``conf`` and, for videos, ``frame_number``; one
  category-0 annotation (no box) per image without kept boxes.
* Human review (the web app): a reviewed annotation's category is its reviewed label and it carries ``review``
  ``{status: confirmed|corrected|added, reviewer, reviewed_at, machine_label?}``; an image a person marked blank
  or reviewed carries ``review`` ``{status: blank|reviewed, reviewer, reviewed_at, rejected_boxes?}``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sleuth.exports.records import ImageRecord, RunInfo
from sleuth.exports.sequences import DEFAULT_GAP_SECONDS, event_index, group_events
from sleuth.exports.taxonomy import parse_label


def to_coco_dict(
    records: Sequence[ImageRecord],
    info: RunInfo | None = None,
    *,
    threshold: float | None = None,
    gap_seconds: float = DEFAULT_GAP_SECONDS,
    category_names: str = "label",
    description: str = "sleuth camera-trap detection results",
) -> dict[str, Any]:
    if category_names not in ("label", "detector"):
        raise ValueError(f"category_names must be 'label' or 'detector', got {category_names!r}")
    info = info or RunInfo()
    thr = info.resolve_threshold(threshold)
    ev_of = event_index(group_events(records, gap_seconds))
    cat_ids: dict[str, int] = {"empty": 0}

    def cat(name: str) -> int:
        name = name.strip().lower() or "unknown"
        if name not in cat_ids:
            cat_ids[name] = len(cat_ids)
        return cat_ids[name]

    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for rec in records:
        im: dict[str, Any] = {"id": rec.file, "file_name": rec.file}
        if rec.width is not None:
            im["width"] = int(rec.width)
        if rec.height is not None:
            im["height"] = int(rec.height)
        if rec.datetime is not None:
            im["datetime"] = rec.datetime.strftime("%Y-%m-%d %H:%M:%S")
        if rec.file in ev_of:
            ev, frame = ev_of[rec.file]
            im.update({"seq_id": ev.event_id, "seq_num_frames": ev.size, "frame_num": frame})
        im["location"] = rec.camera_folder
        im["corrupt"] = rec.failure is not None
        if rec.review is not None:
            im["review"] = rec.review.to_dict()
        images.append(im)
        if rec.failure is not None:
            continue
        kept = rec.kept(thr)
        if not kept:
            annotations.append({"id": f"{rec.file}#empty", "image_id": rec.file, "category_id": 0})
            continue
        for k, det in enumerate(kept):
            label, _ = det.top_label()
            if category_names == "label" and label is not None:
                name = parse_label(label).name
            else:
                name = det.category_name
            x, y, w, h = det.bbox
            ann: dict[str, Any] = {
                "id": f"{rec.file}#{k}",
                "image_id": rec.file,
                "category_id": cat(name),
                "bbox_relative": [round(x, 6), round(y, 6), round(w, 6), round(h, 6)],
                "conf": round(det.conf, 4),
            }
            if rec.width and rec.height:
                W, H = float(rec.width), float(rec.height)
                ann["bbox"] = [round(x * W, 2), round(y * H, 2), round(w * W, 2), round(h * H, 2)]
            if det.frame_number is not None:
                ann["frame_number"] = det.frame_number
            if det.review is not None:
                ann["review"] = det.review.to_dict()
            annotations.append(ann)

    created = info.completion_time or datetime.now(UTC)
    return {
        "info": {
            "version": "1.0",
            "description": description,
            "year": created.year,
            "date_created": created.strftime("%Y-%m-%d"),
            "contributor": info.classified_by,
        },
        "images": images,
        "categories": [{"id": i, "name": n} for n, i in cat_ids.items()],
        "annotations": annotations,
    }


def write_coco(records: Sequence[ImageRecord], info: RunInfo | None, path: str | Path, **kwargs: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(to_coco_dict(records, info, **kwargs), indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return path
