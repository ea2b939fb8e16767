"""Resemble's identity API: ``POST /identity`` (enrol), ``POST /identity/search``, ``GET /identity[/{uuid}]``,
``DELETE /identity/{uuid}``; team-scoped (another team's identity is a 404).

Enrol and search take the audio as Resemble's do, a JSON ``audio_url`` (enrol) / ``url`` (search; either name is
accepted on both), or as a multipart ``file`` or a ``media_token`` from ``POST /secure_uploads`` (used up). The file
is staged in a temporary folder by ``POST /detect``'s rules (allowed types, content sniffing, size limit), embedded,
and deleted: only the embedding is kept (:mod:`sleuth.services.identity`).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from sleuth.api import routing
from sleuth.api.contract.deepfake import page_of
from sleuth.api.deepfake import Staged
from sleuth.api.deps import Inference, PlatformDep, Reference, json_object
from sleuth.api.openapi import (
    array,
    binary,
    boolean,
    integer,
    json_content,
    multipart,
    nullable,
    number,
    obj,
    request_body,
    responses,
    string,
)
from sleuth.platform import secure_uploads
from sleuth.platform.context import Platform
from sleuth.platform.errors import SleuthError, bad_request
from sleuth.platform.ssrf import allow_hosts_from, fetch
from sleuth.services import identity as svc
from sleuth.services import resemble_types
from sleuth.services.media import safe_name

router = APIRouter(tags=["identity"])

ONE_INPUT = (
    "Provide exactly one of: JSON 'audio_url' (or 'url'), multipart 'file', or 'media_token' (from POST "
    "/secure_uploads)"
)
_INPUT_FIELDS: dict[str, Any] = {
    "audio_url": string("Public http(s) URL of the audio (or video) to take the voice from", format="uri"),
    "url": string("Same as audio_url (the name Resemble's search uses)", format="uri"),
    "media_token": string("A single-use token from POST /secure_uploads, used up by this request"),
    "type": string("voice (default). face identities need a face-embedding model sleuth does not have: 400"),
    "zero_retention_mode": boolean("Accepted; enrolment and query audio are never stored anyway", False),
}
_FILE = binary("The audio (or video with speech): wav, mp3, ogg, m4a, flac, aac, mp4, mov, mkv, webm, avi")
_NAME = string("The identity's name", minLength=1, maxLength=200)
_TOP_K = integer(f"How many identities to return, nearest first (default {svc.TOP_K_DEFAULT})", 1, svc.TOP_K_MAX)
ENROL_BODY = request_body(
    json_content(obj({"name": _NAME, **_INPUT_FIELDS}, required=["name"])),
    multipart({"name": _NAME, "file": _FILE, **_INPUT_FIELDS}, required=["name"]),
)
SEARCH_BODY = request_body(
    json_content(obj({"top_k": _TOP_K, **_INPUT_FIELDS})),
    multipart({"top_k": _TOP_K, "file": _FILE, **_INPUT_FIELDS}),
)
IDENTITY = obj(
    {
        "uuid": string(format="uuid"),
        "name": string(),
        "type": string("voice", enum=["voice"]),
        "model": string("The encoder that made the embedding"),
        "duration": nullable(number("Seconds of speech the embedding covers")),
        "created_at": string(format="date-time"),
        "updated_at": string(format="date-time"),
    },
    required=["uuid", "name", "type", "created_at"],
)
MATCH = obj(
    {
        "uuid": string(format="uuid"),
        "name": string(),
        "confidence": number("How sure it is the same speaker (0.5 at the equal-error threshold)", 0, 1),
        "distance": number("1 - cosine similarity of the voice embeddings; lower = more similar", 0, 1),
    },
    required=["uuid", "name", "confidence", "distance"],
)
OK = {"success": {"type": "boolean", "enum": [True]}}


def _one_of(fields: dict[str, Any], has_file: bool) -> tuple[str | None, object | None]:
    kind = fields.get("type")
    if kind not in (None, "", "voice"):
        if kind == "face":
            raise svc.face_unavailable("type")
        raise bad_request("type must be 'voice'", "type")
    url = fields.get("audio_url") or fields.get("url") or None
    token = fields.get("media_token") or None
    if (url is not None) + (token is not None) + has_file != 1:
        raise bad_request(ONE_INPUT, "media_token" if token is not None else ("file" if has_file else "audio_url"))
    if url is not None and not isinstance(url, str):
        raise bad_request("audio_url must be a URL string", "audio_url")
    return url, token


def _stage_url(platform: Platform, staged: Staged, url: str, limit: int, field: str) -> None:
    fetched = fetch(
        url,
        max_bytes=limit,
        timeout=platform.settings.url_fetch_timeout_s,
        allow_hosts=allow_hosts_from(platform.settings.url_allow_private),
        field=field,
    )
    name = safe_name(url.split("#", 1)[0].rsplit("/", 1)[-1].split("?")[0], "download")
    _add(staged, name, io.BytesIO(fetched.content), limit, field)


def _add(staged: Staged, name: str, stream: Any, limit: int, field: str) -> None:
    try:
        staged.add_stream(name, stream, limit)
    except SleuthError as e:
        if e.field == "files[]":
            e.field = field
        raise
    _name, mtype, _path, _size = staged.files[-1]
    if mtype == "image":
        raise svc.face_unavailable(field)


def _run(
    platform: Platform,
    team_id: str,
    fields: dict[str, Any],
    upload: UploadFile | None,
    act: Callable[[svc.VoicePrint], Any],
) -> Any:
    """Stage the one input, embed its voice, run ``act`` on it; a media token is used up only if ``act`` succeeds."""
    url, token = _one_of(fields, upload is not None)
    staged = Staged()
    limit = int(platform.settings.max_detect_upload_mb * 1e6)
    try:
        ctx: AbstractContextManager[Any] = nullcontext()
        if token is not None:
            ctx = secure_uploads.consume(platform, team_id, token)
        with ctx as media:
            if media is not None:
                with open(media.path, "rb") as f:
                    _add(staged, media.filename, f, limit, "media_token")
                field = "media_token"
            elif upload is not None:
                _add(staged, upload.filename or "upload", upload.file, limit, "file")
                field = "file"
            else:
                assert url is not None
                field = "audio_url" if fields.get("audio_url") else "url"
                _stage_url(platform, staged, url, limit, field)
            name, _mtype, path, _size = staged.files[0]
            vp = svc.voiceprint(Path(path), name, field)
            return act(vp)
    finally:
        staged.cleanup()


async def _fields(request: Request) -> tuple[dict[str, Any], UploadFile | None]:
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("application/json"):
        return await json_object(request, empty={}), None
    if not ctype.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        raise bad_request("Send JSON (audio_url or media_token) or multipart/form-data (file)", "file")
    form = await request.form(max_files=2)
    uploads = [v for _k, v in form.multi_items() if isinstance(v, UploadFile)]
    fields = {k: v for k, v in form.multi_items() if not isinstance(v, UploadFile)}
    if len(uploads) > 1 or (uploads and not isinstance(form.get("file"), UploadFile)):
        raise bad_request("Send at most one file, as 'file'", "file")
    return fields, (uploads[0] if uploads else None)


@router.post(
    "/identity",
    summary="Enrol a voice identity (name + audio by audio_url, file or media_token)",
    openapi_extra=ENROL_BODY,
    responses=responses(
        routing.DEEPFAKE, {200: obj({**OK, "item": IDENTITY}, ["success", "item"])}, 400, 401, 404, 413, 429, 503
    ),
)
async def create_identity(request: Request, principal: Inference, platform: PlatformDep) -> Any:
    fields, upload = await _fields(request)
    name = svc.check_name(fields.get("name"))
    item = await run_in_threadpool(
        _run, platform, principal.team_id, fields, upload, lambda vp: svc.enrol(platform, principal.team_id, name, vp)
    )
    return {"success": True, "item": item}


@router.post(
    "/identity/search",
    summary="Search the team's identities for the voice in an audio (url, file or media_token)",
    openapi_extra=SEARCH_BODY,
    responses=responses(
        routing.DEEPFAKE, {200: obj({**OK, "item": array(MATCH)}, ["success", "item"])}, 400, 401, 404, 413, 429, 503
    ),
)
async def search_identity(request: Request, principal: Inference, platform: PlatformDep) -> Any:
    fields, upload = await _fields(request)
    top_k = svc.check_top_k(fields.get("top_k"))
    matches = await run_in_threadpool(
        _run,
        platform,
        principal.team_id,
        fields,
        upload,
        lambda vp: svc.rank(platform, principal.team_id, vp.embedding, top_k),
    )
    return {"success": True, "item": matches}


@router.get(
    "/identity",
    summary="List the team's identities (paged, newest first)",
    responses=responses(
        routing.DEEPFAKE,
        {200: page_of(IDENTITY)},
        400,
        401,
        429,
    ),
)
async def list_identities(
    principal: Reference,
    platform: PlatformDep,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 25,
) -> Any:
    items, total = await run_in_threadpool(svc.list_page, platform, principal.team_id, page, page_size)
    return resemble_types.page(items, total, page, page_size)


@router.get(
    "/identity/{uuid}",
    summary="Get one identity",
    responses=responses(routing.DEEPFAKE, {200: obj({**OK, "item": IDENTITY}, ["success", "item"])}, 401, 404, 429),
)
async def get_identity(uuid: str, principal: Reference, platform: PlatformDep) -> Any:
    return {"success": True, "item": await run_in_threadpool(svc.get, platform, principal.team_id, uuid)}


@router.delete(
    "/identity/{uuid}",
    summary="Delete an identity (its embedding)",
    responses=responses(routing.DEEPFAKE, {200: obj(OK, ["success"])}, 401, 404, 429),
)
async def delete_identity(uuid: str, principal: Reference, platform: PlatformDep) -> Any:
    await run_in_threadpool(svc.remove, platform, principal.team_id, uuid)
    return {"success": True}


def mount(app: FastAPI) -> None:
    routing.mount(app, router, routing.DEEPFAKE)
