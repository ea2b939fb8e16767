"""Deepfake API (Resemble Detect–compatible): /detect, /detect/{uuid}, /detect/batch.

``POST /detect`` takes exactly one of a multipart ``file``, a JSON ``url`` or a ``media_token`` from
``POST /secure_uploads`` (:mod:`sleuth.api.uploads`), which it uses up.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import threading
import time
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from sleuth.api import media, routing
from sleuth.api.contract import deepfake as doc
from sleuth.api.deps import Inference, PlatformDep, Reference, json_object
from sleuth.api.openapi import responses
from sleuth.engine.threads import lower_thread_priority
from sleuth.platform import jobs, secure_uploads, signing
from sleuth.platform.context import Platform
from sleuth.platform.dispatch import dispatch
from sleuth.platform.errors import SleuthError, bad_request
from sleuth.platform.expiry import track_object
from sleuth.platform.ssrf import allow_hosts_from, check_url, fetch
from sleuth.services import deepfake as svc
from sleuth.services import resemble_types
from sleuth.services.media import (
    MediaRejected,
    as_stream,
    check_zip_directory,
    media_type_for,
    read_member,
    safe_name,
    zip_members,
)
from sleuth.services.media_sniff import HEAD_BYTES, TypeRefused, classify

log = logging.getLogger(__name__)
router = APIRouter(tags=["deepfake"])
MAX_BATCH_FILES = doc.MAX_BATCH_FILES
MAX_PAGE = 100_000  # GET /detect: page * page_size stays far inside every database's integers
WAIT_LIMIT_S = 120.0

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}

# Options of the seed that name capabilities sleuth does not have: accepted when false,
# refused with a clear error when requested (never silently ignored).
UNSUPPORTED_FLAGS = {
    "intelligence": "multimodal intelligence reports are not available in sleuth",
    "use_llm": "LLM-assisted video analysis is not available in sleuth",
    "use_reverse_search": "reverse image search is not available in sleuth",
    "use_ood_detector": "the out-of-distribution audio detector is not available in sleuth",
    "privacy_mode": "privacy_mode is not available; use zero_retention_mode",
}


def _bool(name: str, value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    v = str(value).strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise bad_request(f"{name} must be true or false", name)


MAX_SECONDS = doc.MAX_SECONDS  # regions and max_video_secs: one day of media at most


def _float(name: str, value: Any, lo: float | None = None, hi: float | None = None) -> float | None:
    if value is None or value == "":
        return None
    try:
        f = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int past float's range
        raise bad_request(f"{name} must be a number", name) from None
    if f != f or f in (float("inf"), float("-inf")):
        raise bad_request(f"{name} must be a finite number", name)
    if lo is not None and f < lo:
        raise bad_request(f"{name} must be >= {lo:g}", name)
    if hi is not None and f > hi:
        raise bad_request(f"{name} must be <= {hi:g}", name)
    return f


def parse_options(fields: dict[str, Any], *, batch: bool, platform: Platform) -> tuple[svc.DetectOptions, str | None]:
    for name, why in UNSUPPORTED_FLAGS.items():
        if name in fields and _bool(name, fields[name], False):
            raise SleuthError(400, "unsupported_option", f"{name}=true is not supported: {why}", name)
    tracing_name = "audio_source_tracing_enabled" if batch else "audio_source_tracing"
    other = "audio_source_tracing" if batch else "audio_source_tracing_enabled"
    if other in fields:
        where = "a batch" if batch else "a single detect"
        raise bad_request(f"{other} is not an option of {where}; use {tracing_name}", other)
    model_types = fields.get("model_types")
    if model_types not in (None, "", "image"):
        raise SleuthError(
            400, "unsupported_option", f"model_types={model_types!r} is not supported (only 'image')", "model_types"
        )
    pipeline = fields.get("pipeline")
    if pipeline not in (None, "", "general->facial->object", "facial"):
        raise SleuthError(400, "unsupported_option", "pipeline: only the facial pipeline is available", "pipeline")
    fl_raw = fields.get("frame_length")
    frame_length = 2
    if fl_raw not in (None, ""):
        try:
            frame_length = int(str(fl_raw))
        except ValueError:
            raise bad_request("frame_length must be an integer from 1 to 4", "frame_length") from None
        if not 1 <= frame_length <= 4:
            raise bad_request("frame_length must be an integer from 1 to 4", "frame_length")
    start = _float("start_region", fields.get("start_region"), 0.0, MAX_SECONDS)
    end = _float("end_region", fields.get("end_region"), 0.0, MAX_SECONDS)
    if start is not None and end is not None and end <= start:
        raise bad_request("end_region must be greater than start_region", "end_region")
    max_secs = _float("max_video_secs", fields.get("max_video_secs"), 0.0, MAX_SECONDS)
    if max_secs is not None and max_secs <= 0:
        raise bad_request("max_video_secs must be positive", "max_video_secs")
    max_fps = _float("max_video_fps", fields.get("max_video_fps"), 0.0)
    if max_fps is not None and not 0 < max_fps <= 60:
        raise bad_request("max_video_fps must be in (0, 60]", "max_video_fps")
    opts = svc.DetectOptions(
        visualize=_bool("visualize", fields.get("visualize"), batch),
        frame_length=frame_length,
        start_region=start,
        end_region=end,
        max_video_secs=max_secs,
        max_video_fps=max_fps,
        zero_retention_mode=_bool("zero_retention_mode", fields.get("zero_retention_mode"), False),
        search_identity=_bool("search_identity", fields.get("search_identity"), False),
        audio_source_tracing=_bool(tracing_name, fields.get(tracing_name), False),
    )
    callback = fields.get("callback_url") or None
    if callback is not None:
        callback = str(callback)
        check_url(callback, allow_hosts_from(platform.settings.url_allow_private), "callback_url")
    return opts, callback


def _form_fields(form: FormData) -> dict[str, Any]:
    """The form's options; one sent twice is refused (which one counts would be a guess)."""
    fields: dict[str, Any] = {}
    for k, v in form.multi_items():
        if isinstance(v, UploadFile):
            continue
        if k in fields:
            raise bad_request(f"{k} was sent more than once; send each option once", k, "repeated_field")
        fields[k] = v
    return fields


