"""One page of a wildlife upload as the web app shows it: each image's job, result, review state, event and a
signed link to the image."""

from __future__ import annotations

from typing import Any

from sleuth.db.models import Job, JobItem, Upload
from sleuth.exports.sequences import event_index, group_events
from sleuth.platform.context import Platform
from sleuth.platform.signing import Signer
from sleuth.services import reviews as rv
from sleuth.services import uploads as up_svc
from sleuth.services import wildlife_jobs as wj
from sleuth.services.results import item_record

RESULT_KEYS = ("annotations", "detections", "metadata", "info", "filename")


def relpath(up: Upload, job: Job, item: JobItem) -> str:
    ref = job.client_reference_id or ""
    return ref[len(up.reference_prefix) :] if ref.startswith(up.reference_prefix) else item.filename


def items(
    platform: Platform, up: Upload, offset: int, limit: int, base_url: str, sign: Signer
) -> tuple[list[dict[str, Any]], int]:
    jobs = up_svc.upload_jobs(platform, up)
    stored = up_svc.results_of(platform, up)
    camera = up.deployment.get("deployment_id") or "deployment"
    records = [
        item_record(stored[job.id].payload, relpath(up, job, item), camera) for job, item in jobs if job.id in stored
    ]
    events = event_index(group_events(records))
    page = jobs[offset : offset + limit]
    reviews = rv.reviews_for(platform, up.team_id, [j.id for j, _ in page if j.id in stored])
    out = []
    for job, item in page:
        rel = relpath(up, job, item)
        view: dict[str, Any] = {
            "job_id": job.id,
            "file": rel,
            "status": wj.status_of(job),
            "error": item.error if job.status == "failed" else None,
            "created_at": wj._iso(job.created_at),
            "completed_at": wj._iso(job.completed_at),
            "image_url": f"{base_url}{sign(f'/v1/jobs/{job.id}/image')}" if item.media_key else None,
            "result": None,
            "review": None,
            "event": None,
        }
        if job.id in stored:
            payload = stored[job.id].payload
            view["result"] = {k: payload[k] for k in RESULT_KEYS if k in payload}
            view["review"] = rv.states_of(job.id, payload, reviews)[0].to_dict()
            if rel in events:
                ev, frame = events[rel]
                view["event"] = {
                    "id": ev.event_id,
                    "frame": frame,
                    "size": ev.size,
                    "start": ev.start.isoformat() if ev.start else None,
                    "end": ev.end.isoformat() if ev.end else None,
                }
        out.append(view)
    return out, len(jobs)
