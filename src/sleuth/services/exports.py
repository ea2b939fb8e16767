"""Exports over a team's stored wildlife results: MegaDetector JSON, Camtrap DP (a zip), CSV, COCO Camera Traps.

What is exported (any mix, deduplicated): results by id (a sync result's id or an async job's id), every job of
web-app uploads, and every result completed in a time range. Reviews are applied to every format (see
:mod:`sleuth.services.reviews` and the writers in :mod:`sleuth.exports`). An upload's deployment becomes its
Camtrap DP deployment (id, coordinates, camera); other results use the deployment given with the request.
"""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from sqlalchemy import select

from sleuth.db.models import StoredResult, Upload, utcnow
from sleuth.exports import FORMATS, CamtrapOptions, Deployment, ImageRecord, RunInfo
from sleuth.exports.records import DetectionRecord, ReviewMark
from sleuth.platform.context import Platform
from sleuth.platform.errors import SleuthError, bad_request
from sleuth.services import reviews as rv
from sleuth.services import uploads as up_svc
from sleuth.services.results import item_record, payload_images, run_info, unique_files

MAX_RESULTS = 10_000
MEDIA_TYPES = {"md": "application/json", "coco": "application/json", "csv": "text/csv", "camtrap-dp": "application/zip"}
EXTENSIONS = {"md": "json", "coco": "coco.json", "csv": "csv", "camtrap-dp": "zip"}


@dataclass
class ExportRequest:
    format: str
    ids: list[str] = field(default_factory=list)
    uploads: list[str] = field(default_factory=list)
    since: datetime | None = None
    until: datetime | None = None
    threshold: float | None = None
    gap_seconds: float = 60.0
    deployment: Deployment | None = None
    placeholder_coordinates: bool = False
    timezone: tzinfo | None = None
    include_reviews: bool = True


@dataclass
class _Source:
    result_id: str
    payload: dict[str, Any]
    created_at: datetime
    upload: Upload | None = None
    relpath: str | None = None  # an upload job's path inside the upload


@dataclass
class Export:
    content: bytes
    media_type: str
    filename: str
    images: int
    results: int
    skipped: list[str]  # why some of what was asked for is not in the file (jobs still running)


def _results(platform: Platform, team_id: str, ids: list[str]) -> dict[str, StoredResult]:
    out: dict[str, StoredResult] = {}
    now = utcnow()
    with platform.db.read_session() as s:
        for start in range(0, len(ids), 500):
            q = select(StoredResult).where(
                StoredResult.team_id == team_id,
                StoredResult.id.in_(ids[start : start + 500]),
                StoredResult.expires_at > now,
            )
            for r in s.scalars(q):
                s.expunge(r)
                out[r.id] = r
    return out


def _failed_job(platform: Platform, team_id: str, job_id: str) -> tuple[str, str | None] | None:
    """(status, error) of a wildlife job without a stored result, None if no such job."""
    from sleuth.services import wildlife_jobs as wj

    try:
        job, item = wj.get_job(platform, team_id, job_id)
    except SleuthError:
        return None
    return wj.status_of(job), item.error


