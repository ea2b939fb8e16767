"""Audio source tracing (Resemble's ``GET /audio_source_tracings``, ``GET /audio_source_tracings/{uuid}``).

A tracing is made by a detect with ``audio_source_tracing=true`` (batch: ``audio_source_tracing_enabled``);
its ``results.label`` is the synthesis family (``formant``, ``diphone``, ``hmm``, ``neural``), ``real`` or
``unknown`` (docs/api.md).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query
from starlette.concurrency import run_in_threadpool

from sleuth.api import routing
from sleuth.api.contract.deepfake import page_of
from sleuth.api.deps import PlatformDep, Reference
from sleuth.api.openapi import nullable, obj, responses, string
from sleuth.services import source_tracing as svc

router = APIRouter(tags=["deepfake"])

LABEL = string("formant | diphone | hmm | neural (a synthesis family), real, or unknown (an engine not seen)")
TRACING = obj(
    {
        "uuid": string("the tracing's id (sleuth: the same as detect_uuid)"),
        "detect_uuid": string("the detect that asked for it"),
        "results": obj(
            {"label": nullable(LABEL), "error_message": nullable(string("why no label could be given"))},
            ["label", "error_message"],
        ),
        "created_at": nullable(string("ISO 8601")),
    },
    ["uuid", "detect_uuid", "results", "created_at"],
)
ONE = obj({"success": {"type": "boolean"}, "item": TRACING}, ["success", "item"])
PAGE = page_of(TRACING)


@router.get(
    "/audio_source_tracings",
    summary="List audio source tracings (paged, newest first)",
    responses=responses(routing.DEEPFAKE, {200: PAGE}),
)
async def list_tracings(
    principal: Reference,
    platform: PlatformDep,
    page: Annotated[int, Query(ge=1)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 25,
) -> Any:
    return await run_in_threadpool(svc.list_tracings, platform, principal.team_id, page, page_size)


@router.get(
    "/audio_source_tracings/{uuid}",
    summary="Get one audio source tracing",
    responses=responses(routing.DEEPFAKE, {200: ONE}, 404),
)
async def get_tracing(uuid: str, principal: Reference, platform: PlatformDep) -> Any:
    item = await run_in_threadpool(svc.get_tracing, platform, principal.team_id, uuid)
    return {"success": True, "item": item}


def mount(app: FastAPI) -> None:
    routing.mount(app, router, routing.DEEPFAKE)