class _Staged:
    """Uploaded files staged in a temp dir until the job (and its reservation) exists."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sleuth-intake-"))
        self.files: list[tuple[str, str, Path, int]] = []  # filename, media_type, path, size

    def add_stream(self, filename: str, stream: Any, limit: int) -> None:
        """Stage one upload. Its ``media_type`` comes from its content (magic bytes), not its name."""
        name = safe_name(filename)
        shown = name if len(filename) > 80 else filename  # error messages quote a bounded name
        path = self.dir / f"{len(self.files):03d}.part"
        size = 0
        with open(path, "wb") as f:
            while True:
                chunk = stream.read(1 << 20)
                if not chunk:
                    break
                size += len(chunk)
                if size > limit:
                    raise SleuthError(413, "payload_too_large", f"{shown!r} exceeds the {limit / 1e6:g} MB limit")
                f.write(chunk)
        if size == 0:
            raise bad_request(f"{shown!r} is empty", "files[]", "empty_file")
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
        try:
            mtype = classify(shown, head, media_type_for(name))
        except TypeRefused as e:
            raise bad_request(str(e), "files[]", e.code) from None
        final = path.with_suffix(Path(name).suffix.lower() if media_type_for(name) else "")
        path.rename(final)
        self.files.append((name, mtype, final, size))

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


Staged = _Staged  # POST /secure_uploads (api/uploads.py) stages a file by the same rules


def _create(
    platform: Platform,
    team_id: str,
    staged: _Staged,
    opts: svc.DetectOptions,
    callback: str | None,
    *,
    batch: bool,
    lane: str,
    base_url: str = "",
) -> tuple[str, list[str]]:
    job_id = str(uuid.uuid4())
    specs = []
    for name, mtype, path, size in staged.files:
        item_id = str(uuid.uuid4())
        specs.append(
            jobs.ItemSpec(
                filename=name,
                media_type=mtype,
                size=size,
                id=item_id,
                cost=svc.projected_cost(mtype, path, opts),
                media_key=svc.media_key(team_id, job_id, item_id, name),
            )
        )
    exp = svc.expires_at(platform)
    options = opts.as_dict() | {"batch": batch}
    if base_url:  # links in the callback body are absolute like the API's (services.deepfake.callback_base_url)
        options["base_url"] = base_url
    # Reserve everything first, in the transaction that creates the rows (402 => nothing created,
    # nothing stored); the job stays "staging" until its media is stored, then it is queued.
    jobs.create_job(
        platform.db,
        team_id,
        svc.KIND,
        specs,
        options=options,
        callback_url=callback,
        lane=lane,
        status="staging",
        reserve_reason=f"deepfake {'batch' if batch else 'detect'} {job_id}",
        expires_at=exp,
        job_id=job_id,
    )
    try:
        for spec, (_n, _m, path, _s) in zip(specs, staged.files, strict=True):
            assert spec.media_key is not None
            with open(path, "rb") as f:
                platform.storage.put(spec.media_key, f)
            track_object(platform.db, spec.media_key, team_id, "media", spec.size, exp)
        jobs.release_job(platform.db, job_id)
    except BaseException:
        _discard(platform, job_id, specs)
        raise
    dispatch(platform, [s.id for s in specs], svc.KIND)  # wake the local worker or enqueue to Celery
    return job_id, [s.id for s in specs]


def _discard(platform: Platform, job_id: str, specs: list[jobs.ItemSpec]) -> None:
    from sqlalchemy import delete

    from sleuth.db.models import StoredObject

    keys = [spec.media_key for spec in specs if spec.media_key]
    for key in keys:
        platform.storage.delete(key)
    with platform.db.session() as s:
        s.execute(delete(StoredObject).where(StoredObject.key.in_(keys)))
    jobs.discard_job(platform.db, job_id)


def _run_inline(platform: Platform, item_id: str, worker_id: str) -> str:
    """Run a claimed item in this thread, heart-beating its lease so the reaper leaves it alone."""
    import threading

    done = threading.Event()

    def beat() -> None:
        while not done.wait(platform.settings.job_heartbeat_s):
            jobs.heartbeat(platform.db, worker_id, [item_id])

    t = threading.Thread(target=beat, name="sleuth-inline-heartbeat", daemon=True)
    t.start()
    try:
        return jobs.run_item(platform, item_id, worker_id)
    finally:
        done.set()
        t.join(5)


def _run_inline_then_free(platform: Platform, item_id: str, worker_id: str, slot: threading.BoundedSemaphore) -> str:
    """:func:`_run_inline`, then free the inline slot in this thread (also when the request has long returned)."""
    try:
        return _run_inline(platform, item_id, worker_id)
    except Exception:  # run_item records the outcome itself; nobody may be left to read this
        log.exception("inline run of %s failed", item_id)
        return ""
    finally:
        slot.release()


_inline_lock = threading.Lock()
_inline_slots: dict[int, threading.BoundedSemaphore] = {}
_inline_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}


def _inline_pool(platform: Platform) -> ThreadPoolExecutor:
    """The threads inline runs use: their own (not the request thread pool), at job priority for the OS
    (:func:`~sleuth.engine.threads.lower_thread_priority`), so sync requests get the cores first."""
    n, nice = max(1, platform.settings.inline_runs), platform.settings.job_thread_nice
    with _inline_lock:
        pool = _inline_pools.get((n, nice))
        if pool is None:
            pool = _inline_pools[n, nice] = ThreadPoolExecutor(
                n, thread_name_prefix="sleuth-inline", initializer=lower_thread_priority, initargs=(nice,)
            )
        return pool


def _inline_slot(platform: Platform) -> threading.BoundedSemaphore:
    """At most ``inline_runs`` items run inside their request at a time (per process)."""
    n = max(1, platform.settings.inline_runs)
    with _inline_lock:
        sem = _inline_slots.get(n)
        if sem is None:
            sem = _inline_slots[n] = threading.BoundedSemaphore(n)
        return sem


async def _wait_for(platform: Platform, team_id: str, item_id: str) -> None:
    """``Prefer: wait``: run the item now in this request if no worker took it and an inline slot is free,
    else poll (the job workers claim it, fairly across teams). In-flight deepfake work stays bounded:
    ``inline_runs`` requests plus the workers, whatever the number of waiting clients.

    The wait ends at ``WAIT_LIMIT_S`` whatever runs: an inline run still going on then carries on in its thread
    (its slot is freed when it ends) and the answer is the item as it stands (``processing``), to be polled."""
    wid = jobs.worker_name()
    deadline = time.monotonic() + WAIT_LIMIT_S
    slot = _inline_slot(platform)
    while time.monotonic() < deadline:
        # queued (first time, or again after a retryable failure): run it here if a slot is free
        if slot.acquire(blocking=False):
            run: asyncio.Future[str] | None = None
            try:
                if await run_in_threadpool(jobs.claim_item, platform.db, item_id, wid):
                    loop = asyncio.get_running_loop()
                    run = loop.run_in_executor(
                        _inline_pool(platform), _run_inline_then_free, platform, item_id, wid, slot
                    )
            finally:
                if run is None:
                    slot.release()
            if run is not None:
                try:
                    await asyncio.wait_for(asyncio.shield(run), max(0.0, deadline - time.monotonic()))
                except TimeoutError:
                    return  # the run goes on; the client polls GET /detect/{uuid}
        item, job = await run_in_threadpool(svc.get_item, platform, team_id, item_id)
        # settled = terminal, and with zero retention the media already deleted
        if item.status in jobs.TERMINAL and not (job.options.get("zero_retention_mode") and item.media_key):
            return
        await asyncio.sleep(0.2)


def _signer(platform: Platform) -> signing.Signer:
    return signing.signer(platform.settings)


def _base_url(request: Request, platform: Platform) -> str:
    return platform.settings.public_url.rstrip("/") or str(request.base_url).rstrip("/")


def _create_from_token(
    platform: Platform,
    team_id: str,
    token: object,
    staged: _Staged,
    opts: svc.DetectOptions,
    callback: str | None,
    base_url: str = "",
) -> list[str]:
    """A detect of a secure upload: the token is used up only if the detect is created (402 etc. keep it)."""
    with secure_uploads.consume(platform, team_id, token) as media, open(media.path, "rb") as f:
        staged.add_stream(media.filename, f, int(platform.settings.max_detect_upload_mb * 1e6))
        _job_id, ids = _create(
            platform, team_id, staged, opts, callback, batch=False, lane="interactive", base_url=base_url
        )
    return ids


ONE_INPUT = "Provide exactly one of: multipart 'file', JSON 'url', or 'media_token' (from POST /secure_uploads)"


@router.post(
    "/detect",
    summary="Create a deepfake detection (file upload, URL or media_token)",
    openapi_extra=doc.DETECT_BODY,
    responses=responses(routing.DEEPFAKE, {200: doc.ONE}, 402, 404, 503),  # 503 queue_full: platform.fairness
)
async def create_detect(
    request: Request,
    principal: Inference,
    platform: PlatformDep,
    prefer: Annotated[str | None, Header()] = None,
) -> Any:
    ctype = request.headers.get("content-type", "")
    submitted_from = str(request.base_url).rstrip("/")
    staged = _Staged()
    ids: list[str] | None = None
    try:
        if ctype.startswith("application/json"):
            body = await json_object(request, empty={})
            opts, callback = await run_in_threadpool(parse_options, body, batch=False, platform=platform)
            url, token = body.get("url"), body.get("media_token")
            if token is not None and url:
                raise bad_request(ONE_INPUT, "media_token")
            if token is not None:
                ids = await run_in_threadpool(
                    _create_from_token, platform, principal.team_id, token, staged, opts, callback, submitted_from
                )
            elif not url or not isinstance(url, str):
                raise bad_request(ONE_INPUT, "url")
            else:
                fetched = await run_in_threadpool(
                    fetch,
                    url,
                    max_bytes=int(platform.settings.max_detect_upload_mb * 1e6),
                    timeout=platform.settings.url_fetch_timeout_s,
                    allow_hosts=allow_hosts_from(platform.settings.url_allow_private),
                )
                name = safe_name(url.split("#", 1)[0].rsplit("/", 1)[-1].split("?")[0], "download")
                import io

                await run_in_threadpool(staged.add_stream, name, io.BytesIO(fetched.content), len(fetched.content))
        else:
            form = await request.form(max_files=2)
            fields = _form_fields(form)
            opts, callback = await run_in_threadpool(parse_options, fields, batch=False, platform=platform)
            uploads = [v for k, v in form.multi_items() if isinstance(v, UploadFile)]
            token = fields.get("media_token") or None
            if token is not None and not uploads:
                ids = await run_in_threadpool(
                    _create_from_token, platform, principal.team_id, token, staged, opts, callback, submitted_from
                )
            else:
                if len(uploads) != 1 or form.get("file") is None or token is not None:
                    raise bad_request(ONE_INPUT, "file")
                up = uploads[0]
                await run_in_threadpool(
                    staged.add_stream,
                    up.filename or "upload",
                    up.file,
                    int(platform.settings.max_detect_upload_mb * 1e6),
                )
        if ids is None:
            _job_id, ids = await run_in_threadpool(
                _create,
                platform,
                principal.team_id,
                staged,
                opts,
                callback,
                batch=False,
                lane="interactive",
                base_url=submitted_from,
            )
    finally:
        staged.cleanup()
    assert ids is not None
    if prefer and "wait" in prefer.lower():
        await _wait_for(platform, principal.team_id, ids[0])
    item, job = await run_in_threadpool(svc.get_item, platform, principal.team_id, ids[0])
    return {"success": True, "item": svc.item_view(item, job, _base_url(request, platform), _signer(platform))}


@router.get(
    "/detect/{uuid}", summary="Get a detection result", responses=responses(routing.DEEPFAKE, {200: doc.ONE}, 404)
)
async def get_detect(uuid: str, request: Request, principal: Reference, platform: PlatformDep) -> Any:
    item, job = await run_in_threadpool(svc.get_item, platform, principal.team_id, uuid)
    return {"success": True, "item": svc.item_view(item, job, _base_url(request, platform), _signer(platform))}


@router.get(
    "/detect/{uuid}/visualization",
    summary="The visualization PNG of a detection (Bearer, or the signed link in the result)",
    responses=media.media_responses(routing.DEEPFAKE, "image/png", "The visualization PNG"),
)
async def get_visualization(
    uuid: str, access: media.MediaAccess, platform: PlatformDep, range_: media.RangeHeader = None
) -> Response:
    item, _job = await run_in_threadpool(svc.get_item, platform, access.team_id or _owner(platform, uuid), uuid)
    key = (item.result or {}).get("visualization_key")
    if not key or not platform.storage.exists(key):
        raise SleuthError(404, "not_found", "No visualization for this detect")
    return media.media_response(await run_in_threadpool(platform.storage.get, key), "image/png", range_)


@router.get(
    "/detect/{uuid}/media",
    summary="The analysed media, unless deleted by zero retention (Bearer, or the signed link in the result)",
    responses=media.media_responses(
        routing.DEEPFAKE, ["audio/*", "video/*", "image/*", "application/octet-stream"], "The media file"
    ),
)
async def get_media(
    uuid: str, access: media.MediaAccess, platform: PlatformDep, range_: media.RangeHeader = None
) -> Response:
    item, job = await run_in_threadpool(svc.get_item, platform, access.team_id or _owner(platform, uuid), uuid)
    if job.options.get("zero_retention_mode") or not item.media_key or not platform.storage.exists(item.media_key):
        raise SleuthError(404, "not_found", "Media not available (deleted or expired)")
    data = await run_in_threadpool(platform.storage.get, item.media_key)
    return media.media_response(data, media.guess_type(item.filename), range_)


def _owner(platform: Platform, item_id: str) -> str:
    """The team of an item a signed link names (the signature already proved the link was issued for it)."""
    from sleuth.db.models import JobItem

    with platform.db.read_session() as s:
        item = s.get(JobItem, item_id)
        if item is None:
            raise SleuthError(404, "not_found", "Detect not found")
        return item.team_id


@router.get("/detect", summary="List detections (paged)", responses=responses(routing.DEEPFAKE, {200: doc.PAGE}))
async def list_detects(
    request: Request,
    principal: Reference,
    platform: PlatformDep,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 25,
) -> Any:
    rows, total = await run_in_threadpool(svc.list_items, platform, principal.team_id, page, page_size)
    base, sign = _base_url(request, platform), _signer(platform)
    return resemble_types.page([svc.item_view(i, j, base, sign) for i, j in rows], total, page, page_size)


@router.post(
    "/detect/batch",
    status_code=202,
    summary="Create a batch deepfake detection job",
    openapi_extra=doc.BATCH_BODY,
    responses=responses(routing.DEEPFAKE, {202: doc.BATCH}, 402, 503),  # 503 queue_full: platform.fairness
)
async def create_batch(
    request: Request,
    principal: Inference,
    platform: PlatformDep,
    prefer: Annotated[str | None, Header()] = None,
) -> Any:
    if prefer and "wait" in prefer.lower():
        raise bad_request("Prefer: wait is not supported for batches; poll GET /detect/batch/{uuid}", "Prefer")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise bad_request("Send multipart/form-data with repeated files[] or one .zip file", "files[]")
    form = await request.form(max_files=MAX_BATCH_FILES + 1)
    fields = _form_fields(form)
    opts, callback = await run_in_threadpool(parse_options, fields, batch=True, platform=platform)
    if fields.get("media_token"):
        raise SleuthError(
            400, "unsupported_option", "media_token is for POST /detect; a batch takes files[] or a zip", "media_token"
        )
    multi = [v for k, v in form.multi_items() if k in ("files[]", "files") and isinstance(v, UploadFile)]
    single = [v for k, v in form.multi_items() if k == "file" and isinstance(v, UploadFile)]
    if multi and single:
        raise bad_request("files[] and file are mutually exclusive", "file")
    if not multi and not single:
        raise bad_request("Provide repeated files[] or a single .zip as file", "files[]")
    if len(single) > 1:
        raise bad_request("Only one zip file may be sent as file", "file")
    if len(multi) > MAX_BATCH_FILES:
        raise bad_request(f"At most {MAX_BATCH_FILES} files per batch", "files[]", "too_many_files")
    limit = int(platform.settings.max_batch_upload_mb * 1e6)
    staged = _Staged()
    try:
        if single:
            up = single[0]
            if not (up.filename or "").lower().endswith(".zip"):
                raise bad_request("file must be a .zip archive (use files[] for media files)", "file")
            await run_in_threadpool(_stage_zip, staged, up, limit)
        else:
            total = 0
            for up in multi:
                await run_in_threadpool(staged.add_stream, up.filename or "upload", up.file, limit - total)
                total += staged.files[-1][3]
        if not staged.files:
            raise bad_request("The batch contains no media files", "file")
        job_id, ids = await run_in_threadpool(
            _create,
            platform,
            principal.team_id,
            staged,
            opts,
            callback,
            batch=True,
            lane="job",
            base_url=str(request.base_url).rstrip("/"),
        )
    finally:
        staged.cleanup()
    view = await run_in_threadpool(
        svc.get_batch, platform, principal.team_id, job_id, _base_url(request, platform), _signer(platform)
    )
    return JSONResponse({"success": True, "item": view}, status_code=202)


def _stage_zip(staged: _Staged, up: UploadFile, limit: int) -> None:
    try:
        check_zip_directory(up.file)
        zf = zipfile.ZipFile(up.file)
    except MediaRejected as e:
        raise bad_request(str(e), "file", "invalid_zip") from e
    except zipfile.BadZipFile as e:
        raise bad_request("file is not a valid zip archive", "file", "invalid_zip") from e
    with zf:
        try:
            members = zip_members(zf, max_files=MAX_BATCH_FILES, max_total=limit)
            for m in members:
                staged.add_stream(m.name, as_stream(read_member(zf, m, limit)), limit)
        except MediaRejected as e:
            raise bad_request(str(e), "file", "invalid_zip") from e
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError) as e:
            raise bad_request(f"zip archive could not be read: {e}", "file", "invalid_zip") from e


@router.get(
    "/detect/batch/{uuid}",
    summary="Get a batch's aggregate state (with ?include=results, every file's result too)",
    responses=responses(routing.DEEPFAKE, {200: doc.BATCH}, 400, 404),  # 400 invalid_include
)
async def get_batch(
    uuid: str,
    request: Request,
    principal: Reference,
    platform: PlatformDep,
    include: Annotated[
        str | None,
        Query(
            description="`results`: add `items`, each file's detect as GET /detect/{uuid} returns it, in upload "
            "order (one request instead of one per file)",
            max_length=100,
        ),
    ] = None,
) -> Any:
    wanted = {p.strip() for p in (include or "").split(",") if p.strip()}
    if wanted - {"results"}:
        raise bad_request("include takes 'results'", "include", "invalid_include")
    base, sign = _base_url(request, platform), _signer(platform)
    view = await run_in_threadpool(svc.get_batch, platform, principal.team_id, uuid, base, sign, bool(wanted))
    return {"success": True, "item": view}


def mount(app: FastAPI) -> None:
    # /detect/batch must win over /detect/{uuid}
    routing.mount(app, router, routing.DEEPFAKE)
