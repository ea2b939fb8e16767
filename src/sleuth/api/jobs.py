"""Animal Detect's async image processing: /v1/jobs (+ signed upload URL, submit, status, result)."""

from __future__ import annotations

import base64
import time
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from sleuth.api import routing
from sleuth.api.contract import jobs as doc
from sleuth.api.deps import Inference, PlatformDep, Reference, json_object
from sleuth.api.openapi import responses
from sleuth.api.wildlife import _bool, load_result, parse_options
from sleuth.db.models import Job, JobItem, utcnow
from sleuth.platform.context import Platform
from sleuth.platform.errors import SleuthError, bad_request
from sleuth.services import wildlife_jobs as wj

router = APIRouter(tags=["async jobs"])


def _base(request: Request, platform: Platform) -> str:
    return platform.settings.public_url.rstrip("/") or str(request.base_url).rstrip("/")


def job_view(job: Job, item: JobItem, base: str, platform: Platform, *, with_upload: bool) -> dict[str, Any]:
    status = wj.status_of(job)
    out: dict[str, Any] = {
        "id": job.id,
        "status": status,
        "operation": job.options.get("operation"),
        "filename": item.filename,
        "content_type": job.options.get("content_type"),
        "client_reference_id": job.client_reference_id,
        "created_at": wj._iso(job.created_at),
        "updated_at": wj._iso(job.updated_at),
        "completed_at": wj._iso(job.completed_at),
        "expires_at": wj._iso(job.expires_at),
        "submit_url": f"{base}/v1/jobs/{job.id}/submit",
        "status_url": f"{base}/v1/jobs/{job.id}",
        "result_url": f"{base}/v1/jobs/{job.id}/result",
    }
    if status == "failed":
        out["error"] = {"code": "processing_failed", "message": item.error}
    if with_upload and status == "awaiting_upload":
        expires = int(job.expires_at.timestamp()) if job.expires_at else int(time.time())
        sig = wj.sign_upload(platform.settings.signing_key(), job.id, expires)
        out["upload"] = {
            "url": f"{base}/v1/uploads/{job.id}?expires={expires}&signature={sig}",
            "method": "PUT",
            "headers": {"Content-Type": job.options.get("content_type")},
            "expires_at": wj._iso(job.expires_at),
            "max_bytes": int(platform.settings.max_raw_images_mb * 1_000_000),
        }
    return out