def collect(platform: Platform, team_id: str, req: ExportRequest) -> tuple[list[_Source], list[str]]:
    """What ``req`` selects, in a stable order (uploads, then ids, then the time range), and what was skipped."""
    from sleuth.services import wildlife_jobs as wj

    sources: dict[str, _Source] = {}
    skipped: list[str] = []
    for uid in req.uploads:
        up = up_svc.get(platform, team_id, uid)
        if up.kind != "wildlife":
            raise bad_request(f"upload {uid} is a deepfake batch; exports are for wildlife results", "group")
        jobs = up_svc.upload_jobs(platform, up)
        stored = up_svc.results_of(platform, up)
        for job, item in jobs:
            rel = (job.client_reference_id or item.filename)[len(up.reference_prefix) :] or item.filename
            if job.id in stored:
                r = stored[job.id]
                sources.setdefault(job.id, _Source(job.id, r.payload, r.created_at, up, rel))
            elif job.status == "failed":
                failed = {"id": job.id, "status": "error", "error": {"message": item.error or "failed"}}
                sources.setdefault(job.id, _Source(job.id, failed, job.updated_at, up, rel))
            else:
                skipped.append(f"{rel}: {wj.status_of(job)}")
    if req.ids:
        stored = _results(platform, team_id, req.ids)
        for rid in req.ids:
            if rid in stored:
                r = stored[rid]
                sources.setdefault(rid, _Source(rid, r.payload, r.created_at))
                continue
            state = _failed_job(platform, team_id, rid)
            if state is None:
                raise SleuthError(404, "not_found", f"Result {rid} not found or expired", "ids")
            status, error = state
            if status == "failed":
                failed = {"id": rid, "status": "error", "error": {"message": error or "failed"}}
                sources.setdefault(rid, _Source(rid, failed, utcnow()))
            else:
                skipped.append(f"{rid}: {status}")
    if req.since is not None or req.until is not None:
        now = utcnow()
        with platform.db.read_session() as s:
            q = select(StoredResult).where(StoredResult.team_id == team_id, StoredResult.expires_at > now)
            if req.since is not None:
                q = q.where(StoredResult.created_at >= req.since)
            if req.until is not None:
                q = q.where(StoredResult.created_at < req.until)
            rows = list(s.scalars(q.order_by(StoredResult.created_at, StoredResult.id).limit(MAX_RESULTS + 1)))
            for r in rows:
                s.expunge(r)
        if len(rows) > MAX_RESULTS:
            raise bad_request(f"the time range holds more than {MAX_RESULTS} results; narrow it", "since")
        for r in rows:
            sources.setdefault(r.id, _Source(r.id, r.payload, r.created_at))
    if len(sources) > MAX_RESULTS:
        raise bad_request(f"at most {MAX_RESULTS} results per export", "ids")
    return list(sources.values()), skipped


def apply_review(rec: ImageRecord, state: rv.ImageState) -> None:
    """Rewrite a record's detections as the reviewers left them (see the writers for how each format shows it)."""
    if not state.reviewed or rec.failure is not None:
        return
    machine = list(rec.detections)
    dets: list[DetectionRecord] = []
    rejected = 0
    for b in state.boxes:
        when = b.reviewed_at or state.reviewed_at or utcnow()
        if b.status == "rejected":
            rejected += b.origin == "machine"
            continue
        if b.origin == "added":
            dets.append(
                DetectionRecord(
                    category=b.category,
                    conf=1.0,
                    bbox=(b.bbox[0], b.bbox[1], b.bbox[2], b.bbox[3]),
                    label=b.label,
                    label_score=1.0,
                    review=ReviewMark("added", b.reviewer or "", when),
                )
            )
            continue
        if b.box >= len(machine):  # pragma: no cover - the result and its boxes never change
            continue
        d = machine[b.box]
        if b.status == "confirmed":
            d.review = ReviewMark("confirmed", b.reviewer or "", when)
        elif b.status == "corrected":
            d.label, d.label_score, d.category = b.label, 1.0, b.category
            d.review = ReviewMark("corrected", b.reviewer or "", when, machine_label=b.machine_label)
        dets.append(d)
    rec.detections = dets
    rec.review = ReviewMark(
        "blank" if state.blank else "reviewed",
        state.reviewer or "",
        state.reviewed_at or utcnow(),
        rejected_boxes=rejected,
    )


def _deployment(dep: dict[str, Any]) -> Deployment:
    return Deployment(
        deployment_id=dep["deployment_id"],
        latitude=dep.get("latitude"),
        longitude=dep.get("longitude"),
        location_name=dep.get("location_name") or dep.get("name"),
        camera_id=dep.get("camera_id"),
        camera_model=dep.get("camera_model"),
    )


