"""Resemble's secure uploads: ``POST /secure_uploads`` (multipart ``file``) -> ``{success, token}``.

The file follows ``POST /detect``'s rules (allowed types, content sniffing, ``SLEUTH_MAX_DETECT_UPLOAD_MB``) and is
kept for the team behind a single-use ``media_token`` (:mod:`sleuth.platform.secure_uploads`), which
``POST /detect`` accepts in place of ``file`` or ``url``. Resemble's Node SDK uploads this way in
``detection.create({file})``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from sleuth.api import routing
from sleuth.api.deepfake import Staged
from sleuth.api.deps import Inference, PlatformDep
from sleuth.api.openapi import (
    binary,
    integer,
    multipart,
    obj,
    request_body,
    responses,
    string,
)
from sleuth.platform import secure_uploads
from sleuth.platform.errors import SleuthError, bad_request
from sleuth.services.media import ALLOWED_EXT

router = APIRouter(tags=["deepfake"])

UPLOAD_BODY = multipart(
    {
        "file": binary(
            "One media file, as for POST /detect: "
            + ", ".join(sorted(e.lstrip(".") for e in ALLOWED_EXT))
            + "; at most SLEUTH_MAX_DETECT_UPLOAD_MB (150 MB by default)."
        )
    },
    required=["file"],
)
UPLOAD_OK = obj(
    {
        "success": {"type": "boolean", "enum": [True]},
        "token": string("The media_token: give it once to POST /detect (or identity enrol/search) before it expires"),
        "expires_at": string("When the token and its file expire (SLEUTH_MEDIA_TOKEN_TTL_S)", format="date-time"),
        "filename": string("The stored file's name"),
        "media_type": string("audio, image or video", enum=["audio", "image", "video"]),
        "size": integer("Bytes stored", minimum=1),
    },
    required=["success", "token", "expires_at", "filename", "media_type", "size"],
)


def _iso(dt: Any) -> str:
    return str(dt.isoformat().replace("+00:00", "Z"))


@router.post(
    "/secure_uploads",
    summary="Store a file for a later detect; returns a single-use media_token",
    openapi_extra=request_body(UPLOAD_BODY),
    responses=responses(routing.DEEPFAKE, {200: UPLOAD_OK}, 400, 401, 413, 429),
)
async def create_secure_upload(request: Request, principal: Inference, platform: PlatformDep) -> Any:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise bad_request("Send multipart/form-data with one 'file'", "file")
    form = await request.form(max_files=2)
    files = [v for _k, v in form.multi_items() if isinstance(v, UploadFile)]
    up = form.get("file")
    if len(files) != 1 or not isinstance(up, UploadFile):
        raise bad_request("Provide exactly one 'file'", "file")
    staged = Staged()
    try:
        try:
            await run_in_threadpool(
                staged.add_stream, up.filename or "upload", up.file, int(platform.settings.max_detect_upload_mb * 1e6)
            )
        except SleuthError as e:
            if e.field == "files[]":  # /detect's intake names the batch field; here it is 'file'
                e.field = "file"
            raise
        name, mtype, path, size = staged.files[0]
        stored = await run_in_threadpool(secure_uploads.store, platform, principal.team_id, name, mtype, path, size)
    finally:
        staged.cleanup()
    return {
        "success": True,
        "token": stored.token,
        "expires_at": _iso(stored.expires_at),
        "filename": stored.filename,
        "media_type": stored.media_type,
        "size": stored.size,
    }


def mount(app: FastAPI) -> None:
    routing.mount(app, router, routing.DEEPFAKE)