@router.post(
    "/v1/jobs",
    status_code=201,
    summary="Create an async image job (metadata only); a replayed Idempotency-Key answers 200 with the job",
    openapi_extra=doc.CREATE_BODY,
    responses=responses(routing.WILDLIFE, {200: doc.JOB, 201: doc.JOB}, 409),
)
async def create_job(
    request: Request,
    principal: Inference,
    platform: PlatformDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Any:
    body = await json_object(request)
    operation = body.get("operation", "detect")
    if not isinstance(operation, str) or operation not in wj.OPERATIONS:
        raise bad_request(f"operation must be one of {', '.join(wj.OPERATIONS)}", "operation")
    filename = body.get("filename")
    if not isinstance(filename, str) or not filename.strip():
        raise bad_request("filename is required", "filename")
    ctype = str(body.get("content_type") or "").lower()
    if ctype not in wj.CONTENT_TYPES:
        raise bad_request(f"content_type must be one of {', '.join(sorted(wj.CONTENT_TYPES))}", "content_type")
    ref = body.get("client_reference_id")
    if ref is not None and (not isinstance(ref, str) or len(ref) > 400):
        raise bad_request("client_reference_id must be a string of at most 400 characters", "client_reference_id")
    raw_opts = body.get("options") or {}
    if not isinstance(raw_opts, dict):
        raise bad_request("options must be an object", "options")
    options, metadata, _country = parse_options(raw_opts)
    suppress_repeats = _bool(raw_opts, "suppress_repeats", False)
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= 200:
        raise bad_request("Idempotency-Key must be 1-200 characters", "Idempotency-Key")
    job, created = await run_in_threadpool(
        wj.create,
        platform,
        principal.team_id,
        operation=operation,
        filename=filename,
        content_type=ctype,
        client_reference_id=ref,
        options=options,
        metadata=metadata,
        idempotency_key=idempotency_key,
        body_hash=wj.request_hash(body),
        suppress_repeats=suppress_repeats,
    )
    job, item = await run_in_threadpool(wj.get_job, platform, principal.team_id, job.id)
    view = job_view(job, item, _base(request, platform), platform, with_upload=True)
    return JSONResponse(view, status_code=201 if created else 200)


def _content_length(request: Request) -> int | None:
    v = request.headers.get("content-length")
    return int(v) if v and v.isascii() and v.isdigit() and len(v) <= 18 else None


@router.put(
    "/v1/uploads/{job_id}",
    summary="Signed, single-use upload URL of an async job",
    openapi_extra=doc.UPLOAD_BODY,
    responses=responses(routing.WILDLIFE, {200: doc.UPLOADED}, 400, 403, 404, 409, 410, 413, 415),
)
async def upload(
    job_id: str,
    request: Request,
    platform: PlatformDep,
    expires: Annotated[str, Query(max_length=20, description="When the URL runs out (unix seconds)")] = "",
    signature: Annotated[str, Query(max_length=128, description="The URL's HMAC-SHA256 signature")] = "",
) -> Any:
    wj.check_upload_signature(platform.settings.signing_key(), job_id, expires, signature)
    declared = _content_length(request)
    chunks: list[bytes] = []
    limit = int(platform.settings.max_raw_images_mb * 1_000_000)
    if declared is not None and declared > limit:
        raise SleuthError(413, "payload_too_large", f"Image exceeds the {limit} byte limit")
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise SleuthError(413, "payload_too_large", f"Image exceeds the {limit} byte limit")
        chunks.append(chunk)
    size = await run_in_threadpool(
        wj.accept_upload,
        platform,
        job_id,
        request.headers.get("content-type", ""),
        iter(chunks),
        declared,
    )
    return {"id": job_id, "uploaded_bytes": size}


@router.post(
    "/v1/jobs/{job_id}/submit",
    status_code=202,
    summary="Queue an uploaded job (reserves its credit)",
    responses=responses(routing.WILDLIFE, {202: doc.JOB}, 402, 404, 409, 410, 503),
)
async def submit(job_id: str, request: Request, principal: Inference, platform: PlatformDep) -> Any:
    job = await run_in_threadpool(wj.submit, platform, principal.team_id, job_id)
    job, item = await run_in_threadpool(wj.get_job, platform, principal.team_id, job.id)
    return JSONResponse(job_view(job, item, _base(request, platform), platform, with_upload=False), status_code=202)


@router.get("/v1/jobs/{job_id}", summary="Job status", responses=responses(routing.WILDLIFE, {200: doc.JOB}, 404))
async def status(job_id: str, request: Request, principal: Reference, platform: PlatformDep) -> Any:
    job, item = await run_in_threadpool(wj.get_job, platform, principal.team_id, job_id)
    return job_view(job, item, _base(request, platform), platform, with_upload=True)


@router.get(
    "/v1/jobs/{job_id}/result",
    summary="Job result (202 while pending)",
    responses=responses(routing.WILDLIFE, {200: doc.RESULT, 202: doc.PENDING}, 404),
)
async def result(job_id: str, request: Request, principal: Reference, platform: PlatformDep) -> Any:
    job, item = await run_in_threadpool(wj.get_job, platform, principal.team_id, job_id)
    st = wj.status_of(job)
    if st in ("awaiting_upload", "queued", "processing"):
        return JSONResponse({"id": job.id, "status": st}, status_code=202)
    if st == "expired":
        raise SleuthError(404, "not_found", "Job expired before it was uploaded")
    if st == "failed":
        return {"id": job.id, "status": "error", "error": {"code": "processing_failed", "message": item.error}}
    return await run_in_threadpool(load_result, platform, principal.team_id, job.id)


def _cursor_encode(created: Any, job_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created.isoformat()}|{job_id}".encode()).decode()


def _cursor_decode(cursor: str) -> tuple[Any, str]:
    from datetime import datetime

    try:
        ts, _, jid = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(ts), jid
    except Exception:
        raise bad_request("Invalid cursor", "cursor") from None


@router.get(
    "/v1/jobs",
    summary="List the team's async jobs (cursor pagination)",
    responses=responses(routing.WILDLIFE, {200: doc.LIST}),
)
async def list_jobs(
    request: Request,
    principal: Reference,
    platform: PlatformDep,
    status: Annotated[str | None, Query()] = None,
    client_reference_id: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query()] = None,
) -> Any:
    if status is not None and status not in wj.STATUSES:
        raise bad_request(f"status must be one of {', '.join(wj.STATUSES)}", "status")

    def q() -> tuple[list[tuple[Job, JobItem]], str | None]:
        now = utcnow()
        stmt = (
            select(Job, JobItem)
            .join(JobItem, JobItem.job_id == Job.id)
            .where(Job.team_id == principal.team_id, Job.kind == wj.KIND)
        )
        if client_reference_id is not None:
            stmt = stmt.where(Job.client_reference_id == client_reference_id)
        if status == "expired":
            stmt = stmt.where((Job.status == "expired") | ((Job.status == "awaiting_upload") & (Job.expires_at <= now)))
        elif status == "awaiting_upload":
            stmt = stmt.where(Job.status == "awaiting_upload", Job.expires_at > now)
        elif status is not None:
            stmt = stmt.where(Job.status == status)
        if cursor:
            ts, jid = _cursor_decode(cursor)
            stmt = stmt.where((Job.created_at < ts) | ((Job.created_at == ts) & (Job.id < jid)))
        stmt = stmt.order_by(Job.created_at.desc(), Job.id.desc())
        with platform.db.read_session() as s:
            out = [(j, i) for j, i in s.execute(stmt.limit(limit + 1)).all()]
        nxt = None
        if len(out) > limit:
            out = out[:limit]
            nxt = _cursor_encode(out[-1][0].created_at, out[-1][0].id)
        return out, nxt

    rows, nxt = await run_in_threadpool(q)
    base = _base(request, platform)
    return {
        "data": [job_view(j, i, base, platform, with_upload=False) for j, i in rows],
        "next_cursor": nxt,
        "has_more": nxt is not None,
    }


def mount(app: FastAPI) -> None:
    routing.mount(app, router, routing.WILDLIFE)
