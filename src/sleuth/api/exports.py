"""``GET /v1/exports``: a team's wildlife results (by id, by upload group, by time range) as MegaDetector JSON,
Camtrap DP (zip), CSV or COCO Camera Traps, with every review applied; ``GET /v1/results``: the team's stored
results."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import Response
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from sleuth.api import routing
from sleuth.api.deps import PlatformDep, Reference
from sleuth.api.openapi import WILDLIFE, array, binary, integer, nullable, obj, responses, string
from sleuth.db.models import StoredResult, utcnow
from sleuth.exports import FORMATS, Deployment
from sleuth.platform import signing
from sleuth.platform.errors import bad_request
from sleuth.services import exports as svc

router = APIRouter(tags=["exports"])
MAX_IDS = 1000


def _time(value: str | None, field: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"{field} must be an ISO 8601 date-time, e.g. 2026-06-17T00:00:00Z", field) from None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _ids(values: list[str] | None, field: str) -> list[str]:
    """The ids of a repeated or comma-separated parameter: each a UUID (canonical form), none empty."""
    out: list[str] = []
    for v in values or []:
        for part in v.split(","):
            p = part.strip()
            if not p:
                raise bad_request(f"{field}: an empty id (a stray comma, or an empty parameter)", field)
            try:
                out.append(str(uuid.UUID(p)))
            except ValueError:
                raise bad_request(f"{field}: {p[:40]!r} is not an id (a UUID)", field) from None
        if len(out) > MAX_IDS:
            raise bad_request(f"at most {MAX_IDS} {field} per export", field)
    return list(dict.fromkeys(out))


def _file_responses() -> dict[int | str, Any]:
    out = responses(WILDLIFE, {}, 400, 401, 404, 409, 429)
    out[200] = {
        "description": "The export as a download (`Content-Disposition: attachment`); `X-Sleuth-Images` counts "
        "the images in it, `X-Sleuth-Skipped` the jobs still running that are not",
        "content": {t: {"schema": binary()} for t in sorted(set(svc.MEDIA_TYPES.values()))},
    }
    return out


@router.get(
    "/v1/exports",
    summary="Export results (ids, uploads or a time range) as md, camtrap-dp, csv or coco, reviews applied",
    responses=_file_responses(),
)
async def export(
    principal: Reference,
    platform: PlatformDep,
    format: Annotated[str, Query(description="md, camtrap-dp, csv or coco", max_length=20)],
    ids: Annotated[
        list[str] | None, Query(description="Result or async job ids (repeat, or comma-separate); at most 1000")
    ] = None,
    group: Annotated[
        list[str] | None, Query(description="Upload group ids (the web app's uploads; repeat, or comma-separate)")
    ] = None,
    since: Annotated[str | None, Query(description="Results completed at or after (ISO 8601)", max_length=40)] = None,
    until: Annotated[str | None, Query(description="... and before (ISO 8601)", max_length=40)] = None,
    threshold: Annotated[
        float | None,
        Query(
            ge=0.0, le=1.0, description="Export threshold (default: the results'); reviewed boxes are always exported"
        ),
    ] = None,
    gap_seconds: Annotated[float, Query(ge=0.0, le=86400.0, description="Event (sequence) gap")] = 60.0,
    deployment_id: Annotated[
        str | None, Query(max_length=200, description="Camtrap DP: the deployment of results not from an upload")
    ] = None,
    latitude: Annotated[float | None, Query(ge=-90, le=90)] = None,
    longitude: Annotated[float | None, Query(ge=-180, le=180)] = None,
    placeholder_coordinates: Annotated[
        bool, Query(description="Camtrap DP: allow 0,0 for a deployment without coordinates")
    ] = False,
    timezone: Annotated[
        str | None, Query(max_length=64, description="Time zone of EXIF times: +02:00 or Europe/Paris (default UTC)")
    ] = None,
    reviews: Annotated[bool, Query(description="Apply reviews (false: the model's output as it was)")] = True,
) -> Response:
    fmt = {"megadetector": "md", "camtrap": "camtrap-dp", "cct": "coco"}.get(format.lower(), format.lower())
    if fmt not in FORMATS:
        raise bad_request(f"format must be one of {', '.join(FORMATS)}", "format")
    if (latitude is None) != (longitude is None):
        raise bad_request("latitude and longitude go together", "latitude")
    deployment = None
    if deployment_id or latitude is not None:
        deployment = Deployment(deployment_id or "deployment", latitude, longitude)
    from sleuth.cli.export_options import parse_timezone

    try:
        tz = parse_timezone(timezone)
    except ValueError as e:
        raise bad_request(str(e), "timezone") from None
    req = svc.ExportRequest(
        format=fmt,
        ids=_ids(ids, "ids"),
        uploads=_ids(group, "group"),
        since=_time(since, "since"),
        until=_time(until, "until"),
        threshold=threshold,
        gap_seconds=gap_seconds,
        deployment=deployment,
        placeholder_coordinates=placeholder_coordinates,
        timezone=tz,
        include_reviews=reviews,
    )
    out = await run_in_threadpool(svc.run, platform, principal.team_id, req)
    return Response(
        out.content,
        media_type=out.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{out.filename}"',
            "X-Sleuth-Images": str(out.images),
            "X-Sleuth-Results": str(out.results),
            "X-Sleuth-Skipped": str(len(out.skipped)),
        },
    )


RESULT = obj(
    {
        "id": string("The result's id (an async job's id for a job result)"),
        "endpoint": string("What produced it, e.g. /v1/batch-detect or /v1/jobs (detect)"),
        "created_at": string(format="date-time"),
        "expires_at": string(format="date-time"),
        "images": integer("Images in the result"),
        "boxes": integer("Boxes the model returned"),
        "image_url": nullable(string("An async job's image (signed link); null for a synchronous request")),
    }
)


@router.get(
    "/v1/results",
    summary="The team's stored wildlife results (sync requests and async jobs), newest first",
    responses=responses(
        WILDLIFE,
        {200: obj({"data": array(RESULT), "total": integer(), "offset": integer(), "limit": integer()})},
        400,
        401,
        429,
    ),
)
async def list_results(
    request: Request,
    principal: Reference,
    platform: PlatformDep,
    ids: Annotated[list[str] | None, Query(description="Only these results (repeat, or comma-separate)")] = None,
    since: Annotated[str | None, Query(max_length=40)] = None,
    until: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Any:
    t0, t1 = _time(since, "since"), _time(until, "until")
    only = _ids(ids, "ids")
    base = platform.settings.public_url.rstrip("/") or str(request.base_url).rstrip("/")
    sign = signing.signer(platform.settings)

    def run() -> dict[str, Any]:
        from sleuth.services.reviews import image_items, machine_boxes

        with platform.db.read_session() as s:
            q = select(StoredResult).where(
                StoredResult.team_id == principal.team_id, StoredResult.expires_at > utcnow()
            )
            if only:
                q = q.where(StoredResult.id.in_(only))
            if t0 is not None:
                q = q.where(StoredResult.created_at >= t0)
            if t1 is not None:
                q = q.where(StoredResult.created_at < t1)
            total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
            rows = list(
                s.scalars(q.order_by(StoredResult.created_at.desc(), StoredResult.id).offset(offset).limit(limit))
            )
            data = []
            for r in rows:
                items = image_items(r.payload)
                data.append(
                    {
                        "id": r.id,
                        "endpoint": r.endpoint,
                        "created_at": _iso(r.created_at),
                        "expires_at": _iso(r.expires_at),
                        "images": len(items),
                        "boxes": sum(len(machine_boxes(i)) for i in items),
                        # an async job keeps its image (a signed link); a synchronous request's image is not kept
                        "image_url": f"{base}{sign(f'/v1/jobs/{r.id}/image')}"
                        if r.endpoint.startswith("/v1/jobs")
                        else None,
                    }
                )
        return {"data": data, "total": int(total), "offset": offset, "limit": limit}

    return await run_in_threadpool(run)


def _iso(dt: datetime) -> str:
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def mount(app: FastAPI) -> None:
    routing.mount(app, router, routing.WILDLIFE)
