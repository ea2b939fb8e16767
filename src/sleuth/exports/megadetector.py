"""MegaDetector batch output format 1.6 (https://lila.science/megadetector-output-format).

Writing:

* ``info``: ``format_version "1.6"``, ``detector``, ``detection_completion_time``,
  ``classifier``, ``classification_completion_time``, ``detector_metadata``,
  ``classifier_metadata`` (times as ``"%Y-%m-%d %H:%M:%S"``, like run_detector_batch).
* ``detection_categories``: ``{"1": "animal", "2": "person", "3": "vehicle"}``.
* ``classification_categories`` (id -> common name) and
  ``classification_category_descriptions`` (id -> full label/taxonomy string): ids are
  ``"0", "1", ...`` in order of first appearance, written only when some detection has a
  label or classifications.
* per image: ``file``, ``detections`` (``null`` with ``failure``), ``width``, ``height``,
  ``datetime`` (EXIF ``"%Y:%m:%d %H:%M:%S"``), ``exif_metadata``; videos add ``frame_rate``,
  ``frames_processed`` and per-detection ``frame_number``.
* per detection: ``category``, ``conf`` (3 decimals), ``bbox`` (4 decimals), and
  ``classifications`` ``[[id, conf], ...]`` sorted by descending confidence. A record's
  ``label`` is written as a classification too (if it is not one already), so on reading back
  ``label`` is the top-1 classification.

Human review (the web app): a reviewed detection carries ``review`` ``{status: confirmed|corrected|added,
reviewer, reviewed_at, machine_label?}`` and its reviewed label is its top classification (confidence 1.0, the
model's classifications follow); an image a person marked blank or reviewed carries ``review`` ``{status:
blank|reviewed, reviewer, reviewed_at, rejected_boxes?}`` (rejected boxes are left out of ``detections``). Both are
read back by :func:`from_md_dict`.

Timezone-aware datetimes are written as EXIF wall-clock time plus
``exif_metadata["OffsetTimeOriginal"]`` (``"+02:00"``), which the reader re-attaches.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sleuth.exports.records import (
    DETECTION_CATEGORIES,
    DetectionRecord,
    ImageRecord,
    ReviewMark,
    RunInfo,
    is_video_file,
)
from sleuth.exports.taxonomy import parse_label

FORMAT_VERSION = "1.6"
EXIF_DATETIME = "%Y:%m:%d %H:%M:%S"
INFO_TIME = "%Y-%m-%d %H:%M:%S"
CONF_DECIMALS = 3
COORD_DECIMALS = 4

_OFFSET_RE = re.compile(r"^([+-])(\d{2}):?(\d{2})$")


def _fmt_offset(dt: datetime) -> str | None:
    off = dt.utcoffset()
    if off is None:
        return None
    total = int(off.total_seconds() // 60)
    sign = "+" if total >= 0 else "-"
    total = abs(total)
    return f"{sign}{total // 60:02d}:{total % 60:02d}"


def _parse_offset(text: Any) -> timezone | None:
    if not isinstance(text, str):
        return None
    text = text.strip()
    if text in ("Z", "z"):
        return UTC
    m = _OFFSET_RE.match(text)
    if not m:
        return None
    minutes = int(m.group(2)) * 60 + int(m.group(3))
    return timezone(timedelta(minutes=minutes if m.group(1) == "+" else -minutes))


def parse_datetime(text: Any, offset: Any = None) -> datetime | None:
    """Parse an EXIF (``2010:08:04 08:43:15``) or ISO 8601 datetime string; None if unparseable."""
    if isinstance(text, datetime):
        return text
    if not isinstance(text, str) or not text.strip():
        return None
    s = text.strip().rstrip("\x00")
    dt: datetime | None = None
    for fmt in (EXIF_DATETIME, "%Y-%m-%d %H:%M:%S", "%Y:%m:%d %H:%M:%S.%f"):
        try:
            dt = datetime.strptime(s, fmt)
            break
        except ValueError:
            continue
    if dt is None:
        try:
            dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
        except ValueError:
            return None
    if dt.tzinfo is None:
        tz = _parse_offset(offset)
        if tz is not None:
            dt = dt.replace(tzinfo=tz)
    return dt


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace").rstrip("\x00")
    if isinstance(value, datetime):
        return value.strftime(EXIF_DATETIME)
    return str(value)


class _LabelTable:
    """Assigns classification category ids ("0", "1", ...) in order of first appearance."""

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}

    def id_for(self, label: str) -> str:
        if label not in self.ids:
            self.ids[label] = str(len(self.ids))
        return self.ids[label]

    def categories(self) -> dict[str, str]:
        return {cid: parse_label(label).name for label, cid in self.ids.items()}

    def descriptions(self) -> dict[str, str]:
        return {cid: label for label, cid in self.ids.items()}


def _det_classifications(det: DetectionRecord) -> list[tuple[str, float]]:
    items = list(det.classifications)
    if det.label is not None and all(lbl != det.label for lbl, _ in items):
        score = det.label_score if det.label_score is not None else det.conf
        items.append((det.label, float(score)))
    # stable sort: the explicit label wins ties
    if det.label is not None:
        items.sort(key=lambda c: 0 if c[0] == det.label else 1)
    items.sort(key=lambda c: -c[1])
    return items


def _r(value: float, decimals: int) -> float:
    return float(round(float(value), decimals))


def to_md_dict(records: Sequence[ImageRecord], info: RunInfo | None = None) -> dict[str, Any]:
    """Build the MD 1.6 results dict."""
    info = info or RunInfo()
    labels = _LabelTable()
    images: list[dict[str, Any]] = []
    for rec in records:
        im: dict[str, Any] = {"file": rec.file}
        video = rec.is_video or is_video_file(rec.file)
        if rec.failure is not None:
            im["failure"] = str(rec.failure)
            im["detections"] = None
        else:
            dets = []
            for det in rec.detections:
                d: dict[str, Any] = {
                    "category": str(det.category),
                    "conf": _r(det.conf, CONF_DECIMALS),
                    "bbox": [_r(v, COORD_DECIMALS) for v in det.bbox],
                }
                cls = _det_classifications(det)
                if cls:
                    d["classifications"] = [[labels.id_for(lbl), _r(s, CONF_DECIMALS)] for lbl, s in cls]
                if video or det.frame_number is not None:
                    d["frame_number"] = int(det.frame_number) if det.frame_number is not None else 0
                if det.repeat:
                    d["repeat_detection"] = True  # sleuth's flag (repeat detection elimination); MD ignores it
                if det.review is not None:
                    d["review"] = det.review.to_dict()
                dets.append(d)
            im["detections"] = dets
        if rec.width is not None:
            im["width"] = int(rec.width)
        if rec.height is not None:
            im["height"] = int(rec.height)
        exif = dict(rec.exif)
        if rec.datetime is not None:
            im["datetime"] = rec.datetime.strftime(EXIF_DATETIME)
            offset = _fmt_offset(rec.datetime)
            if offset is not None:
                exif["OffsetTimeOriginal"] = offset
        if exif:
            im["exif_metadata"] = _jsonable(exif)
        if video:
            im["frame_rate"] = float(rec.frame_rate) if rec.frame_rate is not None else -1.0
            im["frames_processed"] = [int(f) for f in (rec.frames_processed or [])]
        if rec.review is not None:
            im["review"] = rec.review.to_dict()
        images.append(im)

    md_info: dict[str, Any] = {"format_version": FORMAT_VERSION}
    if info.detector:
        md_info["detector"] = info.detector
    if info.completion_time is not None:
        md_info["detection_completion_time"] = info.completion_time.strftime(INFO_TIME)
    if info.classifier:
        md_info["classifier"] = info.classifier
    if info.classification_completion_time is not None:
        md_info["classification_completion_time"] = info.classification_completion_time.strftime(INFO_TIME)
    det_meta = dict(info.detector_metadata)
    if info.threshold is not None:
        det_meta.setdefault("typical_detection_threshold", float(info.threshold))
    if det_meta:
        md_info["detector_metadata"] = _jsonable(det_meta)
    if info.classifier_metadata:
        md_info["classifier_metadata"] = _jsonable(info.classifier_metadata)
    for k, v in info.extra.items():
        md_info.setdefault(k, _jsonable(v))

    out: dict[str, Any] = {
        "info": md_info,
        "detection_categories": {str(k): v for k, v in DETECTION_CATEGORIES.items()},
    }
    if labels.ids:
        out["classification_categories"] = labels.categories()
        out["classification_category_descriptions"] = labels.descriptions()
    out["images"] = images
    return out


def write_md(records: Sequence[ImageRecord], info: RunInfo | None, path: str | Path) -> Path:
    """Write an MD 1.6 results file (UTF-8 JSON, indent 1 like MegaDetector)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_md_dict(records, info), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _parse_info_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    for fmt in (INFO_TIME, "%Y-%m-%d %H:%M:%S.%f"):
        try:
            return datetime.strptime(value, fmt)
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


