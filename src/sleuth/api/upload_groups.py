"""Upload groups, what the web app calls an upload (what it sent in one go, so a team can come back to it):
``POST /v1/upload-groups``, ``GET /v1/upload-groups``, ``GET /v1/upload-groups/{id}`` and
``GET /v1/upload-groups/{id}/items`` (see :mod:`sleuth.services.uploads`). Not to be confused with
``PUT /v1/uploads/{job_id}``, an async job's signed upload URL."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from sleuth.api import routing
from sleuth.api.deps import PlatformDep, Reference, json_object
from sleuth.api.openapi import (
    WILDLIFE,
    array,
    boolean,
    integer,
    json_content,
    nullable,
    number,
    obj,
    or_empty,
    request_body,
    responses,
    string,
)
from sleuth.platform import signing, teams
from sleuth.platform.context import Platform
from sleuth.platform.errors import bad_request
from sleuth.services import upload_view
from sleuth.services import uploads as svc

router = APIRouter(tags=["web app"])

# optional fields: null or empty means not given (the web app sends null)
DEPLOYMENT = obj(
    {
        "name": string(
            "Deployment (camera placement) name; its slug is the Camtrap DP deploymentID",
            minLength=1,
            maxLength=200,
            pattern=r"\S",
        ),
        "latitude": or_empty(number("WGS84 decimal degrees", -90, 90)),
        "longitude": or_empty(number("WGS84 decimal degrees", -180, 180)),
        "camera_id": or_empty(string("Camera id; the first part of each job's client_reference_id", maxLength=200)),
        "camera_model": or_empty(string(maxLength=200)),
        "location_name": or_empty(string(maxLength=200)),
        "country": or_empty(
            string("Geofence country (CCA2, CCA3 or name); default: from latitude/longitude", maxLength=200)
        ),
    },
    required=["name"],
)
_COMMON = {
    "name": or_empty(string("A name to find the upload by (default: the deployment's)", maxLength=200)),
    "file_count": integer("How many files the page is about to send", 0, 100_000),
    "reviewer": or_empty(string("Who created it (default: the API key's reviewer name); cut to 200 characters")),
}
CREATE = {
    "oneOf": [
        obj(
            {
                "kind": string("wildlife (the default)", enum=["wildlife"]),
                **_COMMON,
                "deployment": DEPLOYMENT,
                "options": nullable(
                    obj(
                        {
                            "threshold": nullable(number("Detection threshold of the jobs", 0.01, 0.99)),
                            "classify": nullable(boolean("Species classification", True)),
                            "smooth_herd": nullable(boolean("Smooth labels across a herd", False)),
                            "suppress_repeats": nullable(
                                boolean("Drop boxes that recur at one place across the camera's images", False)
                            ),
                        }
                    )
                ),
                "batch_uuid": {"type": "null", "description": "Only for a deepfake upload"},
            },
            required=["deployment"],
        ),
        obj(
            {
                "kind": string("deepfake", enum=["deepfake"]),
                **_COMMON,
                "batch_uuid": string("The batch POST /detect/batch created", minLength=1),
                "deployment": {"type": "null", "description": "Only for a wildlife upload"},
                "options": {"type": "null", "description": "Only for a wildlife upload"},
            },
            required=["kind", "batch_uuid"],
        ),
    ]
}
UPLOAD = obj(
    {
        "id": string(),
        "kind": string(),
        "name": string(),
        "created_at": string(format="date-time"),
        "expires_at": string(format="date-time"),
        "created_by": string("The reviewer name of the key that created it"),
        "file_count": integer(),
        "reference_prefix": string("wildlife: create each job with client_reference_id = this + the file's path"),
        "deployment": obj({}, additionalProperties=True, description="The deployment, with the derived country"),
        "job_options": obj({}, additionalProperties=True, description="wildlife: the options to create jobs with"),
        "batch_uuid": string("deepfake: the batch"),
        "counts": obj({}, additionalProperties={"type": "integer"}, description="Jobs (or batch items) by state"),
    },
    required=["id", "kind", "name", "created_at", "expires_at", "file_count"],
)
ITEM = obj(
    {
        "job_id": string(),
        "file": string("Path inside the upload"),
        "status": string(enum=list(svc.JOB_STATES)),
        "error": nullable(string()),
        "image_url": nullable(string("Signed link to the image (expires after SLEUTH_MEDIA_URL_TTL_S)")),
        "result": nullable(obj({}, additionalProperties=True, description="annotations, metadata, info")),
        "review": nullable(obj({}, additionalProperties=True, description="The image's review state")),
        "event": nullable(obj({}, additionalProperties=True, description="Its event (sequence): id, frame, size")),
    }
)


def _base(request: Request, platform: Platform) -> str:
    return platform.settings.public_url.rstrip("/") or str(request.base_url).rstrip("/")


@router.post(
    "/v1/upload-groups",
    status_code=201,
    summary="Start an upload (wildlife: a deployment and its job options; deepfake: a batch)",
    openapi_extra=request_body(json_content(CREATE)),
    responses=responses(WILDLIFE, {201: UPLOAD}, 400, 401, 404, 429),
)
async def create_upload(request: Request, principal: Reference, platform: PlatformDep) -> Any:
    body = await json_object(request)
    info = await run_in_threadpool(teams.key_info, platform.db, principal.key_id)
    reviewer = body.pop("reviewer", None)
    if reviewer is not None and not isinstance(reviewer, str):
        raise bad_request("reviewer must be a string", "reviewer")
    who = reviewer.strip() if isinstance(reviewer, str) and reviewer.strip() else info.reviewer
    up = await run_in_threadpool(svc.create, platform, principal.team_id, who, body)
    view = await run_in_threadpool(svc.view, platform, up)
    return JSONResponse(view, status_code=201)


@router.get(
    "/v1/upload-groups",
    summary="The team's uploads, newest first",
    responses=responses(
        WILDLIFE,
        {200: obj({"data": array(UPLOAD), "total": integer(), "offset": integer(), "limit": integer()})},
        400,
        401,
        429,
    ),
)
async def list_uploads(
    principal: Reference,
    platform: PlatformDep,
    kind: Annotated[str | None, Query(description="wildlife or deepfake")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Any:
    def run() -> dict[str, Any]:
        rows, total = svc.list_uploads(platform, principal.team_id, kind, limit, offset)
        return {"data": [svc.view(platform, u) for u in rows], "total": total, "offset": offset, "limit": limit}

    return await run_in_threadpool(run)


@router.get(
    "/v1/upload-groups/{upload_id}",
    summary="One upload with its progress",
    responses=responses(WILDLIFE, {200: UPLOAD}, 401, 404, 429),
)
async def get_upload(upload_id: str, principal: Reference, platform: PlatformDep) -> Any:
    up = await run_in_threadpool(svc.get, platform, principal.team_id, upload_id)
    return await run_in_threadpool(svc.view, platform, up)


@router.get(
    "/v1/upload-groups/{upload_id}/items",
    summary="A wildlife upload's images: job, result, review state, event, signed image link",
    responses=responses(
        WILDLIFE,
        {
            200: obj(
                {"upload": UPLOAD, "items": array(ITEM), "total": integer(), "offset": integer(), "limit": integer()}
            )
        },
        400,
        401,
        404,
        429,
    ),
)
async def upload_items(
    upload_id: str,
    request: Request,
    principal: Reference,
    platform: PlatformDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Any:
    def run() -> dict[str, Any]:
        up = svc.get(platform, principal.team_id, upload_id)
        if up.kind != "wildlife":
            from sleuth.platform.errors import bad_request

            raise bad_request("a deepfake upload has no image items; see GET /detect/batch/{batch_uuid}", "upload_id")
        rows, total = upload_view.items(
            platform, up, offset, limit, _base(request, platform), signing.signer(platform.settings)
        )
        return {"upload": svc.view(platform, up), "items": rows, "total": total, "offset": offset, "limit": limit}

    return await run_in_threadpool(run)


def mount(app: FastAPI) -> None:
    routing.mount(app, router, routing.WILDLIFE)
