"""Stored wildlife API results -> export records (:class:`~sleuth.exports.records.ImageRecord`).

One code path for the server's exports (:mod:`sleuth.services.exports`) and for ``sleuth export`` on a saved API
response: a ``/v1/batch-detect`` (or urban/filter) response, a ``/v1/detect`` or ``/v1/detect-url`` response, an
async job's result (``GET /v1/jobs/{id}/result``), a ``GET /v1/detect/{id}`` response, or a JSON list of them.
Annotations are read exactly as ``sleuth detect --server`` reads them (the API reports the final ensemble score
as each box's confidence).
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sleuth.exports.records import DetectionRecord, ImageRecord, RunInfo
from sleuth.services.folder.engines import ItemResult, ServerEngine
from sleuth.services.folder.inputs import InputFile
from sleuth.services.folder.runner import _image_record


def is_api_payload(d: Any) -> bool:
    return isinstance(d, dict) and (
        isinstance(d.get("results"), list) or "annotations" in d or "detections" in d or d.get("status") == "error"
    )


def _failure(item: dict[str, Any]) -> str | None:
    if item.get("status") in ("failed", "error"):
        err = item.get("error") or {}
        return str(err.get("message") or err.get("code") or "failed") if isinstance(err, dict) else str(err)
    return None


def item_result(item: dict[str, Any]) -> ItemResult:
    """One image of an API response as the folder runner's :class:`ItemResult`."""
    msg = _failure(item)
    if msg is not None:
        return ItemResult(error=msg)
    if "annotations" not in item and isinstance(item.get("detections"), list):  # filter endpoints
        res = ServerEngine._parse({"results": [{k: v for k, v in item.items() if k != "detections"}]}, 1)[0]
        res.detections = [
            DetectionRecord(category=int(d.get("category") or 1), conf=float(d["score"]), bbox=tuple(d["bbox"]))
            for d in item["detections"]
        ]
        return res
    return ServerEngine._parse({"results": [item]}, 1)[0]


def item_record(item: dict[str, Any], file: str, camera: str | None = None) -> ImageRecord:
    rec = _image_record(InputFile(path=Path(file), name=file), item_result(item))
    rec.camera = camera
    boxes = item.get("annotations") or item.get("detections") or []
    if len(boxes) == len(rec.detections):  # the API's repeat-detection flag (recurring boxes of one camera)
        for det, box in zip(rec.detections, boxes, strict=True):
            det.repeat = isinstance(box, dict) and box.get("repeat_detection") is True
    return rec


@dataclass
class PayloadImage:
    result_id: str
    index: int
    item: dict[str, Any]
    filename: str


def payload_images(payload: dict[str, Any], result_id: str | None = None) -> list[PayloadImage]:
    """The images of one stored result or API response, with the file name each is exported under."""
    rid = str(result_id or payload.get("id") or "result")
    results = payload.get("results")
    if isinstance(results, list):
        out = []
        for i, item in enumerate(results):
            name = str(item.get("filename") or f"image_{i}") if isinstance(item, dict) else f"image_{i}"
            out.append(PayloadImage(rid, i, item if isinstance(item, dict) else {}, name))
        return out
    name = str(payload.get("filename") or "")
    if not name:
        src = (payload.get("info") or {}).get("source_url") if isinstance(payload.get("info"), dict) else None
        name = posixpath.basename(str(src).split("?")[0]) if src else ""
    return [PayloadImage(rid, 0, payload, str(name or rid))]


def unique_files(records: list[ImageRecord], result_ids: Sequence[str]) -> None:
    """Make file names unique: a name seen before is put under its result's id."""
    seen: set[str] = set()
    for rec, rid in zip(records, result_ids, strict=True):
        if rec.file in seen:
            head, tail = posixpath.split(rec.file)
            rec.file = posixpath.join(head, rid, tail)
        seen.add(rec.file)


def run_info(payloads: Sequence[dict[str, Any]]) -> RunInfo:
    """Provenance of a set of API results: the models that ran and, when all agree, the threshold applied."""
    versions: list[str] = []
    thresholds: set[float] = set()
    for p in payloads:
        infos = [p.get("info")] + [r.get("info") for r in (p.get("results") or []) if isinstance(r, dict)]
        for info in infos:
            if not isinstance(info, dict):
                continue
            mv = info.get("model_version")
            if isinstance(mv, str) and mv and mv not in versions:
                versions.append(mv)
            thr = info.get("threshold_applied")
            if isinstance(thr, (int, float)) and not isinstance(thr, bool):
                thresholds.add(float(thr))
    detector = classifier = None
    if versions:
        detector, _, classifier = versions[0].partition("+")
    return RunInfo(
        detector=detector or None,
        classifier=classifier or None,
        threshold=thresholds.pop() if len(thresholds) == 1 else None,
        extra={"model_versions": versions, "source": "sleuth API results"} if versions else {},
    )


def records_from_payloads(payloads: Sequence[dict[str, Any]]) -> tuple[list[ImageRecord], RunInfo]:
    records: list[ImageRecord] = []
    rids: list[str] = []
    for p in payloads:
        for img in payload_images(p):
            records.append(item_record(img.item, img.filename))
            rids.append(img.result_id)
    unique_files(records, rids)
    return records, run_info(payloads)


def read_results_file(path: str | Path) -> tuple[list[ImageRecord], RunInfo]:
    """A MegaDetector results file, or saved sleuth/Animal Detect API responses (one object or a list)."""
    from sleuth.exports.megadetector import from_md_dict, read_json

    d = read_json(path)
    if isinstance(d, dict) and "images" in d and "info" in d:
        return from_md_dict(d)
    items = d if isinstance(d, list) else [d]
    if items and all(is_api_payload(x) for x in items):
        return records_from_payloads(items)
    raise ValueError(
        f"{path} is neither a MegaDetector results file (info, images, detection_categories) nor a sleuth API "
        "response (batch-detect, detect, detect-url, a job result, or a list of them)"
    )
