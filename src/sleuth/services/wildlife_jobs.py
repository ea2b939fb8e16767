"""Animal Detect's async image processing on the shared job platform.

One job per image (``operation`` = detect | detect-urban | filter). Life of a job:
``awaiting_upload`` (created, signed upload URL issued, nothing reserved) -> upload ->
``submit`` reserves 1 credit (402 if short) -> ``queued`` -> ``processing`` ->
``completed`` | ``failed`` (refunded). A job never uploaded becomes ``expired`` when its
upload URL lapses and costs nothing. Results live until ``expires_at`` like sync results
(``GET /v1/detect/{id}`` with the job id returns the same object as the result URL).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from sleuth.db.models import CameraBoxes, Job, JobItem, StoredResult, utcnow
from sleuth.pipelines.wildlife import ImageOptions
from sleuth.pipelines.wildlife.repeats import RepeatRule, camera_of, flag_against_history
from sleuth.platform import jobs
from sleuth.platform.context import Platform
from sleuth.platform.errors import SleuthError
from sleuth.platform.expiry import register_sweeper
from sleuth.services import wildlife as svc

KIND = "wildlife"
OPERATIONS = {"detect": ("default", False), "detect-urban": ("urban", False), "filter": ("default", True)}
CONTENT_TYPES = {"image/jpeg", "image/png", "image/webp", "image/bmp"}
STATUSES = ("awaiting_upload", "queued", "processing", "completed", "failed", "expired")


def request_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def sign_upload(key: bytes, job_id: str, expires: int) -> str:
    return hmac.new(key, f"upload:{job_id}:{expires}".encode(), hashlib.sha256).hexdigest()


def check_upload_signature(key: bytes, job_id: str, expires: str, sig: str) -> None:
    if not (expires.isascii() and expires.isdigit() and len(expires) <= 20) or not sig:
        raise SleuthError(403, "invalid_signature", "Upload URL is missing its signature")
    if not hmac.compare_digest(sign_upload(key, job_id, int(expires)), sig):
        raise SleuthError(403, "invalid_signature", "Upload URL signature is invalid")
    if int(expires) < time.time():
        raise SleuthError(403, "upload_url_expired", "Upload URL has expired")


def options_to_dict(opts: ImageOptions, metadata: bool, suppress_repeats: bool = False) -> dict[str, Any]:
    return {
        "threshold": opts.threshold,
        "classify": opts.classify,
        "country": opts.country,
        "admin1": opts.admin1,
        "smooth_herd": opts.smooth_herd,
        "top_candidate": opts.top_candidate,
        "metadata": metadata,
        "suppress_repeats": suppress_repeats,
    }


def create(
    platform: Platform,
    team_id: str,
    *,
    operation: str,
    filename: str,
    content_type: str,
    client_reference_id: str | None,
    options: ImageOptions,
    metadata: bool,
    idempotency_key: str | None,
    body_hash: str,
    suppress_repeats: bool = False,
) -> tuple[Job, bool]:
    """Create (or, for a replayed Idempotency-Key, return) a job. Returns (job, created)."""
    if idempotency_key:
        with platform.db.session() as s:
            existing = s.scalar(select(Job).where(Job.team_id == team_id, Job.idempotency_key == idempotency_key))
        if existing is not None:
            if existing.request_hash != body_hash:
                raise SleuthError(
                    409, "idempotency_conflict", "This Idempotency-Key was already used with a different request body"
                )
            return existing, False
    s_ = platform.settings
    upload_expires = utcnow() + timedelta(seconds=s_.upload_url_ttl_s)
    spec = jobs.ItemSpec(filename=svc_safe(filename), media_type="image", cost=1)
    opts = options_to_dict(options, metadata, suppress_repeats) | {
        "operation": operation,
        "content_type": content_type,
        "upload_expires_at": upload_expires.isoformat(),
    }
    try:
        job = jobs.create_job(
            platform.db,
            team_id,
            KIND,
            [spec],
            options=opts,
            status="awaiting_upload",
            expires_at=upload_expires,
            idempotency_key=idempotency_key,
            request_hash=body_hash,
            client_reference_id=client_reference_id,
        )
    except IntegrityError:  # a concurrent request with the same key won the unique constraint
        if idempotency_key:
            return create(
                platform,
                team_id,
                operation=operation,
                filename=filename,
                content_type=content_type,
                client_reference_id=client_reference_id,
                options=options,
                metadata=metadata,
                idempotency_key=idempotency_key,
                body_hash=body_hash,
                suppress_repeats=suppress_repeats,
            )
        raise
    return job, True


def svc_safe(name: str) -> str:
    from sleuth.services.media import safe_name

    return safe_name(name, "image")


def get_job(platform: Platform, team_id: str, job_id: str) -> tuple[Job, JobItem]:
    with platform.db.read_session() as s:
        row = s.execute(
            select(Job, JobItem)
            .join(JobItem, JobItem.job_id == Job.id)
            .where(Job.id == job_id, Job.team_id == team_id, Job.kind == KIND)
        ).first()
    if row is None:
        raise SleuthError(404, "not_found", "Job not found")
    job, item = row
    if job.status in ("completed", "failed") and job.expires_at is not None and job.expires_at <= utcnow():
        raise SleuthError(404, "not_found", "Job not found (its result expired)")
    return job, item


def status_of(job: Job) -> str:
    if job.status == "awaiting_upload" and job.expires_at is not None and job.expires_at <= utcnow():
        return "expired"
    return job.status


def accept_upload(platform: Platform, job_id: str, content_type: str, stream: Any, declared: int | None) -> int:
    """Store the uploaded bytes (single use, declared content type only, raw image budget)."""
    limit = int(platform.settings.max_raw_images_mb * 1_000_000)
    with platform.db.session() as s:
        job = s.get(Job, job_id)
        item = s.scalar(select(JobItem).where(JobItem.job_id == job_id)) if job else None
    if job is None or item is None or job.kind != KIND:
        raise SleuthError(404, "not_found", "Job not found")
    if status_of(job) == "expired":
        raise SleuthError(410, "upload_expired", "This job expired before its image was uploaded")
    if job.status != "awaiting_upload" or item.media_key:
        raise SleuthError(409, "already_uploaded", "This upload URL was already used")
    expected = job.options.get("content_type")
    if content_type.split(";")[0].strip().lower() != expected:
        raise SleuthError(
            415, "content_type_mismatch", f"Upload Content-Type must be {expected} (declared when the job was created)"
        )
    if declared is not None and declared > limit:
        raise SleuthError(413, "payload_too_large", f"Image exceeds the {limit} byte limit")
    key = f"media/{job.team_id}/{job.id}/{item.id}/{uuid.uuid4().hex[:8]}-{item.filename}"  # per attempt
    buf = bytearray()
    for chunk in stream:
        buf.extend(chunk)
        if len(buf) > limit:
            raise SleuthError(413, "payload_too_large", f"Image exceeds the {limit} byte limit")
    if not buf:
        raise SleuthError(400, "empty_upload", "The upload is empty")
    platform.storage.put(key, bytes(buf))
    with platform.db.write_session() as s:
        res = s.execute(
            update(JobItem)
            .where(JobItem.id == item.id, JobItem.media_key.is_(None))
            .values(media_key=key, size=len(buf))
        )
        if res.rowcount != 1:  # type: ignore[attr-defined]
            platform.storage.delete(key)
            raise SleuthError(409, "already_uploaded", "This upload URL was already used")
    from sleuth.platform.expiry import track_object

    track_object(
        platform.db, key, job.team_id, "media", len(buf), utcnow() + timedelta(days=platform.settings.result_ttl_days)
    )
    return len(buf)


def submit(platform: Platform, team_id: str, job_id: str) -> Job:
    job, item = get_job(platform, team_id, job_id)
    if status_of(job) == "expired":
        raise SleuthError(410, "upload_expired", "This job expired before its image was uploaded")
    if job.status != "awaiting_upload":
        return job  # already submitted: idempotent
    if not item.media_key:
        raise SleuthError(409, "not_uploaded", "Upload the image to upload.url before submitting")
    job = jobs.start_job(
        platform.db,
        job_id,
        f"async job {job_id}",
        expires_at=utcnow() + timedelta(days=platform.settings.result_ttl_days),
    )
    from sleuth.platform.dispatch import dispatch

    dispatch(platform, [item.id])
    return job


def handle_item(platform: Platform, item: JobItem, job: Job) -> dict[str, Any]:
    if not item.media_key:
        raise jobs.ItemFailure("the uploaded image is no longer available")
    o = job.options
    profile_name, detector_only = OPERATIONS[o["operation"]]
    profile = svc.resolve_profile(profile_name, detector_only)
    opts = ImageOptions(
        threshold=o["threshold"],
        classify=o["classify"],
        country=o.get("country"),
        admin1=o.get("admin1"),
        smooth_herd=o.get("smooth_herd", False),
        top_candidate=o.get("top_candidate"),
    )
    data = platform.storage.get(item.media_key)
    t0 = time.perf_counter()
    outcome = svc.run_images(
        [svc.ImageInput(item.filename, data)], opts, profile, lane="job", detector_only=detector_only
    )[0]
    if not outcome.ok:
        raise jobs.ItemFailure(outcome.error[1] if outcome.error else "invalid image")
    payload: dict[str, Any] = {"id": job.id, "expires_at": _iso(job.expires_at)}
    item_payload = svc.result_item(
        outcome, profile, opts, metadata=bool(o.get("metadata")), detector_only=detector_only
    )
    _repeats(platform, job, outcome, item_payload, "detections" if detector_only else "annotations")
    payload.update({k: v for k, v in item_payload.items() if k not in ("index", "info")})
    payload["info"] = svc.item_info(outcome, profile, opts) | {
        "country_processed": opts.country,
        "total_time_ms": int((time.perf_counter() - t0) * 1000),
    }
    with platform.db.session() as s:
        s.merge(
            StoredResult(
                id=job.id,
                team_id=job.team_id,
                endpoint=f"/v1/jobs ({o['operation']})",
                status="success",
                payload=payload,
                completed_at=utcnow(),
                expires_at=job.expires_at or utcnow(),
            )
        )
    return payload


# Repeat detection elimination per camera: earlier images of the same camera (at most this many, newest first).
CAMERA_HISTORY = 1000


def _repeats(platform: Platform, job: Job, outcome: Any, item: dict[str, Any], key: str) -> None:
    """Flag (``repeat_detection: true``) or, with the job option ``suppress_repeats``, drop the boxes of this
    image that recur at the same place in >= 10 earlier images of its camera (``repeats.camera_of``: the
    ``client_reference_id`` prefix before its first ``/``, else the EXIF camera serial); then remember this
    image's boxes for the camera's next images. Images without a camera are left alone."""
    camera = camera_of(job.client_reference_id, outcome.exif.get("serial"))
    boxes = item.get(key) or []
    if camera is None:
        return
    rule = RepeatRule()
    confs = [float(b.get("score", 0.0)) for b in boxes]
    if key == "annotations":  # the detector's confidence counts, not the label's score
        confs = [float(a.detection_conf) for a in outcome.annotations]
    current = [(list(b["bbox"]), c) for b, c in zip(boxes, confs, strict=True)]
    with platform.db.read_session() as s:
        rows = s.scalars(
            select(CameraBoxes.boxes)
            .where(CameraBoxes.team_id == job.team_id, CameraBoxes.camera == camera, CameraBoxes.job_id != job.id)
            .order_by(CameraBoxes.created_at.desc())
            .limit(CAMERA_HISTORY)
        ).all()
    flags = flag_against_history(current, [r.get("boxes") or [] for r in rows], rule)
    for b, f in zip(boxes, flags, strict=True):
        if f:
            b["repeat_detection"] = True
    if job.options.get("suppress_repeats"):
        item[key] = [b for b, f in zip(boxes, flags, strict=True) if not f]
        if key == "annotations":
            for i, a in enumerate(item[key]):
                a["id"] = i
    with platform.db.session() as s:
        s.query(CameraBoxes).filter(CameraBoxes.job_id == job.id).delete()  # a retried item counts once
        s.add(
            CameraBoxes(
                team_id=job.team_id,
                camera=camera,
                job_id=job.id,
                boxes={"boxes": [bb for bb, c in current if rule.counts(bb, c)]},
                expires_at=job.expires_at or utcnow() + timedelta(days=platform.settings.result_ttl_days),
            )
        )


def expire_camera_boxes(db: Any, storage: Any, now: Any) -> int:
    """Forget a camera's boxes once the job's result has expired (counted in no report: they are not jobs)."""
    with db.session() as s:
        s.execute(delete(CameraBoxes).where(CameraBoxes.expires_at <= now))
    return 0


def _iso(dt: Any) -> str | None:
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z") if dt else None


def expire_uploads(db: Any, storage: Any, now: Any) -> int:
    """Jobs whose upload URL lapsed without a submit become ``expired`` (nothing was reserved)."""
    with db.session() as s:
        stale = list(
            s.scalars(select(Job).where(Job.kind == KIND, Job.status == "awaiting_upload", Job.expires_at <= now))
        )
        for job in stale:
            for item in s.scalars(select(JobItem).where(JobItem.job_id == job.id)):
                if item.media_key:
                    storage.delete(item.media_key)
                    item.media_key = None
                item.status = "expired"
            job.status = "expired"
            job.updated_at = now
        gone = list(
            s.scalars(
                select(Job).where(Job.kind == KIND, Job.status.in_(["completed", "failed"]), Job.expires_at <= now)
            )
        )
        for job in gone:
            for item in s.scalars(select(JobItem).where(JobItem.job_id == job.id)):
                if item.media_key:
                    storage.delete(item.media_key)
            s.delete(job)
    return len(stale) + len(gone)


jobs.register_kind(KIND, handle_item)
register_sweeper(expire_uploads)
register_sweeper(expire_camera_boxes)