_INFO_KEYS = {
    "format_version",
    "detector",
    "detection_completion_time",
    "classifier",
    "classification_completion_time",
    "detector_metadata",
    "classifier_metadata",
}


def from_md_dict(d: Any) -> tuple[list[ImageRecord], RunInfo]:
    """Parse an MD results dict (format >= 1.3) into records; raises ValueError if malformed."""
    if not isinstance(d, dict):
        raise ValueError("MD results must be a JSON object")
    for key in ("info", "images", "detection_categories"):
        if key not in d:
            raise ValueError(f"MD results file has no {key!r} field")
    raw_info = d["info"]
    if not isinstance(raw_info, dict) or "format_version" not in raw_info:
        raise ValueError("MD results info has no format_version")
    try:
        version = float(raw_info["format_version"])
    except (TypeError, ValueError):
        raise ValueError(f"bad MD format_version {raw_info['format_version']!r}") from None
    if version < 1.3:
        raise ValueError(f"MD format_version {version} is older than 1.3 and not supported")

    det_cats = d["detection_categories"]
    name_to_cat = {v: k for k, v in DETECTION_CATEGORIES.items()}
    cat_map: dict[str, int] = {}
    for cid, name in det_cats.items():
        if name in name_to_cat:
            cat_map[str(cid)] = name_to_cat[name]
        elif str(cid) in {"1", "2", "3"}:
            cat_map[str(cid)] = int(cid)
    descriptions = d.get("classification_category_descriptions") or {}
    names = d.get("classification_categories") or {}
    label_of = {str(k): str(descriptions.get(k, v)) for k, v in names.items()}
    for k, v in descriptions.items():
        label_of.setdefault(str(k), str(v))

    detector_metadata = dict(raw_info.get("detector_metadata") or {})
    threshold = detector_metadata.get("typical_detection_threshold")
    info = RunInfo(
        detector=raw_info.get("detector"),
        classifier=raw_info.get("classifier"),
        threshold=float(threshold) if isinstance(threshold, (int, float)) else None,
        completion_time=_parse_info_time(raw_info.get("detection_completion_time")),
        classification_completion_time=_parse_info_time(raw_info.get("classification_completion_time")),
        detector_metadata=detector_metadata,
        classifier_metadata=dict(raw_info.get("classifier_metadata") or {}),
        extra={k: v for k, v in raw_info.items() if k not in _INFO_KEYS},
    )

    if not isinstance(d["images"], list):
        raise ValueError("MD results 'images' must be a list")
    records: list[ImageRecord] = []
    for i, im in enumerate(d["images"]):
        if not isinstance(im, dict) or not isinstance(im.get("file"), str):
            raise ValueError(f"MD results image #{i} has no 'file'")
        file = im["file"]
        failure = im.get("failure")
        dets: list[DetectionRecord] = []
        if failure is None:
            raw_dets = im.get("detections")
            if not isinstance(raw_dets, list):
                raise ValueError(f"MD results image {file!r} has no detections list and no failure")
            for det in raw_dets:
                cid = str(det.get("category"))
                if cid not in cat_map:
                    raise ValueError(f"image {file!r}: unknown detection category {cid!r}")
                bbox = det.get("bbox")
                if not isinstance(bbox, list) or len(bbox) != 4:
                    raise ValueError(f"image {file!r}: bad bbox {bbox!r}")
                cls: list[tuple[str, float]] = []
                for c in det.get("classifications") or []:
                    lid = str(c[0])
                    if lid not in label_of:
                        raise ValueError(f"image {file!r}: unknown classification category {lid!r}")
                    cls.append((label_of[lid], float(c[1])))
                cls.sort(key=lambda c: -c[1])
                fn = det.get("frame_number")
                dets.append(
                    DetectionRecord(
                        category=cat_map[cid],
                        conf=float(det["conf"]),
                        bbox=(float(bbox[0]), float(bbox[1]), float(bbox[2]), float(bbox[3])),
                        label=cls[0][0] if cls else None,
                        label_score=cls[0][1] if cls else None,
                        classifications=cls,
                        frame_number=int(fn) if fn is not None else None,
                        repeat=det.get("repeat_detection") is True,
                        review=ReviewMark.from_dict(det.get("review")),
                    )
                )
        exif = dict(im.get("exif_metadata") or {})
        offset = exif.pop("OffsetTimeOriginal", None)
        dt = parse_datetime(im.get("datetime"), offset)
        if offset is not None and (dt is None or dt.tzinfo is None):
            exif["OffsetTimeOriginal"] = offset  # not ours: keep it
        video = "frame_rate" in im or "frames_processed" in im or is_video_file(file)
        frame_rate = im.get("frame_rate")
        records.append(
            ImageRecord(
                file=file,
                detections=dets,
                width=im.get("width"),
                height=im.get("height"),
                datetime=dt,
                exif=exif,
                failure=str(failure) if failure is not None else None,
                is_video=video,
                frame_rate=(float(frame_rate) if isinstance(frame_rate, (int, float)) and frame_rate >= 0 else None),
                frames_processed=list(im["frames_processed"]) if "frames_processed" in im else None,
                review=ReviewMark.from_dict(im.get("review")),
            )
        )
    return records, info


def read_json(path: str | Path) -> Any:
    """A results file's JSON; ValueError with a clear message if it is missing or not JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"results file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not a JSON file: {exc}") from None


def read_md(path: str | Path) -> tuple[list[ImageRecord], RunInfo]:
    """Read an MD results file; raises ValueError with a clear message if it is not one."""
    return from_md_dict(read_json(path))


def iter_labels(records: Iterable[ImageRecord]) -> list[str]:
    """All distinct labels (top label of each detection), in order of first appearance."""
    seen: dict[str, None] = {}
    for rec in records:
        for det in rec.detections:
            lbl, _ = det.top_label()
            if lbl is not None:
                seen.setdefault(lbl, None)
    return list(seen)
