"""``GET /detect/{uuid}/timeline``: a deepfake result's scores along time, for a player (the web app's audio and video
views): each audio chunk and each video window with its start, end and score, each sampled frame with its faces,
and signed links to the media and the visualization."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from starlette.concurrency import run_in_threadpool

from sleuth.api import routing
from sleuth.api.deps import PlatformDep, Reference
from sleuth.api.openapi import DEEPFAKE, array, boolean, nullable, number, obj, responses, string
from sleuth.platform import signing
from sleuth.services import deepfake as svc
from sleuth.services.timeline import timeline

router = APIRouter(tags=["deepfake"])

CHUNK = obj({"start": number("s"), "end": number("s"), "score": nullable(number("P(fake)"))})
FACE = obj(
    {
        "box": array(number(), "[x, y, w, h] in pixels of the video", 4, 4),
        "score": nullable(number()),
        "track": nullable(number()),
    }
)
TIMELINE = obj(
    {
        "uuid": string(),
        "media_type": string(enum=["audio", "image", "video"]),
        "status": string(),
        "duration": nullable(number("Seconds analysed")),
        "threshold": number("Scores at or above it are called fake"),
        "media_url": nullable(string("Signed link to the media; null under zero retention or after expiry")),
        "visualization_url": nullable(string("Signed link to the visualization PNG")),
        "audio": array(CHUNK, "Audio chunks (audio files, and the audio track of a video)"),
        "windows": array(CHUNK, "Video windows of frame_length seconds"),
        "frames": array(obj({"timestamp": number("s"), "score": nullable(number()), "faces": array(FACE)})),
        "approximate": boolean("Chunk times reconstructed from the result (true when they could not be exact)"),
    }
)


@router.get(
    "/detect/{uuid}/timeline",
    summary="Scores along time (audio chunks, video windows, sampled frames and faces) and signed media links",
    responses=responses(DEEPFAKE, {200: TIMELINE}, 401, 404, 429),
)
async def get_timeline(uuid: str, request: Request, principal: Reference, platform: PlatformDep) -> Any:
    item, job = await run_in_threadpool(svc.get_item, platform, principal.team_id, uuid)
    base = platform.settings.public_url.rstrip("/") or str(request.base_url).rstrip("/")
    view = svc.item_view(item, job, base, signing.signer(platform.settings))
    return timeline(item, job, view)


def mount(app: FastAPI) -> None:
    routing.mount(app, router, routing.DEEPFAKE)
