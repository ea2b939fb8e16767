"""Deepfake detection service: intake into jobs, the item handler, Resemble-shaped results.

One ``Job`` of kind ``deepfake`` per ``POST /detect`` (one item) or ``POST /detect/batch``
(N items). A detect's ``uuid`` is its job item's id. Cost: 1 credit per image and per
started minute of audio/video (probed from the container at intake, capped by
``max_video_secs`` and the region), reserved up front for every file (all-or-nothing).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from sleuth.db.models import Job, JobItem, utcnow
from sleuth.platform import jobs
from sleuth.platform.context import Platform
from sleuth.platform.errors import SleuthError
from sleuth.platform.expiry import register_sweeper, track_object
from sleuth.services import resemble_types

log = logging.getLogger(__name__)
KIND = "deepfake"


@dataclass
class DetectOptions:
    visualize: bool = False
    frame_length: int = 2
    start_region: float | None = None
    end_region: float | None = None
    max_video_secs: float | None = None
    max_video_fps: float | None = None
    zero_retention_mode: bool = False
    search_identity: bool = False  # against the team's saved identities (services.identity), audio/video only
    audio_source_tracing: bool = False

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _iso(dt: Any) -> str | None:
    if dt is None:
        return None
    return dt.isoformat().replace("+00:00", "Z")


def probe_duration(path: Path) -> float | None:
    """Container-declared duration in seconds (None if unknown). Only used to project cost."""
    try:
        import av

        with av.open(str(path)) as c:
            if c.duration:
                return float(c.duration) / 1_000_000
            for st in c.streams:
                if st.duration and st.time_base:
                    return float(st.duration * st.time_base)
    except Exception:
        return None
    return None


def projected_cost(media_type: str, path: Path, opts: DetectOptions) -> int:
    if media_type == "image":
        return 1
    dur = probe_duration(path) or 60.0
    start = opts.start_region or 0.0
    end = opts.end_region if opts.end_region is not None else dur
    span = max(0.0, min(dur, end) - start)
    if opts.max_video_secs is not None and media_type == "video":
        span = min(span, opts.max_video_secs)
    span = min(span, 24 * 3600.0)
    return max(1, math.ceil(span / 60.0))


def media_key(team_id: str, job_id: str, item_id: str, filename: str) -> str:
    return f"media/{team_id}/{job_id}/{item_id}/{filename}"


def expires_at(platform: Platform) -> Any:
    return utcnow() + timedelta(days=platform.settings.result_ttl_days)


def item_view(item: JobItem, job: Job, base_url: str = "", sign: Callable[[str], str] | None = None) -> dict[str, Any]:
    """The Resemble ``item`` object for one detect.

    ``sign`` turns a path into a short-lived signed one (:func:`sleuth.platform.signing.signer`), so that the
    media and visualization links open in a browser; without it they need the Bearer header.
    """
    result = item.result or {}
    status = {"queued": "processing", "pending": "processing"}.get(item.status, item.status)
    zero = bool(job.options.get("zero_retention_mode"))
    link = sign or (lambda path: path)
    url = None
    if item.media_key and item.file_deleted_at is None and not zero:
        url = f"{base_url}{link(f'/detect/{item.id}/media')}"
    view: dict[str, Any] = {
        "uuid": item.id,
        "status": status,
        "media_type": item.media_type,
        "filename": item.filename,
        "metrics": result.get("metrics"),
        "image_metrics": result.get("image_metrics"),
        "video_metrics": result.get("video_metrics"),
        "duration": result.get("duration"),
        "zero_retention_mode": zero,
        "file_deleted_at": _iso(item.file_deleted_at),
        "media_deleted": item.file_deleted_at is not None,
        "url": url,
        # the file that carries the sound: an audio file, or a video with an audio track (the video itself)
        "audio_url": url if item.media_type == "audio" or result.get("has_audio") or result.get("metrics") else None,
        "verdict": result.get("verdict"),
        "intelligence": None,
        "batch_uuid": job.id if job.options.get("batch") else None,
        "created_at": _iso(item.created_at),
        "updated_at": _iso(item.completed_at or item.started_at or item.created_at),
    }
    if result.get("visualization_key"):
        vis_url = f"{base_url}{link(f'/detect/{item.id}/visualization')}"
        for k in ("metrics", "image_metrics", "video_metrics"):
            if isinstance(view.get(k), dict):
                view[k]["image"] = vis_url
    if job.options.get("search_identity"):
        view["identity_search"] = result.get("identity_search")
    if job.options.get("audio_source_tracing"):
        view["audio_source_tracing"] = result.get("audio_source_tracing")  # null while processing
    if item.status == "failed":
        view["error_message"] = item.error
    if result.get("notes"):
        view["notes"] = result["notes"]
    return resemble_types.conform(view)


def batch_status(job_status: str, total: int, completed: int, failed: int) -> str:
    """A batch's ``status`` from its item counts (docs/api.md, "Batch status").

    ``processing`` until every item is terminal, then ``completed`` (every item completed), ``failed``
    (every item failed) or ``partial`` (some of each: read each detect's ``status``/``error_message``).
    """
    if job_status == "staging":
        return "processing"
    if completed + failed < total:
        return "processing"
    if failed == 0:
        return "completed"
    return "failed" if completed == 0 else "partial"


#: A batch callback carries every file's item (as GET /detect/{uuid} gives it) when they add up to at most
#: this many bytes of JSON; a larger batch's callback has the counts and ids only (GET
#: /detect/batch/{uuid}?include=results then gives the items).
CALLBACK_RESULTS_MAX_BYTES = 256 * 1024


def batch_view(
    s: Any,
    job: Job,
    base_url: str = "",
    sign: Callable[[str], str] | None = None,
    results: bool | None = False,
) -> dict[str, Any]:
    """The Resemble-shaped batch ``item``: the one body for ``GET /detect/batch/{uuid}``, the ``POST`` response and
    the batch callback (``s``: an open session).

    Counts and status are read from the items themselves, so they are exact whatever the job row says.
    ``results``: True adds ``items``, every file's detect as ``GET /detect/{uuid}`` gives it, in upload order
    (``?include=results``); None adds them only when they fit in :data:`CALLBACK_RESULTS_MAX_BYTES` (callbacks).
    """
    full: list[JobItem] = [] if results is False else list(s.scalars(_items_of(job, JobItem)))
    if results is False:
        rows = [(i, st) for i, st in s.execute(_items_of(job, JobItem.id, JobItem.status))]
    else:
        rows = [(i.id, i.status) for i in full]
    completed = sum(1 for _id, st in rows if st == "completed")
    failed = sum(1 for _id, st in rows if st == "failed")
    total = len(rows)
    view: dict[str, Any] = {
        "uuid": job.id,
        "status": batch_status(job.status, total, completed, failed),
        "total_files": total,
        "completed_count": completed,
        "failed_count": failed,
        "processing_count": total - completed - failed,
        "created_at": _iso(job.created_at),
        "completed_at": _iso(job.completed_at) if completed + failed == total else None,
        "detect_uuids": [item_id for item_id, _st in rows],
    }
    if results is not False:
        items = [item_view(i, job, base_url, sign) for i in full]
        if results or len(json.dumps(items, separators=(",", ":"))) <= CALLBACK_RESULTS_MAX_BYTES:
            view["items"] = items
    return view


def _items_of(job: Job, *cols: Any) -> Any:
    return select(*cols).where(JobItem.job_id == job.id).order_by(JobItem.seq)


def callback_base_url(job: Job) -> str:
    """Links in callback bodies are absolute like API responses: ``SLEUTH_PUBLIC_URL``, else the base URL of the
    request that submitted the job (recorded in its options at intake)."""
    from sleuth.settings import get_settings

    return get_settings().public_url.rstrip("/") or str(job.options.get("base_url") or "").rstrip("/")


def get_item(platform: Platform, team_id: str, item_id: str) -> tuple[JobItem, Job]:
    with platform.db.read_session() as s:
        row = s.execute(
            select(JobItem, Job)
            .join(Job, Job.id == JobItem.job_id)
            .where(JobItem.id == item_id, JobItem.team_id == team_id, Job.kind == KIND)
        ).first()
    if row is None:
        raise SleuthError(404, "not_found", "Detect not found")
    item, job = row
    if job.expires_at is not None and job.expires_at <= utcnow():
        raise SleuthError(404, "not_found", "Detect not found (expired)")
    return item, job


def get_batch(
    platform: Platform,
    team_id: str,
    job_id: str,
    base_url: str = "",
    sign: Callable[[str], str] | None = None,
    results: bool = False,
) -> dict[str, Any]:
    """The batch ``item`` (:func:`batch_view`) of a team's batch; 404 if absent or expired."""
    with platform.db.read_session() as s:
        job = s.scalar(select(Job).where(Job.id == job_id, Job.team_id == team_id, Job.kind == KIND))
        if job is None or not job.options.get("batch"):
            raise SleuthError(404, "not_found", "Batch not found")
        if job.expires_at is not None and job.expires_at <= utcnow():
            raise SleuthError(404, "not_found", "Batch not found (expired)")
        return batch_view(s, job, base_url, sign, results)


def list_items(platform: Platform, team_id: str, page: int, page_size: int) -> tuple[list[tuple[JobItem, Job]], int]:
    now = utcnow()
    with platform.db.read_session() as s:
        base = (
            select(JobItem, Job)
            .join(Job, Job.id == JobItem.job_id)
            .where(JobItem.team_id == team_id, Job.kind == KIND)
            .where((Job.expires_at.is_(None)) | (Job.expires_at > now))
        )
        total = s.scalar(select(func.count()).select_from(base.subquery())) or 0
        rows = s.execute(
            base.order_by(JobItem.created_at.desc(), JobItem.seq.desc()).offset((page - 1) * page_size).limit(page_size)
        ).all()
    return [(r[0], r[1]) for r in rows], int(total)


def batch_callback_payload(s: Any, job: Job) -> dict[str, Any]:
    """The callback body of a finished job: the batch ``item`` (with the files' results when they fit), or the
    detect ``item`` as ``GET /detect/{uuid}`` gives it."""
    from sleuth.platform.signing import signer
    from sleuth.settings import get_settings

    base, sign = callback_base_url(job), signer(get_settings())
    if job.options.get("batch"):
        return {"success": True, "item": batch_view(s, job, base, sign, results=None)}
    item = s.scalar(_items_of(job, JobItem).limit(1))
    return {"success": True, "item": item_view(item, job, base, sign)}


def after_item(platform: Platform, item: JobItem, job: Job) -> None:
    """Zero retention: delete the media right after analysis and record when."""
    if not job.options.get("zero_retention_mode") or not item.media_key:
        return
    platform.storage.delete(item.media_key)
    with platform.db.session() as s:
        fresh = s.get(JobItem, item.id)
        if fresh is not None:
            fresh.file_deleted_at = utcnow()
            fresh.media_key = None


def _identity_search(platform: Platform, item: JobItem, path: Path) -> dict[str, Any]:
    """``item.identity_search``: the team's nearest voice identities (top 5), or why there are none."""
    from sleuth.services import identity

    if item.media_type not in ("audio", "video"):
        return {"results": [], "error_message": "identity search is for audio and video (voices)"}
    return identity.search_media(platform, item.team_id, path, item.filename)


def handle_item(platform: Platform, item: JobItem, job: Job) -> dict[str, Any]:
    from sleuth.services import deepfake_analysis

    if not item.media_key:
        raise jobs.ItemFailure("media is no longer available")
    path = platform.storage.local_path(item.media_key)
    tmp = None
    if path is None:  # object store: copy to a temp file for the decoders
        import tempfile

        with tempfile.NamedTemporaryFile(suffix=Path(item.filename).suffix, delete=False) as fd:
            fd.write(platform.storage.get(item.media_key))
        path = tmp = Path(fd.name)
    opts = DetectOptions(**{k: v for k, v in job.options.items() if k in DetectOptions.__dataclass_fields__})
    try:
        result = deepfake_analysis.analyze(path, item.media_type, opts)
        if opts.search_identity:
            result["identity_search"] = _identity_search(platform, item, path)
        if item.media_type == "video" or (result.get("duration") is None and item.media_type == "audio"):
            probed = probe_duration(path)  # a video's duration is its container's, not its audio track's
            if probed:
                result["duration"] = round(probed, 3)
    except jobs.ItemFailure as e:
        raise jobs.ItemFailure(scrub_paths(str(e), path, item.filename), e.retryable) from None
    except SleuthError as e:
        raise jobs.ItemFailure(scrub_paths(e.message, path, item.filename)) from None
    except ValueError as e:  # bad input: fail now, with the reason (never the server's storage path)
        raise jobs.ItemFailure(scrub_paths(str(e) or "invalid input", path, item.filename)) from None
    except Exception as e:  # unexpected: retried by the job runner, then failed with the reason
        log.exception("deepfake item %s failed", item.id)
        msg = scrub_paths(f"internal error: {type(e).__name__}: {e}", path, item.filename)
        raise jobs.ItemFailure(msg, retryable=True) from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    vis = result.pop("visualization_png", None)
    if vis is not None and opts.visualize and opts.zero_retention_mode and item.media_type == "image":
        # the heatmap is drawn over the picture itself: under zero retention no copy of the media is kept
        result.setdefault("notes", []).append("heatmap not kept: it would contain the image (zero retention)")
        vis = None
    if vis is not None and opts.visualize:
        key = f"results/{item.team_id}/{job.id}/{item.id}/visualization.png"
        platform.storage.put(key, vis)
        track_object(platform.db, key, item.team_id, "visualization", len(vis), job.expires_at)
        result["visualization_key"] = key
    return result


_QUOTED_PATH = re.compile(r"""(['"])(?:[A-Za-z]:)?[/\\][^'"]*\1""")


def scrub_paths(message: str, path: Path, filename: str) -> str:
    """An error message without the server's storage path: the file becomes its upload name, any other quoted
    absolute path (a decoder naming a temp file, say) becomes ``'<file>'``."""
    for p in (str(path), str(path.resolve()) if path.exists() else str(path)):
        message = message.replace(p, filename)
    return _QUOTED_PATH.sub(lambda m: f"{m.group(1)}<file>{m.group(1)}", message)


def sweep_jobs(db: Any, storage: Any, now: Any) -> int:
    """Delete expired deepfake jobs (items, media, visualizations) and jobs stuck in intake.

    A job left ``staging`` for an hour (its request died between reserving and queueing) is
    discarded too. Whatever a deleted job still holds in reserve is refunded first.
    """
    from datetime import timedelta

    from sleuth.platform import credits

    stale_intake = now - timedelta(hours=1)
    keys: list[str] = []
    with db.session() as s:
        expired = list(
            s.scalars(
                select(Job).where(
                    Job.kind == KIND,
                    (Job.expires_at <= now) | ((Job.status == "staging") & (Job.created_at <= stale_intake)),
                )
            )
        )
        for job in expired:
            for item in s.scalars(select(JobItem).where(JobItem.job_id == job.id)):
                if item.media_key:
                    keys.append(item.media_key)
                if item.result and item.result.get("visualization_key"):
                    keys.append(item.result["visualization_key"])
            if job.reservation_id:
                credits.refund_in(s, job.reservation_id, None, f"{job.kind} {job.id} expired")
            s.delete(job)
    # zero retention for items that ended without the after-item hook (reaped after their last
    # attempt, or failed at intake): their media goes at the next sweep
    with db.session() as s:
        leftovers = list(
            s.execute(
                select(JobItem.id, JobItem.media_key, Job.options)
                .join(Job, Job.id == JobItem.job_id)
                .where(Job.kind == KIND, JobItem.status.in_(["completed", "failed"]), JobItem.media_key.is_not(None))
            )
        )
        for item_id, key, options in leftovers:
            if (options or {}).get("zero_retention_mode"):
                keys.append(key)
                item = s.get(JobItem, item_id)
                if item is not None:
                    item.media_key, item.file_deleted_at = None, now
    for key in keys:  # storage I/O outside the transaction
        storage.delete(key)
    return len(expired)


jobs.register_kind(KIND, handle_item, batch_callback_payload, after_item)
register_sweeper(sweep_jobs)