def build_records(
    platform: Platform, team_id: str, sources: list[_Source], req: ExportRequest
) -> tuple[list[ImageRecord], RunInfo, dict[str, Deployment]]:
    reviews = rv.reviews_for(platform, team_id, [s.result_id for s in sources]) if req.include_reviews else {}
    records: list[ImageRecord] = []
    rids: list[str] = []
    deployments: dict[str, Deployment] = {}
    first_seen: dict[str, str] = {}
    created: dict[str, list[datetime]] = {}
    for src in sources:
        camera: str | None = None
        if src.upload is not None:
            dep = _deployment(src.upload.deployment)
            prev = deployments.get(dep.deployment_id)
            if prev is not None and prev != dep:
                raise bad_request(
                    f"uploads {first_seen[dep.deployment_id]} and {src.upload.id} name deployment "
                    f"{dep.deployment_id!r} with different coordinates or camera; export them separately",
                    "group",
                )
            deployments[dep.deployment_id] = dep
            first_seen.setdefault(dep.deployment_id, src.upload.id)
            camera = dep.deployment_id
        elif req.deployment is not None:
            deployments[req.deployment.deployment_id] = req.deployment
            camera = req.deployment.deployment_id
        states = rv.states_of(src.result_id, src.payload, reviews)
        for img, state in zip(payload_images(src.payload, src.result_id), states, strict=True):
            name = src.relpath if src.relpath and len(states) == 1 else img.filename
            file = f"{camera}/{name}" if camera else name
            rec = item_record(img.item, file, camera)
            apply_review(rec, state)
            records.append(rec)
            rids.append(src.result_id)
            if camera:
                created.setdefault(camera, []).append(src.created_at)
    unique_files(records, rids)
    for dep_id, times in created.items():  # a deployment without any EXIF time: its processing times, flagged
        dep = deployments[dep_id]
        if dep.start is None and not any(r.datetime for r in records if r.camera == dep_id and r.failure is None):
            dep.start, dep.end = min(times), max(times)
            dep.comments = "no EXIF timestamps in its media: start/end are the processing times"
    return records, run_info([s.payload for s in sources]), deployments


def render(
    fmt: str, records: list[ImageRecord], info: RunInfo, req: ExportRequest, deps: dict[str, Deployment]
) -> bytes:
    from sleuth.exports import export, to_coco_dict, to_csv_text, to_md_dict

    if fmt == "md":
        return (json.dumps(to_md_dict(records, info), indent=1, ensure_ascii=False) + "\n").encode()
    if fmt == "csv":
        return to_csv_text(records, info, threshold=req.threshold, gap_seconds=req.gap_seconds).encode()
    if fmt == "coco":
        d = to_coco_dict(records, info, threshold=req.threshold, gap_seconds=req.gap_seconds)
        return (json.dumps(d, indent=1, ensure_ascii=False) + "\n").encode()
    opts = CamtrapOptions(
        deployments=deps or None,
        timezone=req.timezone,
        allow_placeholder_coordinates=req.placeholder_coordinates,
        gap_seconds=req.gap_seconds,
        threshold=req.threshold,
        project_title="sleuth camera-trap results",
    )
    with tempfile.TemporaryDirectory(prefix="sleuth-export-") as tmp:
        export(records, info, "camtrap-dp", tmp, **opts.__dict__)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(Path(tmp).iterdir()):
                zf.write(path, path.name)
        return buf.getvalue()


def run(platform: Platform, team_id: str, req: ExportRequest) -> Export:
    if req.format not in FORMATS:
        raise bad_request(f"format must be one of {', '.join(FORMATS)}", "format")
    if not (req.ids or req.uploads or req.since or req.until):
        raise bad_request("say what to export: ids, group (an upload group), or a time range (since/until)", "ids")
    sources, skipped = collect(platform, team_id, req)
    if not sources:
        raise SleuthError(
            409 if skipped else 404,
            "nothing_to_export",
            "nothing to export yet: " + "; ".join(skipped[:5]) if skipped else "no results match",
            "ids",
        )
    records, info, deps = build_records(platform, team_id, sources, req)
    try:
        content = render(req.format, records, info, req, deps)
    except ValueError as e:  # e.g. Camtrap DP without coordinates
        raise bad_request(f"{req.format}: {e}", "format", "export_failed") from None
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    return Export(
        content=content,
        media_type=MEDIA_TYPES[req.format],
        filename=f"sleuth-{req.format}-{stamp}.{EXTENSIONS[req.format]}",
        images=len(records),
        results=len(sources),
        skipped=skipped,
    )
