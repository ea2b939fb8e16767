"""Media a browser opens: a wildlife job's image, a deepfake item's media and visualization.

Each accepts either ``Authorization: Bearer <key>`` (the owning team) or a short-lived signed link
(``?expires=&signature=``, see :mod:`sleuth.platform.signing`), which is what result views and the web app hand
out. Responses honour ``Range`` (audio and video seeking).
"""

from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from sleuth.api import routing
from sleuth.api.deps import PlatformDep, get_platform
from sleuth.api.openapi import AUTH_ATTR, WILDLIFE, binary, responses
from sleuth.platform import signing
from sleuth.platform.auth import authenticate
from sleuth.platform.context import Platform
from sleuth.platform.errors import SleuthError

router = APIRouter(tags=["media"])
_RANGE = re.compile(r"^bytes=([0-9]{0,18})-([0-9]{0,18})$")  # ASCII digits, inside a 64-bit offset


@dataclass(frozen=True)
class Access:
    """Who opens a media link: a team (Bearer) or anyone holding a valid signed link (``team_id`` None)."""

    team_id: str | None
    signed: bool


async def media_access(
    request: Request,
    platform: Annotated[Platform, Depends(get_platform)],
    authorization: Annotated[str | None, Header()] = None,
    expires: Annotated[
        str | None, Query(max_length=20, description="Signed link: when it runs out (unix seconds)")
    ] = None,
    signature: Annotated[
        str | None, Query(max_length=128, description="Signed link: HMAC-SHA256 of the path and `expires`")
    ] = None,
) -> Access:
    if signature is not None or expires is not None:
        path = routing.canonical_path(request.url.path)
        signing.check(platform.settings.signing_key(), path, expires, signature)
        return Access(team_id=None, signed=True)
    principal = await run_in_threadpool(authenticate, platform.db, authorization)
    return Access(team_id=principal.team_id, signed=False)


# described with the key schemes in the OpenAPI (a signed link, the query parameters, is the other way in)
setattr(media_access, AUTH_ATTR, True)


MediaAccess = Annotated[Access, Depends(media_access)]
RangeHeader = Annotated[str | None, Header(alias="Range")]


def media_response(data: bytes, media_type: str, range_header: str | None) -> Response:
    """The bytes, or the one range asked for (206), or 416 for a range outside them."""
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, max-age=300"}
    size = len(data)
    m = _RANGE.match((range_header or "").strip())
    if not m or (not m.group(1) and not m.group(2)):
        return Response(data, media_type=media_type, headers=headers)
    if m.group(1):
        start = int(m.group(1))
        end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
    else:  # the last n bytes
        start, end = max(0, size - int(m.group(2))), size - 1
    if start >= size or end < start:
        return Response(status_code=416, headers=headers | {"Content-Range": f"bytes */{size}"})
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return Response(data[start : end + 1], status_code=206, media_type=media_type, headers=headers)


def media_responses(family: routing.Family, media_type: str | list[str], what: str) -> dict[int | str, Any]:
    """``responses=`` of a media route: the bytes (200, or 206 for a range) in each of its media types, and its
    errors (400 for a malformed signed-link parameter, 401/403 for a missing key or a bad link, 404, 416)."""
    out = responses(family, {}, 400, 401, 403, 404, 416)
    types = [media_type] if isinstance(media_type, str) else media_type
    body = {"content": {t: {"schema": binary(what)} for t in types}}
    out[200] = {"description": what} | body
    out[206] = {"description": f"{what}: the range asked for (`Range: bytes=a-b`)"} | body
    return out


def guess_type(filename: str, default: str = "application/octet-stream") -> str:
    return mimetypes.guess_type(filename)[0] or default


def _job_image(platform: Platform, access: Access, job_id: str) -> tuple[bytes, str]:
    from sqlalchemy import select

    from sleuth.db.models import Job, JobItem

    with platform.db.read_session() as s:
        row = s.execute(
            select(Job, JobItem).join(JobItem, JobItem.job_id == Job.id).where(Job.id == job_id, Job.kind == "wildlife")
        ).first()
    if row is None or (access.team_id is not None and row[0].team_id != access.team_id):
        raise SleuthError(404, "not_found", "Job not found")
    job, item = row
    if not item.media_key or not platform.storage.exists(item.media_key):
        raise SleuthError(404, "not_found", "The job's image is not stored (not uploaded yet, or expired)")
    return platform.storage.get(item.media_key), str(job.options.get("content_type") or guess_type(item.filename))


@router.get(
    "/v1/jobs/{job_id}/image",
    summary="An async job's uploaded image (Bearer, or the signed link the web app's views carry)",
    responses=media_responses(WILDLIFE, "image/*", "The image"),
)
async def job_image(job_id: str, access: MediaAccess, platform: PlatformDep, range_: RangeHeader = None) -> Any:
    data, ctype = await run_in_threadpool(_job_image, platform, access, job_id)
    return media_response(data, ctype, range_)


def mount(app: FastAPI) -> None:
    routing.mount(app, router, routing.WILDLIFE)
